"""`nb2pipe debug`: a stage's failed (or last) run as a notebook to run again, with its exact inputs.

1. The run: the newest in the history where the stage failed, else where it ran, or the one asked
   for. Its executed notebook is what ran (setup, parameters with the run's values, the loads of
   handed-over variables, the stage's cells); it becomes `debug/<stage>.ipynb` in the pipeline
   folder (git-ignored by a `.gitignore` of its own), outputs cleared, papermill's error banners
   left out.
2. A first cell moves the kernel to the stage's working folder, so the notebook runs from
   JupyterLab or `papermill debug/<stage>.ipynb out.ipynb` in any folder alike.
3. Inputs: every file the stage read is hashed now and compared with the hash recorded when the
   run dispatched the stage (runs.db). A handed-over variable that changed since is restored from
   the output cache into `debug/<stage>.inputs/`, and the notebook loads that copy: the run's
   value, not today's. Any other input that changed is reported (here and in the first cell's
   output), never used silently as if it were the run's.
4. The cell that failed is marked: a note above it and `nb2pipe.debug.failed` in its metadata (no
   `raises-exception` tag, so a headless run stops there with the same exception).
5. `apply_debug_edits` copies the cells the user fixed in the debug notebook back into the
   notebook, each to the cell it was made from: by that cell's id when the notebook gives cells
   ids (noted when the debug notebook is written), else by its number; checked by its text.
Nothing runs notebook code here; the notebook is written, not executed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nb2pipe import lockfile, state
from nb2pipe import model as m
from nb2pipe.errors import OverwriteError, SpecError
from nb2pipe.hashing import HashCache, atomic_write

DEBUG_DIR = "debug"
_PAPERMILL_BANNER_TAG = "papermill-error-cell-tag"  # papermill's markdown cells around a failure
_LOAD_CALL = "_nb2pipe_load("


@dataclass
class DebugNotebook:
    """What `debug` wrote: the notebook, the run it replays, the failing cell (None: the run did not
    fail there), inputs restored from the cache and inputs that changed since the run."""

    path: Path
    run_id: str
    outcome: str
    failed_cell: int | None = None  # 1-based position among the debug notebook's cells
    error: str | None = None  # the failing cell's exception, e.g. "ValueError: boom"
    restored: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


def debug_notebook(pipeline_folder: str | os.PathLike[str], stage: str, run: str | None = None, force: bool = False) -> DebugNotebook:
    """Write `debug/<stage>.ipynb` for `stage` of the pipeline in `pipeline_folder`, from run `run`
    (a run ref) or the newest run where the stage failed, else the newest where it ran. A debug
    notebook the user edited is not overwritten unless `force`."""
    from nb2pipe.spec import load_pipeline
    from nb2pipe.track import RunStore

    pipeline = load_pipeline(Path(pipeline_folder))
    pipeline.stage(stage)  # an unknown stage, with a close match
    with RunStore(pipeline) as store:
        record, run_id = _stage_run(store, stage, run)
    executed = _executed_notebook(pipeline, stage, run_id, record)
    folder = Path(pipeline.root) / DEBUG_DIR
    inputs = _check_inputs(pipeline, stage, record, folder / f"{stage}.inputs")
    cells, failed, error = _debug_cells(executed.get("cells", []), run_id)
    cells.insert(0, _first_cell(lockfile.wdir(pipeline), inputs.changed))
    if pipeline.source_notebook:
        _note_cell_ids(cells, Path(pipeline.root) / pipeline.source_notebook)
    _load_restored(cells, inputs.moved)
    notebook = {**executed, "cells": cells, "metadata": _metadata(executed, stage, run_id, _sources_hash(cells))}
    path = folder / f"{stage}.ipynb"
    if not force:
        _refuse_if_edited(path)
    if not os.path.lexists(folder / ".gitignore"):  # written once; one of the user's is left as it is
        atomic_write(folder / ".gitignore", "# Written by nb2pipe debug: notebooks to debug stages, kept out of git.\n*\n")
    atomic_write(path, json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    return DebugNotebook(
        path, run_id, record["outcome"], None if failed is None else failed + 2, error,
        sorted(inputs.moved), inputs.changed,
    )  # fmt: skip


def _stage_run(store: Any, stage: str, ref: str | None) -> tuple[dict[str, Any], str]:
    """The stage's record in run `ref`, else in the newest run where it failed, else where it ran."""
    if ref is not None:
        run = store.get(ref)
        for record in run["stages"]:
            if record["name"] == stage:
                return record, run["id"]
        raise SpecError(f"stage '{stage}' did not run in run {run['id']}; see nb2pipe runs, or leave out --run")
    runs = store.runs()
    for wanted in ("failed", None):
        for run in runs:
            for record in run["stages"]:
                if record["name"] == stage and record.get("notebook") and wanted in (None, record["outcome"]):
                    return record, run["id"]
    raise SpecError(f"stage '{stage}' has no run with an executed notebook in the history; run it first: nb2pipe run --stage {stage}")


