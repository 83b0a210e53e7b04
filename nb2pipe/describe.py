"""What `nb2pipe show` and `nb2pipe explain` print: stages, variables, files, params and edges.

Both use the same words: `after` is a stage's declared `after:` edges (an order where no file
flows), `upstream` every stage it depends on (through files, variables or `after:`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nb2pipe import model as m
from nb2pipe.export import cell_ranges, plan_export
from nb2pipe.graph import order, upstream
from nb2pipe.settings import effective
from nb2pipe.settings import to_dict as settings_to_dict
from nb2pipe.spec import load_params, load_pipeline, resolve_template, safe_load


def describe(path: Path) -> dict[str, Any]:
    """The pipeline at `path` as JSON-ready data, stages in dependency order."""
    pipeline = load_pipeline(path)
    edges = upstream(pipeline)
    stages = []
    for name in order(pipeline, edges):
        stage = pipeline.stage(name)
        stages.append(
            {
                "name": name,
                "script": stage.script,
                "cmd": list(stage.cmd) if stage.cmd else None,
                "cells": list(stage.cells),
                "deps": list(stage.deps),
                "outs": list(stage.outs),
                "metrics": list(stage.metrics),
                "params": list(stage.params),
                "upstream": edges[name],
                "after": list(stage.after),
                "loads": [{"name": var, "from": provider} for var, provider in stage.loads],
                "saves": list(stage.saves),
                "inferred": list(stage.inferred),
                "meta": {k: list(v) for k, v in stage.meta},
                # what it runs with: its own settings over the pipeline's defaults, as nb2pipe.yaml writes them
                "settings": settings_to_dict(effective(pipeline, stage)),
            }
        )
    return {
        "pipeline": str(path),
        "source": pipeline.source_notebook,
        "wdir": pipeline.wdir,
        "params": load_params(pipeline),
        "stages": stages,
    }


def as_text(info: dict[str, Any]) -> str:
    lines = [f"pipeline {info['pipeline']}"]
    if info["source"]:
        lines.append(f"  from      {info['source']}  (stages run in {info['wdir']})")
    if info["params"]:
        lines.append("  params    " + ", ".join(f"{k}={v!r}" for k, v in info["params"].items()))
    lines.append("")
    width = max(len(s["name"]) for s in info["stages"])
    for stage in info["stages"]:
        lines.append(f"{stage['name']:<{width}}  {stage['script'] or ' '.join(stage['cmd'])}")
        for key in ("upstream", "after", "deps", "outs", "metrics", "params"):
            if stage[key]:
                lines.append(f"{'':<{width}}    {key + ':':<10}{', '.join(stage[key])}")
        if stage.get("settings"):
            lines.append(f"{'':<{width}}    {'settings:':<10}{settings_as_tags(stage['settings'])}")
    edges = [(up, s["name"]) for s in info["stages"] for up in s["upstream"]]
    if edges:
        lines.append("")
        lines.append("edges: " + ", ".join(f"{a} -> {b}" for a, b in edges))
    return "\n".join(lines) + "\n"


def settings_as_tags(settings: dict[str, Any]) -> str:
    """Settings in nb2pipe.yaml's form as the tags that set them: `timeout:30m retries:2 allow-failure`."""
    tags = []
    for key, value in settings.items():
        if value is True:
            tags.append(key)
        elif isinstance(value, dict):
            tags.extend(f"{key}:{name}" + ("" if given is None else f"={given}") for name, given in value.items())
        elif isinstance(value, list):
            tags.extend(f"{key}:{item}" for item in value)
        elif value is not False:
            tags.append(f"{key}:{value}")
    return " ".join(tags)


def explain(notebook: Path, split_level: int | None = None) -> dict[str, Any]:
    """Per stage of a notebook: the variables it loads and saves, its files (declared or
    inferred), its parameters and the warnings of the analysis. The notebook is cut as its
    pipeline was exported (or at `split_level`)."""
    rendered = plan_export(notebook, None, split_level=split_level)
    values = _param_values(rendered.files)
    by_stage: dict[str, list[str]] = {}
    for warning in rendered.warnings:
        name = warning.split("'")[1] if warning.startswith("stage '") else ""
        by_stage.setdefault(name, []).append(warning)
    stages = []
    for stage in rendered.pipeline.stages:
        consumers = {
            var: sorted(s.name for s in rendered.pipeline.stages if (var, stage.name) in s.loads) for var in stage.saves
        }
        var_paths = {p for p in stage.deps + stage.outs if "/.nb2pipe/vars/" in p}
        stages.append(
            {
                "name": stage.name,
                "cells": list(stage.cells),
                "loads": [{"name": var, "from": provider, "how": "inferred"} for var, provider in stage.loads],
                "saves": [{"name": var, "to": consumers[var]} for var in stage.saves],
                "changes": _changes_in_place(rendered.changes.get(stage.name, []), stage),
                "deps": [_file(p, stage, values) for p in stage.deps if p not in var_paths],
                "outs": [_file(p, stage, values) for p in stage.produced if p not in var_paths],
                "params": list(stage.params),
                "after": list(stage.after),
                "carries": rendered.carried.get(stage.name, []),
                "warnings": by_stage.get(stage.name, []),
                "replayed": _replayed(rendered.plan, stage.name),
            }
        )
    return {
        "notebook": str(notebook),
        "setup": _setup(rendered.plan),
        "installs": _installs(rendered.plan),
        "notes": by_stage.get("", []),
        "stages": stages,
    }


