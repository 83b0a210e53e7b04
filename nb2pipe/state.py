"""Why each stage of a pipeline is (not) up to date: its status, a list of reasons.

What a stage consumes is hashed once, at dispatch (`StageInputs`): its normalized code (comments,
blank lines, markdown and the parameters cells do not count), the values of the params it reads,
and the content hashes of its deps. Its status compares that, and its outs on disk, with what
the lock recorded (lockfile.py), cheapest first: never run, last run failed, code changed, param
changed, dep changed, out missing / modified, upstream stale. A stage's kernel, env values
(hashed) and, with track-env, the versions of what it imports are part of it too (stage_env.py).
"""

from __future__ import annotations

import io
import json
import tokenize
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nb2pipe import model as m
from nb2pipe.errors import Nb2PipeError, SpecError
from nb2pipe.files import read_user_text
from nb2pipe.graph import after_only, order, upstream
from nb2pipe.hashing import HashCache, hash_bytes, memo_by_stat
from nb2pipe.lockfile import L_CODE, L_DEPS, L_OUTS, L_PARAMS, hash_cache, lock_entry, read_last, read_lock, resolve
from nb2pipe.percent import read_cells
from nb2pipe.settings import effective
from nb2pipe.spec import resolved_pipeline, stage_param_values
from nb2pipe.stage_env import L_ENV, L_ENVIRONMENT, L_KERNEL, Runtime, runtime
from nb2pipe.stage_env import reasons as runtime_reasons
from nb2pipe.vocabulary import Outcome, StageState

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

MAX_SCRIPT_BYTES = 1 << 30


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
    return read_user_text(
        path, what=f"stage '{stage.name}': script", limit=MAX_SCRIPT_BYTES, error=SpecError, hint="re-export the notebook"
    )


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


def param_values(pipeline: m.Pipeline, stage: m.Stage, params: dict[str, Any]) -> dict[str, Any]:
    """The values of the params `stage` reads, as their canonical JSON (what the lock records)."""
    return {name: _canonical(value) for name, value in stage_param_values(pipeline, stage, params).items()}


def _canonical(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def hash_paths(pipeline: m.Pipeline, paths: tuple[str, ...], cache: HashCache) -> dict[str, str | None]:
    return {p: cache.hash_path(resolve(pipeline, p)) for p in paths}


def fingerprint(code: str | None, params: dict[str, Any], deps: dict[str, str | None], runtime: Mapping[str, Any] | None = None) -> str:
    """What a run cache entry is keyed by: the stage's code, param values and dep hashes (code
    None: a lock entry without one), and its runtime's lock keys when it has any (a stage
    without settings keeps the fingerprint it had before settings existed)."""
    parts: list[Any] = [code, params, deps] + ([dict(runtime)] if runtime else [])
    return hash_bytes(json.dumps(parts, sort_keys=True).encode())


def entry_fingerprint(entry: Mapping[str, Any]) -> str:
    """The fingerprint of what a lock entry records."""
    recorded = {key: entry[key] for key in (L_ENV, L_KERNEL, L_ENVIRONMENT) if key in entry}
    return fingerprint(entry.get(L_CODE), entry.get(L_PARAMS) or {}, entry.get(L_DEPS) or {}, recorded)


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
    runtime: Runtime = field(default_factory=Runtime)  # kernel, env hashes, tracked environment

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.code, self.params, self.deps, self.runtime.entry())

    def lock_entry(self, outs: dict[str, str | None]) -> dict[str, Any]:
        return lock_entry(self.code, self.params, self.deps, outs) | self.runtime.entry()


def stage_inputs(pipeline: m.Pipeline, stage: m.Stage, params: dict[str, Any], cache: HashCache, script: str | None = None) -> StageInputs:
    """What the stage consumes now; `script`, when given, is its code instead of the file on disk."""
    if script is None and not stage.cmd:
        # the script on disk: normalizing it (tokenize) costs more than reading it, so that is done
        # once per text and kept in the hash cache; a text given (not saved yet) is not remembered
        text = script = read_script(pipeline, stage)
        code = cache.derived(f"normalized-code {hash_bytes(text.encode())}", lambda: code_hash(pipeline, stage, text))
    else:
        code = code_hash(pipeline, stage, script)
    return StageInputs(
        code=code,
        params=param_values(pipeline, stage, params),
        deps=hash_paths(pipeline, stage.deps, cache),
        script=script,
        runtime=runtime(pipeline, stage, script),
    )


