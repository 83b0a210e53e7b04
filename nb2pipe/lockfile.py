"""A pipeline's records on disk: where its state lives, the lock file and the last attempts.

Two records, kept apart as DVC keeps dvc.yaml and dvc.lock:
- `nb2pipe.lock` (committed): per stage the hash of its normalized code, the values of the params
  it reads, and the content hashes of its deps and outs. Written sorted and atomically; read with
  its schema checked, so a damaged or newer file is an error that names the fix.
- `.nb2pipe/last.json` (not committed): how each stage's last attempt went (outcome, run id,
  duration, error, executed notebook).
Paths of deps and outs are relative to the pipeline's wdir: `resolve` and `out_path` place them.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from nb2pipe import model as m
from nb2pipe.errors import SpecError
from nb2pipe.hashing import HashCache, atomic_write, memo_by_stat
from nb2pipe.spec import output_problem, safe_load

LOCK_SCHEMA = 1
L_SCHEMA, L_STAGES, L_CODE, L_PARAMS, L_DEPS, L_OUTS = "schema", "stages", "code", "params", "deps", "outs"
LAST_FILE = "last.json"
HASH_CACHE_FILE = "hashcache.json"

_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


# --- paths -----------------------------------------------------------------------------------


def state_dir(pipeline: m.Pipeline) -> Path:
    return Path(pipeline.root) / m.STATE_DIR


def wdir(pipeline: m.Pipeline) -> Path:
    return Path(os.path.normpath(Path(pipeline.root) / pipeline.wdir))


def resolve(pipeline: m.Pipeline, path: str) -> Path:
    """A dep or out path (relative to wdir) as a path on disk."""
    return Path(os.path.normpath(os.path.join(pipeline.root, pipeline.wdir, path)))


def out_path(pipeline: m.Pipeline, path: str, *, as_found: bool = False) -> Path:
    """An out on disk, as a path nb2pipe may write, restore or delete, or a SpecError.

    The path's last part is never resolved: a symlink there is replaced or removed as a link,
    never followed. By default the out must pass spec.output_problem (inside the project,
    symlinks resolved, the last part too). `as_found` is for putting back what a stage left:
    whatever the stage made of its out (even a symlink leading out), the entry itself must lie
    inside the project or the pipeline folder, and be neither of them nor a parent."""
    target = resolve(pipeline, path)
    entry = os.path.join(os.path.realpath(target.parent), target.name)
    if not as_found:
        problem = output_problem(pipeline, path) or _special_file_problem(path, entry)
    elif not any(_strictly_inside(entry, os.path.realpath(f)) for f in (wdir(pipeline), pipeline.root)):
        problem = f"output '{path}' is not inside the project '{wdir(pipeline)}'; fix the path"
    else:
        problem = None
    if problem:
        raise SpecError(problem)
    return Path(entry)


def _special_file_problem(path: str, entry: str) -> str | None:
    """An out that is a FIFO, socket or device cannot be kept and put back (a FIFO would block)."""
    try:
        mode = os.stat(entry).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return f"output '{path}' is not a file or folder but a special file; remove it or choose another path"


def _strictly_inside(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def hash_cache(pipeline: m.Pipeline) -> HashCache:
    return HashCache(state_dir(pipeline) / HASH_CACHE_FILE, written_once=state_dir(pipeline) / m.VARS_DIR)


# --- small files -----------------------------------------------------------------------------


def read_json(path: Path, default: Any) -> Any:
    """A JSON file nb2pipe wrote for itself; `default` when it is missing or unreadable."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return default


# --- the lock file ---------------------------------------------------------------------------


def lock_path(pipeline: m.Pipeline) -> Path:
    return Path(pipeline.root) / m.LOCK_FILE


def read_lock(pipeline: m.Pipeline) -> dict[str, dict[str, Any]]:
    """The lock's stage entries ({} when there is no lock yet); an error naming the fix when the
    file is damaged or written by a newer nb2pipe."""
    path = lock_path(pipeline)
    damaged = f"'{path}' is damaged"
    fix = "restore it from git, or delete it to rerun every stage"
    try:
        data = memo_by_stat("yaml", path, lambda: safe_load(path.read_bytes().decode("utf-8")))
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        raise SpecError(f"'{path}' is a folder, not nb2pipe's lock file; move it away") from None
    except UnicodeDecodeError:
        raise SpecError(f"{damaged} (not UTF-8 text); {fix}") from None
    except (yaml.YAMLError, RecursionError):
        raise SpecError(f"{damaged} (not valid YAML); {fix}") from None
    if not data:
        return {}
    if not isinstance(data, dict) or not isinstance(data.get(L_STAGES) or {}, dict):
        raise SpecError(f"'{path}' is not an nb2pipe lock file; {fix}")
    schema = data.get(L_SCHEMA)
    if isinstance(schema, int) and not isinstance(schema, bool) and schema > LOCK_SCHEMA:
        raise SpecError(f"'{path}' has schema version {schema}, newer than this nb2pipe reads ({LOCK_SCHEMA}); upgrade nb2pipe")
    if schema != LOCK_SCHEMA:
        raise SpecError(f"{damaged} (schema version {schema!r}, expected {LOCK_SCHEMA}); {fix}")
    stages = data.get(L_STAGES) or {}
    for name, entry in stages.items():
        problem = _entry_problem(entry)
        if problem:
            raise SpecError(
                f"{damaged}: the entry of stage {name!r} {problem}; restore the file from git, or delete that entry to rerun the stage"
            )
    return dict(stages)  # callers replace entries, never change them in place


def _entry_problem(entry: Any) -> str | None:
    """What is wrong with a lock entry's shape (None when it is right)."""
    if not isinstance(entry, dict):
        return "is not a mapping"
    if not isinstance(entry.get(L_CODE), str):
        return f"has no '{L_CODE}' hash"
    if not isinstance(entry.get(L_PARAMS, {}), dict):
        return f"has '{L_PARAMS}' that is not a mapping"
    for key in (L_DEPS, L_OUTS):
        files = entry.get(key, {})
        if not isinstance(files, dict) or not all(isinstance(p, str) and (d is None or isinstance(d, str)) for p, d in files.items()):
            return f"has '{key}' that is not a mapping of paths to hashes"
    return None


def write_lock(pipeline: m.Pipeline, entries: dict[str, dict[str, Any]]) -> None:
    known = set(pipeline.names)
    data = {L_SCHEMA: LOCK_SCHEMA, L_STAGES: {k: v for k, v in entries.items() if k in known}}
    header = "# Written by `nb2pipe run`: what each stage consumed and produced. Commit it.\n"
    atomic_write(
        lock_path(pipeline),
        header + yaml.dump(data, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=10_000),
    )


def read_last(pipeline: m.Pipeline) -> dict[str, dict[str, Any]]:
    """Each stage's last attempt; entries of the wrong shape are dropped (the file is a record
    nb2pipe keeps for itself, not something a run depends on)."""
    data = read_json(state_dir(pipeline) / LAST_FILE, {})
    if not isinstance(data, dict):
        return {}
    return {name: entry for name, entry in data.items() if isinstance(entry, dict) and isinstance(entry.get("outcome", ""), str)}


def write_last(pipeline: m.Pipeline, last: dict[str, dict[str, Any]]) -> None:
    atomic_write(state_dir(pipeline) / LAST_FILE, json.dumps(last, indent=1, sort_keys=True))


def lock_entry(code: str, params: dict[str, Any], deps: dict[str, Any], outs: dict[str, Any]) -> dict[str, Any]:
    return {L_CODE: code, L_PARAMS: params, L_DEPS: deps, L_OUTS: outs}