def _installs(plan: m.NotebookPlan | None) -> list[dict[str, Any]]:
    """The cells whose install lines run in no stage, with those lines."""
    from nb2pipe.setup_code import setup_facts

    return [{"cell": c.number, "lines": list(setup_facts(c.source).installs)} for c in (plan.installs if plan else ())]


def _setup(plan: m.NotebookPlan | None) -> list[dict[str, Any]]:
    """The cells run at the top of every stage, with the configuration each holds."""
    from nb2pipe.setup_code import setup_facts

    cells = plan.setup if plan else ()
    return [{"cell": c.number, "configures": list(setup_facts(c.source).configures)} for c in cells]


def _replayed(plan: m.NotebookPlan | None, name: str) -> list[dict[str, Any]]:
    """The configuration of earlier stages' cells a stage runs at its top."""
    from nb2pipe.setup_code import setup_facts

    stage = next((s for s in plan.stages if s.name == name), None) if plan else None
    return [{"cell": c.number, "configures": list(setup_facts(c.source).configures)} for c in (stage.replayed if stage else ())]


def _changes_in_place(changes: list[tuple[int, str, str]], stage: m.Stage) -> list[dict[str, Any]]:
    """The values the stage takes from another and changes in place through a call or an alias."""
    loaded = {var for var, _ in stage.loads}
    return [{"name": var, "cell": cell, "how": how} for cell, var, how in changes if var in loaded]


def _file(path: str, stage: m.Stage, params: dict[str, Any]) -> dict[str, str]:
    """A dep or out; one named by parameters also says the path params.yaml's values give it."""
    found = {"path": path, "how": "inferred" if path in stage.inferred else "declared"}
    if "${" in path:
        found["resolved"] = resolve_template(path, params, "params.yaml")
    return found


def _param_values(files: dict[str, str]) -> dict[str, Any]:
    """The parameter values of the params.yaml an export writes (the user's, where edited)."""
    values = safe_load(files.get(m.PARAMS_FILE, "")) or {}
    return values if isinstance(values, dict) else {}


def explain_text(info: dict[str, Any]) -> str:
    lines = [f"notebook {info['notebook']}", *_setup_lines(info)]
    for stage in info["stages"]:
        lines.append("")
        lines.append(f"stage {stage['name']}  (cells {cell_ranges(stage['cells'])})")
        for replayed in stage["replayed"]:
            lines.append(f"  setup   cell {replayed['cell']}'s configuration, as the notebook's kernel had it: "
                         + "; ".join(replayed["configures"]))
        for var in stage["loads"]:
            lines.append(f"  loads   {var['name']}  from stage '{var['from']}' ({var['how']})")
        for var in stage["saves"]:
            lines.append(f"  saves   {var['name']}  for {', '.join(repr(s) for s in var['to'])}")
        for var in stage.get("changes", []):
            lines.append(f"  changes {var['name']}  in cell {var['cell']}: {var['how']}")
        for label, key in (("dep", "deps"), ("out", "outs")):
            for f in stage[key]:
                resolved = f" = {f['resolved']}" if "resolved" in f else ""
                lines.append(f"  {label:<7} {f['path']}{resolved} ({f['how']})")
        if stage["params"]:
            lines.append(f"  params  {', '.join(stage['params'])}")
        if stage["after"]:
            lines.append(f"  after   {', '.join(stage['after'])}")
        lines.extend(_carried_lines(stage))
        for warning in stage["warnings"]:
            lines.append(f"  warning {warning}")
    return "\n".join(lines) + "\n"


def _carried_lines(stage: dict[str, Any]) -> list[str]:
    """What the stage carries besides plain variables: hidden state, values saved with cloudpickle."""
    return [f"  carries {note}" for note in stage.get("carries", [])]


def _setup_lines(info: dict[str, Any]) -> list[str]:
    """What runs at the top of every stage, and the warnings about the notebook as a whole."""
    lines = []
    if info["setup"]:
        numbers = [cell["cell"] for cell in info["setup"]]
        lines.append(f"setup   cell{'s' if len(numbers) > 1 else ''} {cell_ranges(numbers)} run{'' if len(numbers) > 1 else 's'} "
                     "at the top of every stage")
        for cell in info["setup"]:
            if cell["configures"]:
                lines.append(f"  cell {cell['cell']} configures: " + "; ".join(cell["configures"]))
    lines.extend(f"warning {note}" for note in info["notes"])
    return lines
