"""The status the saved notebook makes: what would be stale if it were exported now.

When the source notebook changed since the export, `status_as_saved` plans the export in memory
(nothing is written, no notebook code runs) and checks that pipeline against nb2pipe.lock: a
stage whose cells changed is `code changed: cell 11`, a parameter whose default changed in the
parameters cell is `param changed: n 3 → 5`, a new stage is never run. The server's sidebar asks
it on every status poll, so the plan is kept while the notebook, params.yaml and nb2pipe.yaml
stay as they are. A notebook that cannot be exported as it is keeps the status of the pipeline
on disk, with the reason it cannot be exported.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2pipe import model as m
from nb2pipe.errors import Nb2PipeError

if TYPE_CHECKING:
    from nb2pipe.export import Rendered
    from nb2pipe.state import PipelineStatus

_PLANS: dict[str, tuple[tuple[Any, ...], Any]] = {}  # notebook -> (the files' stat keys, plan or error)
_CELL = re.compile(r"^# %%.* cell (\d+)\s*$", re.M)  # a cell's header in a py:percent stage script


@dataclasses.dataclass
class SavedStatus:
    status: PipelineStatus
    export_error: str | None  # why the saved notebook cannot be exported (then `status` is of the files on disk)
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)  # the parameters' values before overrides


def status_as_saved(pipeline: m.Pipeline, params: dict[str, Any], running: Collection[str]) -> SavedStatus:
    """The status of `pipeline` as its saved notebook would make it (see the module's docstring);
    `params`: overrides over params.yaml."""
    from nb2pipe.spec import check_params, effective_params, load_params
    from nb2pipe.state import pipeline_status, source_in_sync

    plan = _plan(pipeline) if source_in_sync(pipeline) is False else None
    if plan is None or isinstance(plan, str):
        defaults = load_params(pipeline)
        return SavedStatus(pipeline_status(pipeline, effective_params(pipeline, params), running), plan, defaults)
    from nb2pipe.spec import safe_load

    planned = dataclasses.replace(plan.pipeline, root=pipeline.root, params_file=pipeline.params_file)
    defaults = check_params(safe_load(plan.files[m.PARAMS_FILE]) or {}, pipeline.params_file)
    scripts = {stage.name: plan.files[str(stage.script)] for stage in planned.stages if str(stage.script) in plan.files}
    status = pipeline_status(planned, {**defaults, **params}, running, scripts)
    _name_changed_cells(pipeline, status, scripts)
    return SavedStatus(status, None, defaults)


def _plan(pipeline: m.Pipeline) -> Rendered | str:
    """The export of the saved notebook, planned in memory (kept while its inputs are unchanged);
    the one-line reason when it cannot be exported."""
    from nb2pipe.export import plan_export

    root = Path(pipeline.root)
    notebook = Path(os.path.normpath(root / str(pipeline.source_notebook)))
    key = tuple(_stat_key(path) for path in (notebook, root / pipeline.params_file, root / m.PIPELINE_FILE))
    known = _PLANS.get(str(notebook))
    if known is not None and known[0] == key:
        return known[1]
    try:
        plan: Rendered | str = plan_export(notebook, root)
    except Nb2PipeError as error:
        plan = f"the saved notebook cannot be exported: {error}"
    if len(_PLANS) > 64:
        _PLANS.clear()
    _PLANS[str(notebook)] = (key, plan)
    return plan


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _name_changed_cells(pipeline: m.Pipeline, status: PipelineStatus, scripts: dict[str, str]) -> None:
    """`code changed: cell N` for a stage whose script on disk is the code it last ran with (so
    the cells that differ from it are the ones changed since that run)."""
    from nb2pipe.lockfile import L_CODE, read_lock
    from nb2pipe.state import CODE_CHANGED, code_hash, read_script

    lock = read_lock(pipeline)
    for stage_status in status.stages:
        if stage_status.name not in pipeline.names or stage_status.name not in scripts:
            continue
        stage = pipeline.stage(stage_status.name)
        try:
            on_disk = read_script(pipeline, stage)
        except Nb2PipeError:
            continue
        if stage.cmd or (lock.get(stage.name) or {}).get(L_CODE) != code_hash(pipeline, stage, on_disk):
            continue
        cells = _changed_cells(on_disk, scripts[stage.name])
        if cells:
            detail = ("cell " if len(cells) == 1 else "cells ") + ", ".join(map(str, cells))
            stage_status.reasons = [m.Reason(r.kind, detail) if r.kind == CODE_CHANGED else r for r in stage_status.reasons]


def _changed_cells(before: str, after: str) -> list[int]:
    """The notebook cells whose text differs between two versions of a stage script."""
    old, new = _cells(before), _cells(after)
    return sorted(n for n in old.keys() | new.keys() if old.get(n) != new.get(n))


def _cells(script: str) -> dict[int, str]:
    parts = _CELL.split(script)
    return {int(number): text.strip() for number, text in zip(parts[1::2], parts[2::2], strict=True)}
