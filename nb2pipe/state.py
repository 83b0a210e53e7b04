"""What a pipeline's stages consumed and produced, and why each one is (not) up to date.

Two records, kept apart as DVC keeps dvc.yaml and dvc.lock:
- `nb2pipe.lock` (committed): per stage the hash of its normalized code, the values of the params
  it reads, and the content hashes of its deps and outs. Written sorted and atomically.
- `.nb2pipe/last.json` (not committed): how each stage's last attempt went (outcome, run id,
  duration, error, executed notebook).

A stage's status is a list of `Reason`s, checked cheapest first: never run, last run failed,
code changed, param changed, dep changed, out missing / modified, upstream stale.
"""

from __future__ import annotations

import io
import json
import os
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nb2pipe import model as m
from nb2pipe.graph import order, upstream
from nb2pipe.hashing import HashCache, atomic_write, hash_bytes, memo_by_stat
from nb2pipe.notebook import notebook_hash
from nb2pipe.percent import read_cells
from nb2pipe.spec import safe_load
from nb2pipe.errors import Nb2PipeError, SpecError

LOCK_SCHEMA = 1
L_SCHEMA, L_STAGES, L_CODE, L_PARAMS, L_DEPS, L_OUTS = "schema", "stages", "code", "params", "deps", "outs"
LAST_FILE = "last.json"
HASH_CACHE_FILE = "hashcache.json"

# reason kinds, spelled once (the CLI, the JSON and the sidebar show them as they are)
NEVER_RUN = "never run"
LAST_RUN_FAILED = "last run failed"
CODE_CHANGED = "code changed"
PARAM_CHANGED = "param changed"
DEP_CHANGED = "dep changed"
DEP_MISSING = "dep missing"
OUT_MISSING = "out missing"
OUT_MODIFIED = "out modified"
UPSTREAM_STALE = "upstream stale"

# stage states
UP_TO_DATE, STALE, NEVER_RUN_STATE, FAILED, RUNNING = "up-to-date", "stale", "never-run", "failed", "running"

_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


# --- paths -----------------------------------------------------------------------------------


def state_dir(pipeline: m.Pipeline) -> Path:
    return Path(pipeline.root) / m.STATE_DIR


def wdir(pipeline: m.Pipeline) -> Path:
    return Path(os.path.normpath(Path(pipeline.root) / pipeline.wdir))


def resolve(pipeline: m.Pipeline, path: str) -> Path:
    """A dep or out path (relative to wdir) as a path on disk."""
    return Path(os.path.normpath(os.path.join(pipeline.root, pipeline.wdir, path)))


def hash_cache(pipeline: m.Pipeline) -> HashCache:
    return HashCache(state_dir(pipeline) / HASH_CACHE_FILE)


# --- small files -----------------------------------------------------------------------------


def read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


# --- the lock file ---------------------------------------------------------------------------


def lock_path(pipeline: m.Pipeline) -> Path:
    return Path(pipeline.root) / m.LOCK_FILE


