"""Every path the server reads or writes stays inside its root; bad requests are a RequestError.

1. A request's `path` is relative to the root: not empty, not absolute, no NUL byte, no longer
   than PATH_MAX nor any part longer than NAME_MAX (400), and once resolved (`..`, symlinks)
   inside the root (403).
2. A pipeline folder (a notebook's `pipelines/<name>`, itself perhaps a symlink) and the files
   an export reads and writes in it (top level and `stages/`) resolve inside the root.
3. A loaded pipeline: its working folder, params file, source notebook, lock, state and runs
   folders, and each stage's script, deps, outs and metrics resolve inside the root, and a
   folder among the deps and outs holds no symlink leading out. The 403 names the first path
   that does not, as the pipeline file writes it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nb2pipe import lockfile
from nb2pipe import model as m
from nb2pipe.run.runner import RUNS_DIR

PATH_MAX = 4096
NAME_MAX = 255
_OUTSIDE_HINT = "the server reads and writes only inside its root; run this pipeline with the nb2pipe CLI"


class RequestError(Exception):
    """A request the server refuses: `status` is the HTTP status, the message says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def shown(text: str, limit: int = 60) -> str:
    """`text` short enough to quote in a message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def confine(root: Path, relative: Any) -> Path:
    """`relative` resolved inside `root`, or a RequestError (400 malformed, 403 outside the root)."""
    if not isinstance(relative, str) or not relative.strip() or "\x00" in relative:
        raise RequestError(400, "a 'path' relative to the server root is required")
    _refuse_long(root, relative)
    if os.path.isabs(relative) or relative.startswith(("/", "\\")):
        raise RequestError(400, f"'{shown(relative)}' is absolute; give a path relative to the server root")
    full = Path(os.path.realpath(root / relative))
    if not is_inside(root, full):
        raise RequestError(403, f"'{shown(relative)}' is outside the server root")
    return full


def _refuse_long(root: Path, relative: str) -> None:
    if len(os.fsencode(os.path.join(root, relative))) > PATH_MAX:
        raise RequestError(400, f"the path '{shown(relative)}' is too long (at most {PATH_MAX} bytes with the server root)")
    for part in relative.replace("\\", "/").split("/"):
        if len(os.fsencode(part)) > NAME_MAX:
            raise RequestError(400, f"the name '{shown(part)}' in the path is too long (at most {NAME_MAX} bytes)")


def is_inside(root: Path, path: str | Path) -> bool:
    """True when `path`, with every symlink resolved, is `root` or under it."""
    real = os.path.realpath(path)
    return os.path.commonpath([real, str(root)]) == str(root)


def confine_folder(root: Path, folder: Path) -> Path:
    """A pipeline folder, resolved, when it lies inside the root."""
    real = Path(os.path.realpath(folder))
    if not is_inside(root, real):
        raise RequestError(
            403, f"pipeline folder '{_relative(root, folder)}' is outside the server root (a symlink leads out); {_OUTSIDE_HINT}"
        )
    return real


def confine_export(root: Path, folder: Path) -> None:
    """What an export reads and writes in `folder` (its top level and `stages/`) lies inside the root."""
    if not is_inside(root, folder):
        raise RequestError(
            403, f"pipeline folder '{_relative(root, folder)}' is outside the server root (a symlink leads out); {_OUTSIDE_HINT}"
        )
    for path in (folder / m.STAGES_DIR, *_entries(folder), *_entries(folder / m.STAGES_DIR)):
        if not is_inside(root, path):
            raise RequestError(
                403, f"pipeline folder '{_relative(root, folder)}': '{path.relative_to(folder).as_posix()}' is outside "
                f"the server root (a symlink leads out); {_OUTSIDE_HINT}"
            )


def confine_pipeline(root: Path, pipeline: m.Pipeline, params: dict[str, Any] | None = None) -> None:
    """Every path `pipeline` names lies inside the root (else a 403 naming the first that does not);
    a path named by a parameter as params.yaml, with `params` over it, names it."""
    from nb2pipe.spec import effective_params, resolved_pipeline

    pipeline = resolved_pipeline(pipeline, effective_params(pipeline, params or {}))
    for what, written, path in _named_paths(pipeline):
        if not is_inside(root, path):
            raise RequestError(403, f"{what} '{shown(written)}' is outside the server root; {_OUTSIDE_HINT}")
    for stage in pipeline.stages:
        for written in (*stage.deps, *stage.produced):
            path = lockfile.resolve(pipeline, written)
            leak = _symlink_leading_out(root, path) if path.is_dir() else None
            if leak is not None:
                raise RequestError(
                    403, f"stage '{stage.name}': '{shown(written)}' holds '{shown(os.path.relpath(leak, path))}', "
                    f"a symlink to outside the server root; {_OUTSIDE_HINT}"
                )


def _named_paths(pipeline: m.Pipeline) -> Iterator[tuple[str, str, Path]]:
    """(what, as written, path on disk) of every path the pipeline names."""
    folder = Path(pipeline.root)
    yield "working folder (wdir)", pipeline.wdir, lockfile.wdir(pipeline)
    yield "params file", pipeline.params_file, folder / pipeline.params_file
    if pipeline.source_notebook:
        yield "source notebook", pipeline.source_notebook, folder / pipeline.source_notebook
    for name in (m.LOCK_FILE, m.STATE_DIR, RUNS_DIR):
        yield "pipeline file", name, folder / name
    for stage in pipeline.stages:
        if stage.script:
            yield f"stage '{stage.name}': script", stage.script, folder / stage.script
        for kind, paths in (("dep", stage.deps), ("out", stage.outs), ("metrics file", stage.metrics)):
            for written in paths:
                yield f"stage '{stage.name}': {kind}", written, lockfile.resolve(pipeline, written)


def _symlink_leading_out(root: Path, folder: Path) -> str | None:
    """The first symlink under `folder` (followed where it stays inside) that leads out of `root`."""
    seen: set[str] = set()
    pending = [str(folder)]
    while pending:
        current = pending.pop()
        real = os.path.realpath(current)
        if real in seen:
            continue
        seen.add(real)
        try:
            with os.scandir(current) as entries:
                listing = list(entries)
        except OSError:
            continue
        for entry in listing:
            if entry.is_symlink() and not is_inside(root, entry.path):
                return entry.path
            if entry.is_dir():  # follows a symlink that stays inside
                pending.append(entry.path)
    return None


def _entries(folder: Path) -> list[Path]:
    try:
        return [Path(entry.path) for entry in os.scandir(folder)]
    except OSError:
        return []


def _relative(root: Path, path: Path) -> str:
    try:
        return Path(os.path.abspath(path)).relative_to(root).as_posix()
    except ValueError:
        return str(path)