def _executed_notebook(pipeline: m.Pipeline, stage: str, run_id: str, record: dict[str, Any]) -> dict[str, Any]:
    path = Path(pipeline.root) / str(record.get("notebook") or "")
    try:
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise SpecError(
            f"the executed notebook of stage '{stage}' in run {run_id} ('{path}') is missing or damaged; run the stage again"
        ) from None
    return loaded


@dataclass
class _Inputs:
    moved: dict[str, str] = field(default_factory=dict)  # dep path -> where the run's version was restored
    changed: list[str] = field(default_factory=list)  # what differs from the run and could not be restored


def _check_inputs(pipeline: m.Pipeline, stage: str, record: dict[str, Any], restore_to: Path) -> _Inputs:
    """Compare each dep with its hash at dispatch; restore changed hand-offs from the output cache."""
    from nb2pipe.run.cache import OutputCache

    recorded: dict[str, str | None] = (record.get("lock") or {}).get(lockfile.L_DEPS) or {}
    now = state.hash_paths(pipeline, tuple(recorded), HashCache(None))
    cache = OutputCache(lockfile.state_dir(pipeline))
    found = _Inputs()
    for path, digest in recorded.items():
        if now.get(path) == digest:
            continue
        if digest and f"/{m.STATE_DIR}/{m.VARS_DIR}/" in f"/{path}" and cache.has(digest):
            copy = restore_to / path.replace("/", "_")
            cache.restore(copy, digest)
            found.moved[path] = str(copy)
            continue
        found.changed.append(path)
    return found


def _debug_cells(cells: list[dict[str, Any]], run_id: str) -> tuple[list[dict[str, Any]], int | None, str | None]:
    """The executed cells, cleared, without papermill's banners; a note above the failing cell.
    Returns them, the failing cell's index among them and its exception (None, None: none failed)."""
    kept: list[dict[str, Any]] = []
    failed = error = None
    for cell in cells:
        if _PAPERMILL_BANNER_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        cell = {**cell, "metadata": {k: v for k, v in cell.get("metadata", {}).items() if k not in ("papermill", "execution")}}
        if cell.get("cell_type") == "code":
            raised = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if failed is None and raised:
                failed = len(kept) + 1  # after the note that goes above it
                error = f"{raised[0].get('ename', 'Error')}: {raised[0].get('evalue', '')}"
                note = f"**nb2pipe debug:** in run `{run_id}` the next cell failed: `{error}`."
                kept.append({"cell_type": "markdown", "id": "nb2pipe-debug-failed", "metadata": {}, "source": note})
                cell["metadata"] = {**cell["metadata"], "nb2pipe": {"debug": {"failed": True, "run": run_id}}}
            cell = {**cell, "outputs": [], "execution_count": None}
            _remember_source(cell)
        kept.append(cell)
    return kept, failed, error


_FROM_CELL = re.compile(r" cell (\d+)$")  # the title of a stage cell made from the notebook's cell N