def read_lock(pipeline: m.Pipeline) -> dict[str, dict]:
    """The lock's stage entries ({} when there is no lock yet)."""
    path = lock_path(pipeline)
    try:
        data = memo_by_stat("yaml", path, lambda: safe_load(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return {}
    except yaml.YAMLError:
        raise SpecError(f"'{path}' is damaged (not valid YAML); restore it from git, or delete it to rerun every stage") from None
    if not data:
        return {}
    if not isinstance(data, dict) or not isinstance(data.get(L_STAGES, {}), dict):
        raise SpecError(f"'{path}' is not an nb2pipe lock file; restore it from git or delete it")
    return dict(data.get(L_STAGES) or {})  # callers replace entries, never change them in place


def write_lock(pipeline: m.Pipeline, entries: dict[str, dict]) -> None:
    known = set(pipeline.names)
    data = {L_SCHEMA: LOCK_SCHEMA, L_STAGES: {k: v for k, v in entries.items() if k in known}}
    header = "# Written by `nb2pipe run`: what each stage consumed and produced. Commit it.\n"
    atomic_write(lock_path(pipeline), header + yaml.dump(data, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=10_000))


def read_last(pipeline: m.Pipeline) -> dict[str, dict]:
    return read_json(state_dir(pipeline) / LAST_FILE, {})


def write_last(pipeline: m.Pipeline, last: dict[str, dict]) -> None:
    atomic_write(state_dir(pipeline) / LAST_FILE, json.dumps(last, indent=1, sort_keys=True))


# --- what a stage is made of -----------------------------------------------------------------


def normalized_code(text: str) -> str:
    """Code with comments, blank lines, markdown and the parameters cells removed.

    Works on percent-format scripts, cut into cells where jupytext cuts them (percent.read_cells:
    a marker-like line inside a string is code, a markdown cell is not); `.ipynb` text is read as
    JSON first.
    """
    if text.lstrip().startswith("{"):
        try:
            nb = json.loads(text)
            cells = [
                "".join(c.get("source", ""))
                for c in nb.get("cells", [])
                if c.get("cell_type") == "code" and not _is_parameters(c.get("metadata", {}).get("tags", []))
            ]
            return "\n".join(_strip_comments(c) for c in cells)
        except ValueError:
            pass
    cells = [
        "\n".join(cell.lines)
        for cell in read_cells(text)
        if cell.is_code and '"parameters"' not in cell.marker and '"injected-parameters"' not in cell.marker
    ]
    return "\n".join(code for code in map(_strip_comments, cells) if code)


def _is_parameters(tags: list[str]) -> bool:
    return "parameters" in tags or "injected-parameters" in tags


def _strip_comments(code: str) -> str:
    """The code without comments, trailing spaces and blank lines (tokenized, so a `#` inside a
    string stays)."""
    lines = code.splitlines()
    try:
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type == tokenize.COMMENT:
                row, col = token.start
                lines[row - 1] = lines[row - 1][:col]
    except (tokenize.TokenError, IndentationError, SyntaxError):  # IPython syntax: drop comment lines
        lines = [line for line in lines if not line.lstrip().startswith("#")]
    return "\n".join(line.rstrip() for line in lines if line.strip())


def code_hash(pipeline: m.Pipeline, stage: m.Stage) -> str:
    if stage.cmd:
        return hash_bytes(json.dumps(list(stage.cmd)).encode())
    path = Path(pipeline.root) / str(stage.script)
    try:
        return memo_by_stat("code", path, lambda: hash_bytes(normalized_code(path.read_text(encoding="utf-8")).encode()))
    except OSError:
        raise SpecError(f"stage '{stage.name}': script '{path}' is missing; re-export the notebook") from None


def param_values(stage: m.Stage, params: dict[str, Any]) -> dict[str, Any]:
    missing = [p for p in stage.params if p not in params]
    if missing:
        raise SpecError(
            f"stage '{stage.name}' reads parameter '{missing[0]}', which params.yaml does not set; "
            "add it to params.yaml or re-export the notebook"
        )
    return {p: _canonical(params[p]) for p in stage.params}


def _canonical(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def hash_paths(pipeline: m.Pipeline, paths: tuple[str, ...], cache: HashCache) -> dict[str, str | None]:
    return {p: cache.hash_path(resolve(pipeline, p)) for p in paths}


def fingerprint(code: str, params: dict[str, Any], deps: dict[str, str | None]) -> str:
    """What a run cache entry is keyed by: the stage's code, param values and dep hashes."""
    return hash_bytes(json.dumps([code, params, deps], sort_keys=True).encode())


def lock_entry(code: str, params: dict, deps: dict, outs: dict) -> dict[str, Any]:
    return {L_CODE: code, L_PARAMS: params, L_DEPS: deps, L_OUTS: outs}


# --- status ----------------------------------------------------------------------------------


@dataclass
class StageStatus:
    name: str
    state: str
    reasons: list[m.Reason] = field(default_factory=list)
    last_run: dict | None = None

    @property
    def is_stale(self) -> bool:
        return bool(self.reasons)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "reasons": [str(r) for r in self.reasons], "last_run": self.last_run}


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def stage_reasons(
    pipeline: m.Pipeline,
    stage: m.Stage,
    entry: dict | None,
    params: dict[str, Any],
    cache: HashCache,
) -> list[m.Reason]:
    """Why `stage` is not up to date (empty when it is), cheapest checks first."""
    if not entry:
        return [m.Reason(NEVER_RUN)]
    reasons: list[m.Reason] = []
    if entry.get(L_CODE) != code_hash(pipeline, stage):
        reasons.append(m.Reason(CODE_CHANGED))
    recorded = entry.get(L_PARAMS) or {}
    for name, value in param_values(stage, params).items():
        if name not in recorded:
            reasons.append(m.Reason(PARAM_CHANGED, f"{name} (new) → {_short(value)}"))
        elif recorded[name] != value:
            reasons.append(m.Reason(PARAM_CHANGED, f"{name} {_short(recorded[name])} → {_short(value)}"))
    recorded_deps = entry.get(L_DEPS) or {}
    for path, digest in hash_paths(pipeline, stage.deps, cache).items():
        if digest is None:
            if recorded_deps.get(path, "") is not None:  # missing now, but not at the last run
                reasons.append(m.Reason(DEP_MISSING, path))
        elif recorded_deps.get(path) != digest:
            reasons.append(m.Reason(DEP_CHANGED, path))
    recorded_outs = entry.get(L_OUTS) or {}
    for path, digest in hash_paths(pipeline, stage.produced, cache).items():
        if digest is None:
            reasons.append(m.Reason(OUT_MISSING, path))
        elif recorded_outs.get(path) != digest:
            reasons.append(m.Reason(OUT_MODIFIED, path))
    return reasons


@dataclass
class PipelineStatus:
    pipeline: m.Pipeline
    source_in_sync: bool | None
    stages: list[StageStatus]

    def to_json(self, path: str) -> dict[str, Any]:
        return {
            "pipeline": path,
            "source_in_sync": self.source_in_sync,
            "stages": [s.to_json() for s in self.stages],
        }


def source_in_sync(pipeline: m.Pipeline) -> bool | None:
    """False when the source notebook changed since export; None when there is no source."""
    if not pipeline.source_notebook:
        return None
    path = Path(pipeline.root) / pipeline.source_notebook
    try:
        return memo_by_stat("notebook", path, lambda: notebook_hash(path)) == pipeline.source_hash
    except (Nb2PipeError, OSError):
        return False


def pipeline_status(pipeline: m.Pipeline, params: dict[str, Any], running: set[str] = frozenset()) -> PipelineStatus:
    lock = read_lock(pipeline)
    last = read_last(pipeline)
    cache = hash_cache(pipeline)
    edges = upstream(pipeline)
    statuses: dict[str, StageStatus] = {}
    for name in order(pipeline, edges):
        stage = pipeline.stage(name)
        reasons = stage_reasons(pipeline, stage, lock.get(name), params, cache)
        previous = last.get(name)
        if previous and previous.get("outcome") == "failed":
            reasons.insert(0, m.Reason(LAST_RUN_FAILED, previous.get("error", "")))
        if name in lock:  # "never run" says it all
            reasons.extend(m.Reason(UPSTREAM_STALE, up) for up in edges[name] if statuses[up].is_stale)
        statuses[name] = StageStatus(name, _state(name, reasons, running, lock), reasons, previous)
    cache.save()
    return PipelineStatus(pipeline, source_in_sync(pipeline), list(statuses.values()))


def _state(name: str, reasons: list[m.Reason], running: set[str], lock: dict) -> str:
    if name in running:
        return RUNNING
    if any(r.kind == LAST_RUN_FAILED for r in reasons):
        return FAILED
    if name not in lock:
        return NEVER_RUN_STATE
    return STALE if reasons else UP_TO_DATE