# --- status ----------------------------------------------------------------------------------


@dataclass
class StageStatus:
    name: str
    state: str
    reasons: list[m.Reason] = field(default_factory=list)
    last_run: dict[str, Any] | None = None

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
    entry: dict[str, Any] | None,
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
    for name, value in (inputs.params if inputs else param_values(pipeline, stage, params)).items():
        if name not in recorded:
            reasons.append(m.Reason(PARAM_CHANGED, f"{name} (new) → {_short(value)}"))
        elif not same_value(recorded[name], value):
            reasons.append(m.Reason(PARAM_CHANGED, f"{name} {_short(recorded[name])} → {_short(value)}"))
    reasons.extend(runtime_reasons(entry, inputs.runtime if inputs else _runtime_now(pipeline, stage)))
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


def _runtime_now(pipeline: m.Pipeline, stage: m.Stage) -> Runtime:
    """The stage's runtime for `status` (its script is read only when track-env needs its imports)."""
    script = read_script(pipeline, stage) if effective(pipeline, stage).track_env and not stage.cmd else None
    return runtime(pipeline, stage, script)


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
    from nb2pipe.notebook import notebook_hash  # only here: `run` does not read the notebook

    path = Path(pipeline.root) / pipeline.source_notebook
    try:
        return memo_by_stat("notebook", path, lambda: notebook_hash(path)) == pipeline.source_hash
    except (Nb2PipeError, OSError):
        return False


def upstream_reasons(
    ups: Iterable[str], runs: Callable[[str], bool], after_only: Collection[str], *, deps_hashed: bool
) -> list[m.Reason]:
    """`upstream stale: U` for each upstream stage U of a stage that runs before it (`runs(U)`).

    The plan (`status`, `--dry-run`) and the run both ask this, so they agree. An upstream in
    `after_only` (an `after:` edge, no data) always counts: no file hash could tell. A data
    upstream counts only while its outs are not hashed yet (the plan); in a run the dep hashes,
    taken after it ran, decide, so identical outs leave the stage up to date (early cut-off)."""
    return [m.Reason(UPSTREAM_STALE, up) for up in ups if runs(up) and (up in after_only or not deps_hashed)]


def pipeline_status(
    pipeline: m.Pipeline, params: dict[str, Any], running: Collection[str] = frozenset(), scripts: Mapping[str, str] | None = None
) -> PipelineStatus:
    """Each stage's state and reasons. `scripts`, when given, are the stages' scripts as they
    would be exported now (by stage name), checked instead of the files on disk."""
    pipeline = resolved_pipeline(pipeline, params)
    lock = read_lock(pipeline)
    last = read_last(pipeline)
    cache = hash_cache(pipeline)
    edges = upstream(pipeline)
    only_after = after_only(pipeline)
    statuses: dict[str, StageStatus] = {}
    for name in order(pipeline, edges):
        stage = pipeline.stage(name)
        script = (scripts or {}).get(name)
        inputs = None if script is None or stage.cmd else stage_inputs(pipeline, stage, params, cache, script)
        reasons = stage_reasons(pipeline, stage, lock.get(name), params, cache, inputs)
        previous = last.get(name)
        if previous and previous.get("outcome") == Outcome.FAILED:
            reasons.insert(0, m.Reason(LAST_RUN_FAILED, previous.get("error", "")))
        if name in lock:  # "never run" says it all
            reasons.extend(upstream_reasons(edges[name], lambda up: statuses[up].is_stale, only_after[name], deps_hashed=False))
        statuses[name] = StageStatus(name, _state(name, reasons, running, lock), reasons, previous)
    cache.save()
    return PipelineStatus(pipeline, source_in_sync(pipeline), list(statuses.values()))


def _state(name: str, reasons: list[m.Reason], running: Collection[str], lock: dict[str, Any]) -> str:
    if name in running:
        return RUNNING
    failed = [r for r in reasons if r.kind == LAST_RUN_FAILED]
    if failed:
        return CANCELLED if failed[0].detail.startswith("interrupted") else FAILED
    if name not in lock:
        return NEVER_RUN_STATE
    return STALE if reasons else UP_TO_DATE
