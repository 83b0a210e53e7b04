"""What the history and the parameters form show: the runs with what each changed, the diff of
two runs (what `nb2pipe diff --json` prints), and the pipeline's parameters with their types.

Nothing here runs notebook code, and nothing imports papermill or a Jupyter server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from nb2pipe import model as m
from nb2pipe.api.reads import load, open_history

TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict", type(None): "none"}


def history_rows(target: str | os.PathLike[str] | m.Pipeline, limit: int | None = None) -> list[dict[str, Any]]:
    """The newest `limit` runs, newest first, as `history` gives them, each with `no_op` (the run
    changed nothing, `nb2pipe runs` marks it "(no-op)") and `changed_params` (the parameters
    that differ from the run before it, which is read too when it is not shown)."""
    from nb2pipe.track import changed_params, is_no_op

    with open_history(target) as store:
        runs = store.runs(limit + 1 if limit else None)
    changes = changed_params(runs)
    shown = runs[:limit] if limit else runs
    return [{**run, "no_op": is_no_op(run), "changed_params": changes[run["id"]]} for run in shown]


def sweep_trial_counts(target: str | os.PathLike[str] | m.Pipeline, sweep_ids: list[str]) -> dict[str, int]:
    """How many trials each of these sweeps has (its trial set, as `nb2pipe sweep` planned it), so
    that a history cut at `limit` can say "k of n trials shown"; a sweep the history does not
    know is left out."""
    from nb2pipe.track import UnknownRun

    counts: dict[str, int] = {}
    with open_history(target) as store:
        for sweep_id in sweep_ids:
            try:
                counts[sweep_id] = len(store.sweep_trials_asked(sweep_id)[1])
            except UnknownRun:
                continue
    return counts


def diff_runs(target: str | os.PathLike[str] | m.Pipeline, ref_a: str, ref_b: str) -> dict[str, Any]:
    """Two runs (ids, id prefixes, tags or `latest~N`) side by side: params, metrics and outputs
    (`track.diff`); an unknown run is `track.UnknownRun`."""
    from nb2pipe.track import diff

    with open_history(target) as store:
        run_a, run_b = store.get(ref_a), store.get(ref_b)
    return diff(run_a, run_b)


def parameters(target: str | os.PathLike[str] | m.Pipeline, defaults: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The pipeline's parameters in the order of `defaults` (params.yaml): name, type (bool, int,
    float, str, list, dict or none), default, and the stages that read it."""
    pipeline = load(target)
    return [
        {
            "name": name,
            "type": TYPE_NAMES.get(type(value), "str"),
            "default": value,
            "stages": [stage.name for stage in pipeline.stages if name in stage.params],
        }
        for name, value in defaults.items()
    ]