def _remember_source(cell: dict[str, Any]) -> None:
    """Note, on a cell made from the notebook's cell N, N and its text as written (for --apply)."""
    found = _FROM_CELL.search(str(cell.get("metadata", {}).get("title", "")))
    if found:
        debug = cell["metadata"].setdefault("nb2pipe", {}).setdefault("debug", {})
        debug.update({"cell": int(found.group(1)), "source": _text_hash("".join(cell.get("source", "")))})


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def apply_debug_edits(pipeline_folder: str | os.PathLike[str], stage: str) -> list[int]:
    """Copy the cells edited in `debug/<stage>.ipynb` back into the notebook, each to the cell it
    was made from (by number, checked by text: the notebook's cell must still say what the debug
    notebook started from). All or nothing. Returns the numbers of the notebook cells changed."""
    from nb2pipe.notebook import read_notebook
    from nb2pipe.spec import load_pipeline

    pipeline = load_pipeline(Path(pipeline_folder))
    path = Path(pipeline.root) / DEBUG_DIR / f"{stage}.ipynb"
    if not pipeline.source_notebook:
        raise SpecError(f"pipeline '{pipeline.root}' names no notebook; edit its stage scripts by hand")
    if not path.is_file():
        raise SpecError(f"no debug notebook '{path}'; write one first: nb2pipe debug {pipeline_folder} {stage}")
    notebook_path = Path(pipeline.root) / pipeline.source_notebook
    debug, notebook = read_notebook(path), read_notebook(notebook_path)
    edits = _edits(debug, notebook, notebook_path)
    for number, cell, source in edits:
        notebook["cells"][number - 1]["source"] = source
        cell["metadata"]["nb2pipe"]["debug"]["source"] = _text_hash(source)
    if edits:
        atomic_write(notebook_path, json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        atomic_write(path, json.dumps(debug, indent=1, ensure_ascii=False) + "\n")
    return [number for number, _, _ in edits]


def _note_cell_ids(cells: list[dict[str, Any]], notebook: Path) -> None:
    """Note the id of the notebook cell each debug cell was made from (when the notebook gives
    cells ids and that cell still says the same), so --apply finds it wherever it moved since."""
    try:
        source_cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return
    for cell in cells:
        mark = cell.get("metadata", {}).get("nb2pipe", {}).get("debug", {})
        number = mark.get("cell", 0)
        if 0 < number <= len(source_cells) and isinstance(source_cells[number - 1], dict):
            original = source_cells[number - 1]
            if original.get("id") and _text_hash(_joined(original.get("source", ""))) == mark["source"]:
                mark["id"] = original["id"]


def _joined(source: Any) -> str:
    return "".join(source) if isinstance(source, list) else str(source)


def _edits(debug: dict[str, Any], notebook: dict[str, Any], where: Path) -> list[tuple[int, dict[str, Any], str]]:
    """(notebook cell number, debug cell, new text) of each edited cell: found by the id noted
    when the debug notebook was written, else by its number; checked by its text."""
    edits = []
    cells = notebook.get("cells", [])
    ids = {c.get("id"): i + 1 for i, c in enumerate(cells) if isinstance(c, dict) and c.get("id")}
    for cell in debug.get("cells", []):
        mark = cell.get("metadata", {}).get("nb2pipe", {}).get("debug", {})
        source = "".join(cell.get("source", ""))
        if "cell" not in mark or _text_hash(source) == mark.get("source"):
            continue
        number = ids.get(mark["id"], 0) if mark.get("id") else mark["cell"]
        if not (0 < number <= len(cells)) or _text_hash(_joined(cells[number - 1].get("source", ""))) != mark["source"]:
            raise SpecError(
                f"cell {mark['cell']} of '{where}' changed since the debug notebook was written; copy your edit of it by hand"
            )
        edits.append((number, cell, source))
    return edits


def _first_cell(wdir: Path, changed: list[str]) -> dict[str, Any]:
    """Moves the kernel to the stage's working folder; says which inputs changed since the run."""
    lines = ["import os", f"os.chdir({str(wdir)!r})  # the stage's working folder"]
    if changed:
        note = f"nb2pipe debug: changed since the run, so not what it read: {', '.join(changed)}"
        lines += ["import sys", f"print({note!r}, file=sys.stderr)"]
    source = "\n".join(lines)
    return {"cell_type": "code", "execution_count": None, "id": "nb2pipe-debug-start", "metadata": {}, "outputs": [], "source": source}


def _load_restored(cells: list[dict[str, Any]], moved: dict[str, str]) -> None:
    """Point the loads of handed-over variables that changed at the run's versions (generated
    cells: each load names its folder as a quoted literal)."""
    for cell in cells:
        source = "".join(cell.get("source", ""))
        if cell.get("cell_type") != "code" or _LOAD_CALL not in source:
            continue
        for path, copy in moved.items():
            source = source.replace(f"{_LOAD_CALL}{path!r})", f"{_LOAD_CALL}{copy!r})")
        cell["source"] = source


def _metadata(executed: dict[str, Any], stage: str, run_id: str, sources: str) -> dict[str, Any]:
    metadata = {k: v for k, v in executed.get("metadata", {}).items() if k != "papermill"}
    return {**metadata, "nb2pipe": {**metadata.get("nb2pipe", {}), "debug": {"stage": stage, "run": run_id, "sources": sources}}}


def _sources_hash(cells: list[dict[str, Any]]) -> str:
    """What the cells say, hashed: a debug notebook whose cells say something else was edited."""
    sources = ["".join(c.get("source", "")) for c in cells]
    return hashlib.sha256(json.dumps(sources).encode()).hexdigest()[:16]


def _refuse_if_edited(path: Path) -> None:
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        written = old["metadata"]["nb2pipe"]["debug"]["sources"]
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError, TypeError):
        written = None
    if written is None or _sources_hash(old.get("cells", [])) != written:
        raise OverwriteError(f"'{path}' has edits of yours (or was not written by nb2pipe debug); move it aside, or pass --force")
