"""`nb2pipe sweep ... --export dvc`: the pipeline's dvc.yaml plus a script queueing one DVC experiment per trial,
`dvc/<name>-sweep.sh`.

The dvc.yaml is exactly what `nb2pipe export --to dvc` writes (exporters/dvc.py). The script:
1. moves to the notebook's folder (where the stages' `wdir` and the params file's path point);
2. `dvc repro` of the shared stages (they read no swept parameter): they run once, in the
   workspace, and land in DVC's run-cache (but for one reading a value every trial sets alike,
   which params.yaml does not hold, and those after it: the experiments run them);
3. `dvc exp run --queue -S <params file>:<name>=<value> ...`, one per trial: each experiment
   restores the shared stages from the run-cache and reruns the others, in DVC's own temporary
   workspace (DVC queues the workspace as it is, untracked files included);
4. `dvc queue start -j N`: N workers run the queue in the background; `dvc queue status` follows
   them, `dvc exp show` compares the trials' params and metrics.

A value reaches the script as one `shlex.quote`d shell word holding the Hydra override DVC parses
for `-S` (strings single-quoted with Hydra's escapes, so a comma, quote, newline or `${` stays
text; numbers, bools, null, lists and mappings in Hydra's syntax).
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
from pathlib import Path
from typing import Any

from nb2pipe.errors import SpecError
from nb2pipe.exporters import pipeline_from_wdir, pipeline_name, wdir_path
from nb2pipe.exporters.dvc import FILE, KEEPS_TEMPLATES
from nb2pipe.exporters.sweep import SHARES, TrialSet, trials_json
from nb2pipe.model import Pipeline

__all__ = ["KEEPS_TEMPLATES", "hydra_value", "render_sweep"]

EXPORTS_PIPELINE_TOO = True
OUT_DIR = "dvc"
_HYDRA_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def hydra_value(value: Any) -> str:
    """`value` in Hydra's override grammar, which `dvc exp run -S name=VALUE` parses."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("-inf" if value < 0 else "inf") if math.isinf(value) else "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return _hydra_string(value)
    if isinstance(value, list):
        return "[" + ",".join(hydra_value(item) for item in value) + "]"
    if isinstance(value, dict):
        bad = [key for key in value if not isinstance(key, str) or not _HYDRA_KEY.fullmatch(key)]
        if bad:
            raise SpecError(f"the key {bad[0]!r} cannot be passed to `dvc exp run -S`; use keys made of letters, digits and '_'")
        return "{" + ",".join(f"{key}:{hydra_value(item)}" for key, item in value.items()) + "}"
    raise SpecError(f"the value {value!r} cannot be passed to `dvc exp run -S`; use a number, string, bool, null, list or mapping")


def _hydra_string(text: str) -> str:
    """A Hydra quoted string holding `text` exactly: backslashes before a quote, the end or `${`
    doubled, quotes escaped, `${` escaped (DVC resolves the value with OmegaConf)."""
    text = re.sub(r"(\\+)(?=\$\{)", lambda run: run.group(1) * 2, text)
    text = text.replace("${", "\\${")
    text = re.sub(r"(\\+)(?='|$)", lambda run: run.group(1) * 2, text)
    return "'" + text.replace("'", "\\'") + "'"


def render_sweep(pipeline: Pipeline, params: dict[str, Any], trial_set: TrialSet, base: Path) -> dict[str, str]:
    name = pipeline_name(pipeline)
    prefix = pipeline_from_wdir(pipeline)
    params_path = f"{prefix}/{pipeline.params_file}" if prefix != "." else pipeline.params_file
    if ":" in params_path or "=" in params_path:
        raise SpecError(f"params file '{params_path}' holds ':' or '=', which `dvc exp run -S` cannot name; rename the folder")
    script_dir = base / OUT_DIR
    to_wdir = os.path.relpath(wdir_path(pipeline).resolve(), script_dir.resolve()).replace(os.sep, "/")
    dvc_file = f"{prefix}/{FILE}" if prefix != "." else FILE
    trials = json.loads(trials_json(trial_set))
    lines = [
        "#!/bin/sh",
        f"# DVC experiments of sweep {trial_set.sweep_id} ({len(trials)} trials) of the nb2pipe pipeline "
        f"{json.dumps(name, ensure_ascii=False)}, written by `nb2pipe export --to dvc` for `nb2pipe sweep --export dvc`.",
        f"# What runs once and what per trial: {SHARES['dvc']}.",
        "# Commit the pipeline folder and dvc.yaml first (DVC queues the workspace as it is, untracked files included).",
        "# Then: `dvc queue status` follows the workers, `dvc exp show` compares the trials. Re-export instead of editing.",
        "set -eu",
        f'cd "$(dirname "$0")"/{shlex.quote(to_wdir)}',
    ]
    shared = _shared_in_workspace(pipeline, trial_set)
    if shared:
        lines.append("dvc repro " + " ".join(shlex.quote(f"{dvc_file}:{stage}") for stage in shared))
    for number, trial in enumerate(trials, 1):
        sets = " ".join(f"-S {shlex.quote(f'{params_path}:{key}={hydra_value(value)}')}" for key, value in trial.items())
        lines.append(f"dvc exp run --queue {shlex.quote(dvc_file)} {sets}  # trial {number}")
    lines.append(f"dvc queue start -j {max(trial_set.jobs, 1)}")
    return {f"{OUT_DIR}/{name}-sweep.sh": "\n".join(lines) + "\n"}


def _shared_in_workspace(pipeline: Pipeline, trial_set: TrialSet) -> list[str]:
    """The shared stages `dvc repro` can run before queueing: not those that read a value every
    trial sets alike (params.yaml does not hold it; the experiments run them, and DVC's run-cache
    shares them once one has), nor those after them."""
    from nb2pipe import graph

    edges = graph.upstream(pipeline)
    common = set(trial_set.common)
    left_out: set[str] = set()
    for stage in pipeline.stages:  # upstream stages come first
        if common & set(stage.params) or left_out & set(edges[stage.name]):
            left_out.add(stage.name)
    return [stage.name for stage in pipeline.stages if stage.name in trial_set.shared and stage.name not in left_out]
