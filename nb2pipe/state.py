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
import stat
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nb2pipe import model as m
from nb2pipe.graph import order, upstream
from nb2pipe.files import read_user_text
from nb2pipe.hashing import HashCache, atomic_write, hash_bytes, memo_by_stat
from nb2pipe.notebook import notebook_hash
from nb2pipe.percent import read_cells
from nb2pipe.spec import output_problem, safe_load
from nb2pipe.errors import Nb2PipeError, SpecError
from nb2pipe.vocabulary import Outcome, StageState

LOCK_SCHEMA = 1
L_SCHEMA, L_STAGES, L_CODE, L_PARAMS, L_DEPS, L_OUTS = "schema", "stages", "code", "params", "deps", "outs"
LAST_FILE = "last.json"
HASH_CACHE_FILE = "hashcache.json"
MAX_SCRIPT_BYTES = 1 << 30

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

# stage states (nb2pipe.vocabulary spells them)
UP_TO_DATE, STALE, NEVER_RUN_STATE, FAILED, RUNNING, CANCELLED = (
    StageState.UP_TO_DATE, StageState.STALE, StageState.NEVER_RUN, StageState.FAILED, StageState.RUNNING, StageState.CANCELLED
)

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
    return HashCache(state_dir(pipeline) / HASH_CACHE_FILE)


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


def read_lock(pipeline: m.Pipeline) -> dict[str, dict]:
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
            raise SpecError(f"{damaged}: the entry of stage {name!r} {problem}; restore the file from git, or delete that entry to rerun the stage")
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


def write_lock(pipeline: m.Pipeline, entries: dict[str, dict]) -> None:
    known = set(pipeline.names)
    data = {L_SCHEMA: LOCK_SCHEMA, L_STAGES: {k: v for k, v in entries.items() if k in known}}
    header = "# Written by `nb2pipe run`: what each stage consumed and produced. Commit it.\n"
    atomic_write(lock_path(pipeline), header + yaml.dump(data, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=10_000))


def read_last(pipeline: m.Pipeline) -> dict[str, dict]:
    """Each stage's last attempt; entries of the wrong shape are dropped (the file is a record
    nb2pipe keeps for itself, not something a run depends on)."""
    data = read_json(state_dir(pipeline) / LAST_FILE, {})
    if not isinstance(data, dict):
        return {}
    return {name: entry for name, entry in data.items() if isinstance(entry, dict) and isinstance(entry.get("outcome", ""), str)}


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


def read_script(pipeline: m.Pipeline, stage: m.Stage) -> str:
    """The text of a stage's script (a FIFO or /dev/zero named as the script is refused, not read forever)."""
    path = Path(pipeline.root) / str(stage.script)
    return read_user_text(path, what=f"stage '{stage.name}': script", limit=MAX_SCRIPT_BYTES, error=SpecError, hint="re-export the notebook")


def code_hash(pipeline: m.Pipeline, stage: m.Stage, text: str | None = None) -> str:
    """The hash of the stage's normalized code (of `text` when given: the script as it was read)."""
    if stage.cmd:
        return hash_bytes(json.dumps(list(stage.cmd)).encode())
    if text is not None:
        return hash_bytes(normalized_code(text).encode())
    path = Path(pipeline.root) / str(stage.script)
    try:
        return memo_by_stat("code", path, lambda: code_hash(pipeline, stage, read_script(pipeline, stage)))
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


def same_value(a: Any, b: Any) -> bool:
    """Parameter values compared as their canonical JSON, so NaN equals NaN."""
    return a == b or json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


@dataclass(frozen=True)
class StageInputs:
    """What a stage consumes, hashed once when it is dispatched: that is what its lock entry, the
    run cache and the run history record, even if a file changes while the stage runs."""

    code: str
    params: dict[str, Any]
    deps: dict[str, str | None]
    script: str | None = field(default=None, compare=False, repr=False)  # the text the code hash is of

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.code, self.params, self.deps)

    def lock_entry(self, outs: dict[str, str | None]) -> dict[str, Any]:
        return lock_entry(self.code, self.params, self.deps, outs)


def stage_inputs(pipeline: m.Pipeline, stage: m.Stage, params: dict[str, Any], cache: HashCache) -> StageInputs:
    script = None if stage.cmd else read_script(pipeline, stage)
    return StageInputs(
        code=code_hash(pipeline, stage, script),
        params=param_values(stage, params),
        deps=hash_paths(pipeline, stage.deps, cache),
        script=script,
    )


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
    inputs: StageInputs | None = None,
) -> list[m.Reason]:
    """Why `stage` is not up to date (empty when it is), cheapest checks first. `inputs`, when
    given, are the stage's inputs as hashed already (the runner hashes them once, at dispatch)."""
    if not entry:
        return [m.Reason(NEVER_RUN)]
    reasons: list[m.Reason] = []
    code = inputs.code if inputs else code_hash(pipeline, stage)
    if entry.get(L_CODE) != code:
        reasons.append(m.Reason(CODE_CHANGED))
    recorded = entry.get(L_PARAMS) or {}
    for name, value in (inputs.params if inputs else param_values(stage, params)).items():
        if name not in recorded:
            reasons.append(m.Reason(PARAM_CHANGED, f"{name} (new) → {_short(value)}"))
        elif not same_value(recorded[name], value):
            reasons.append(m.Reason(PARAM_CHANGED, f"{name} {_short(recorded[name])} → {_short(value)}"))
    recorded_deps = entry.get(L_DEPS) or {}
    # a file the stage both reads and writes (appends to) is checked as an out, against what the
    # stage left there, not against what it found
    deps = tuple(p for p in stage.deps if p not in stage.produced)
    dep_hashes = {p: inputs.deps[p] for p in deps} if inputs else hash_paths(pipeline, deps, cache)
    for path, digest in dep_hashes.items():
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
        if previous and previous.get("outcome") == Outcome.FAILED:
            reasons.insert(0, m.Reason(LAST_RUN_FAILED, previous.get("error", "")))
        if name in lock:  # "never run" says it all
            reasons.extend(m.Reason(UPSTREAM_STALE, up) for up in edges[name] if statuses[up].is_stale)
        statuses[name] = StageStatus(name, _state(name, reasons, running, lock), reasons, previous)
    cache.save()
    return PipelineStatus(pipeline, source_in_sync(pipeline), list(statuses.values()))


def _state(name: str, reasons: list[m.Reason], running: set[str], lock: dict) -> str:
    if name in running:
        return RUNNING
    failed = [r for r in reasons if r.kind == LAST_RUN_FAILED]
    if failed:
        return CANCELLED if failed[0].detail.startswith("interrupted") else FAILED
    if name not in lock:
        return NEVER_RUN_STATE
    return STALE if reasons else UP_TO_DATE
