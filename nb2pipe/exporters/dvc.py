"""`nb2pipe export --to dvc`: a dvc.yaml with one DVC stage per nb2pipe stage.

The file goes into the pipeline folder (`pipelines/<name>/dvc.yaml`, next to nb2pipe.yaml), so
two notebooks in one folder never fight over one dvc.yaml, and every stage carries
`wdir: <the notebook's folder>`: DVC then resolves deps, outs, metrics and the params file
relative to the same folder nb2pipe does, so the paths are copied verbatim.

Per stage: `cmd` runs `python -m nb2pipe.run.single <pipeline> <stage> --engine dvc`;
`deps` are the stage's deps plus its script (a code change reruns it) plus, for an `after:`
edge that no file carries, the outputs of that stage (DVC orders stages by files only);
`params` are the names the stage reads, from the pipeline's params.yaml; `outs` and `metrics`
(metrics with `cache: false`, so they are committed to git) as declared.

Per-stage settings (issue 17): the stage command applies timeout, cell-timeout, retries,
memory, kernel, env and secret itself when DVC runs it. The `env:` values and `kernel:` are part
of a stage's fingerprint, so their keys in nb2pipe.yaml are the stage's params too (`dvc status`
shows a change of one). What DVC cannot express (allow-failure, track-env, the caller's value of
an `env:NAME` passed through) is named in the export's warning line.

Every string is data: the YAML quotes whatever a YAML 1.2 reader (DVC uses ruamel) could take for
a number, bool or null, and a command runs through a shell only as `shlex.quote`d words. DVC
reads `${...}` in dvc.yaml as a variable: a dep or out that depends on a parameter is written as
nb2pipe.yaml has it (`${input_file}`), and DVC fills it in from params.yaml (read from dvc.yaml's
folder, the pipeline folder, by DVC's templating) at each `dvc repro`; any other `${` is refused.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from nb2pipe import graph
from nb2pipe import model as m
from nb2pipe.errors import SpecError
from nb2pipe.exporters import STAGE_MODULE, pipeline_from_wdir, pipeline_name
from nb2pipe.exporters.stage_settings import cannot_express, passed_through, stage_settings
from nb2pipe.model import Pipeline, Stage
from nb2pipe.spec import resolve_template, stage_param_values

OPTIONS: tuple[str, ...] = ()
FILE = "dvc.yaml"
KEEPS_TEMPLATES = True  # DVC resolves `${name}` in paths itself, from params.yaml


def _join(*parts: str) -> str:
    joined = "/".join(p.strip("/") for p in parts if p not in ("", "."))
    return joined or "."


def render(pipeline: Pipeline, params: dict[str, Any]) -> dict[str, str]:
    from nb2pipe.generated import dump_portable_yaml

    prefix = pipeline_from_wdir(pipeline)  # the pipeline folder, seen from wdir
    wdir = pipeline.wdir  # wdir, seen from the pipeline folder (where dvc.yaml lives)
    edges = graph.upstream(pipeline)
    by_name = {s.name: s for s in pipeline.stages}
    owner = graph.producers(pipeline)
    stages: dict[str, Any] = {}
    for name in graph.order(pipeline, edges):
        stage = by_name[name]
        entry: dict[str, Any] = {"wdir": wdir}
        if stage.cmd:
            entry["cmd"] = " ".join(shlex.quote(a) for a in stage.cmd)
        else:
            entry["cmd"] = f"python -m {STAGE_MODULE} {shlex.quote(prefix)} {shlex.quote(name)} --engine dvc"
        deps = list(stage.deps)
        if stage.script:
            deps.append(_join(prefix, stage.script))
        for up in edges[name]:
            if any(owner.get(out) == up for out in owner if _touches(out, stage.deps)):
                continue  # a file already carries this edge
            produced = list(by_name[up].produced)
            if not produced:
                raise SpecError(
                    f"stage '{name}' runs after stage '{up}', which writes no file; DVC orders stages only "
                    f"through files: give stage '{up}' an out: tag, or drop the after: tag"
                )
            deps.extend(p for p in produced if p not in deps)
        if deps:
            entry["deps"] = deps
        if stage.params:
            stage_param_values(pipeline, stage, params)  # each has a value
            entry["params"] = [{_join(prefix, pipeline.params_file): list(stage.params)}]
        tracked = _tracked_settings(pipeline, stage)
        if tracked:
            entry.setdefault("params", []).append({_join(prefix, m.PIPELINE_FILE): tracked})
        if stage.outs:
            entry["outs"] = list(stage.outs)
        if stage.metrics:
            entry["metrics"] = [{path: {"cache": False}} for path in stage.metrics]
        stages[name] = entry
    _refuse_dvc_variables(stages, _templates(pipeline, params))
    header = (
        f"# DVC stages of the nb2pipe pipeline {json.dumps(pipeline_name(pipeline), ensure_ascii=False)}, "
        "written by `nb2pipe export --to dvc`.\n"
        "# Paths are relative to each stage's wdir (the notebook's folder). Re-export after changing the\n"
        "# notebook; run with `dvc repro` (DVC_NO_ANALYTICS=1 turns off DVC's usage analytics).\n"
    )
    return {_join(prefix, FILE): header + _spaced(dump_portable_yaml({"stages": stages}))}


def _tracked_settings(pipeline: Pipeline, stage: Stage) -> list[str]:
    """The keys of nb2pipe.yaml holding the stage's `env:` values and `kernel:`, which are part of
    its fingerprint: DVC reruns the stage when one changes, as `nb2pipe run` does."""
    own, defaults = stage.settings, pipeline.defaults
    keys = [f"{m.K_STAGES}.{stage.name}.{m.K_SETTINGS}.{key}" for key, value in ((m.S_ENV, own.env), (m.S_KERNEL, own.kernel)) if value]
    secrets = set(own.secrets) | set(defaults.secrets)
    if any(name not in dict(own.env) and name not in secrets for name, _ in defaults.env):
        keys.append(f"{m.K_DEFAULTS}.{m.S_ENV}")
    if defaults.kernel and not own.kernel:
        keys.append(f"{m.K_DEFAULTS}.{m.S_KERNEL}")
    return keys


def unexpressed(pipeline: Pipeline) -> str | None:
    """The warning line: what dvc.yaml cannot express or track. The stage command applies the
    rest (timeout, cell-timeout, retries, memory, kernel, env, secret) when DVC runs a stage."""
    settings = stage_settings(pipeline)
    return cannot_express("dvc", {
        "allow-failure": [n for n, s in settings.items() if s.allow_failure],
        "track-env": [n for n, s in settings.items() if s.track_env],
        "the caller's value of env:NAME": [n for n, s in settings.items() if passed_through(s)],
    }, "dvc repro stops at a failed stage, and reruns a stage when its files, params or command change, "
       "not when the packages it imports or the caller's environment do")  # fmt: skip


def _templates(pipeline: Pipeline, params: dict[str, Any]) -> set[str]:
    """The deps and outs that depend on parameters, each checked to name only parameters that
    params.yaml sets (DVC fails on any other)."""
    templates = {p for stage in pipeline.stages for p in (*stage.deps, *stage.outs) if "${" in p}
    for path in templates:
        resolve_template(path, params, "the pipeline's params file")
    return templates


def _refuse_dvc_variables(data: Any, templates: set[str]) -> None:
    """DVC substitutes `${name}` anywhere in dvc.yaml: refuse text that would be read as one,
    but for the paths that depend on parameters (`templates`)."""
    if isinstance(data, dict):
        for key, value in data.items():
            _refuse_dvc_variables(key, templates)
            _refuse_dvc_variables(value, templates)
    elif isinstance(data, list):
        for item in data:
            _refuse_dvc_variables(item, templates)
    elif isinstance(data, str) and "${" in data and data not in templates:
        raise SpecError(f"'{data}' holds '${{', which DVC would read as a variable; rename that file or folder")


def _touches(out: str, deps: tuple[str, ...]) -> bool:
    return any(out == d or out.startswith(d.rstrip("/") + "/") or d.startswith(out.rstrip("/") + "/") for d in deps)


def _spaced(text: str) -> str:
    """A blank line between stages, for reading."""
    lines = text.splitlines(True)
    out: list[str] = []
    for i, line in enumerate(lines):
        if i > 1 and line.startswith("  ") and not line.startswith("   "):
            out.append("\n")
        out.append(line)
    return "".join(out)
