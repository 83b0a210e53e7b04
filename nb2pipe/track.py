"""Every run recorded, compared and gated: `.nb2pipe/runs.db` (SQLite, WAL).

1. `RunStore.recorder()` is a run reporter: it turns the runner's events into rows — one per
   run (times, status, command, git commit and dirty flag, parameter values, environment) and
   one per stage (outcome, duration, fingerprint, lock entry with dep and out hashes, metrics).
2. A run still marked running whose process is gone is shown as `interrupted`.
3. `diff` puts two runs' params and metrics side by side; `gate` says whether a candidate run
   beats a baseline on chosen metrics (exit 0), does not (1), or cannot be judged (2).
4. The schema carries a version; `MIGRATIONS` brings an older database up to date in place.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from nb2pipe import model as m
from nb2pipe.errors import Nb2PipeError, SpecError
from nb2pipe.lockfile import L_OUTS, state_dir
from nb2pipe.provenance import RunFacts, environment_hash
from nb2pipe.run.events import Reporter
from nb2pipe.run.pidlock import is_locked, pid_alive
from nb2pipe.spec import declares
from nb2pipe.vocabulary import SUCCEEDED, EventName, Outcome, RunStatus

DB_FILE = "runs.db"
SCHEMA_VERSION = 4

# Each entry brings a database from the previous version to this one.
MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE runs (id TEXT PRIMARY KEY, started REAL, finished REAL, status TEXT, pid INTEGER,"
        " command TEXT, git_commit TEXT, git_dirty INTEGER, params TEXT, error TEXT, summary TEXT)",
        "CREATE TABLE stages (run_id TEXT, stage TEXT, outcome TEXT, duration REAL, fingerprint TEXT,"
        " lock TEXT, metrics TEXT, error TEXT, notebook TEXT, PRIMARY KEY (run_id, stage))",
    ],
    2: [
        "CREATE TABLE tags (name TEXT PRIMARY KEY, run_id TEXT NOT NULL)",
        "CREATE TABLE environments (hash TEXT PRIMARY KEY, data TEXT)",
        "ALTER TABLE runs ADD COLUMN env_hash TEXT",
    ],
    3: [  # sweeps: a trial is a run with the sweep's id and its parameter overrides
        "CREATE TABLE sweeps (id TEXT PRIMARY KEY, created REAL, command TEXT, trials TEXT)",
        "ALTER TABLE runs ADD COLUMN sweep TEXT",
        "ALTER TABLE runs ADD COLUMN trial TEXT",
        "ALTER TABLE stages ADD COLUMN from_run TEXT",  # a restored stage: the run that produced its outputs
    ],
    4: [  # retries: the failed tries of a stage that was tried again (JSON list; run/tries.py)
        "ALTER TABLE stages ADD COLUMN tries TEXT",
    ],
}


class UnknownRun(Nb2PipeError):
    pass


class DamagedHistory(SpecError):
    """runs.db cannot be read or written."""


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        migrate(db)
        _check_tables(db)
    except sqlite3.Error as e:
        raise DamagedHistory(
            f"the run history '{path}' is damaged ({e}); move it aside to start a new one: mv '{path}' '{path}.damaged'"
        ) from None
    return db


_Params = ParamSpec("_Params")
_Result = TypeVar("_Result")


def _history_errors(method: Callable[Concatenate[RunStore, _Params], _Result]) -> Callable[Concatenate[RunStore, _Params], _Result]:
    """sqlite's errors from reading the history become one line that says how to move it aside."""
    import functools

    def wrapper(self: RunStore, /, *args: _Params.args, **kwargs: _Params.kwargs) -> _Result:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.Error, ValueError, TypeError) as e:
            raise DamagedHistory(
                f"the run history '{self.path}' is damaged ({e}); move it aside to start a new one: mv '{self.path}' '{self.path}.damaged'"
            ) from None

    functools.update_wrapper(wrapper, method)
    return wrapper


def _check_tables(db: sqlite3.Connection) -> None:
    """Every table nb2pipe uses is there with the columns it uses (a query fails otherwise)."""
    for table, columns in (("runs", "id, started, finished, status, pid, command, git_commit, git_dirty, params, error, summary, env_hash,"
                                    " sweep, trial"),
                           ("stages", "run_id, stage, outcome, duration, fingerprint, lock, metrics, error, notebook, from_run"),
                           ("tags", "name, run_id"), ("environments", "hash, data"), ("sweeps", "id, created, command, trials")):
        db.execute(f"SELECT {columns} FROM {table} LIMIT 0")


def migrate(db: sqlite3.Connection) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise SpecError(f"runs.db has schema version {version}, newer than this nb2pipe ({SCHEMA_VERSION}); upgrade nb2pipe")
    for target in range(version + 1, SCHEMA_VERSION + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[target]:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {target}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


# --- the store -------------------------------------------------------------------------------


@dataclass
class RunStore:
    pipeline: m.Pipeline

    def __post_init__(self) -> None:
        self.path = state_dir(self.pipeline) / DB_FILE
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        return self.open()

    def open(self) -> sqlite3.Connection:
        """The history's connection, opened on first use: a damaged history raises here."""
        if self._db is None:
            self._db = connect(self.path)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- recording ---

    def recorder(
        self, command: list[str], warn: Callable[[str], None] | None = None, sweep: str | None = None, trial: dict[str, Any] | None = None
    ) -> Reporter:
        """A reporter that records the run it hears about (a sweep's trial: with the sweep's id and
        the trial's overrides). The history never stops a run: when it cannot be written (damaged,
        disk full), `warn` is told once and the run goes on."""
        facts = RunFacts(Path(self.pipeline.root))  # git and the environment, worked out once a stage started
        run_id: list[str] = []
        failed: list[str] = []
        noted_facts: list[bool] = []  # noted once known, at the latest when the run ends
        tries: dict[str, list[dict[str, Any]]] = {}  # per stage, its failed tries that were tried again

        def record(event: dict[str, Any]) -> None:
            if failed:
                return
            try:
                write(event)
            except (sqlite3.Error, OSError) as e:
                failed.append(str(e))
                if warn:
                    warn(f"the run history '{self.path}' could not be written ({e}); this run is not recorded in it")

        def write(event: dict[str, Any]) -> None:
            kind = event["event"]
            if kind == EventName.RUN_STARTED:
                run_id.append(event["run"])
                self.db.execute(
                    "INSERT INTO runs (id, started, status, pid, command, params, sweep, trial) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (event["run"], event["time"], RunStatus.RUNNING, event.get("pid"), json.dumps(command),
                     json.dumps(event.get("params", {}), default=str),
                     sweep, None if trial is None else json.dumps(trial, sort_keys=True, default=str)),
                )
            elif kind == EventName.STAGE_STARTED and run_id:
                facts.start()
                # what the stage consumes, hashed at dispatch: kept even if the run is killed
                self.db.execute(
                    "INSERT OR REPLACE INTO stages (run_id, stage, outcome, fingerprint, lock) VALUES (?, ?, ?, ?, ?)",
                    (run_id[0], event["stage"], RunStatus.RUNNING, event.get("fingerprint"), json.dumps(event.get("lock") or {})),
                )
            elif kind == EventName.STAGE_RETRY and run_id:
                tried = {"try": event.get("try"), "duration": event.get("duration"), "error": event.get("error"),
                         "notebook": self._pipeline_relative(event.get("notebook"))}  # fmt: skip
                tries.setdefault(event["stage"], []).append(tried)
                self.db.execute(
                    "UPDATE stages SET tries = ? WHERE run_id = ? AND stage = ?",
                    (json.dumps(tries[event["stage"]]), run_id[0], event["stage"]),
                )
            elif kind in (EventName.STAGE_FINISHED, EventName.STAGE_FAILED) and run_id:
                notebook = self._pipeline_relative(event.get("notebook"))
                producer = self._producer(event, run_id[0])
                self.db.execute(
                    "INSERT OR REPLACE INTO stages"
                    " (run_id, stage, outcome, duration, fingerprint, lock, metrics, error, notebook, from_run, tries)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id[0], event["stage"], event.get("outcome", Outcome.FAILED), event.get("duration"), event.get("fingerprint"),
                     json.dumps(event.get("lock") or {}), json.dumps(event.get("metrics") or {}), event.get("error"),
                     notebook or (producer["notebook"] if producer else None), producer["run_id"] if producer else None,
                     json.dumps(tries[event["stage"]]) if event["stage"] in tries else None),
                )
            if run_id and not noted_facts and (facts.ready() or kind == EventName.RUN_FINISHED):
                self._note_facts(run_id[0], *facts.result())
                noted_facts.append(True)
            if kind == EventName.RUN_FINISHED and run_id:
                errors = [
                    r["error"] for r in self.db.execute("SELECT error FROM stages WHERE run_id = ? AND error IS NOT NULL", (run_id[0],))
                ]
                self.db.execute(
                    "UPDATE runs SET finished = ?, status = ?, summary = ?, error = ? WHERE id = ?",
                    (event["time"], event.get("status", RunStatus.OK), event.get("summary"), "; ".join(errors) or None, run_id[0]),
                )

        return record

    def _note_facts(self, run_id: str, commit: str | None, dirty: bool | None, env: dict[str, Any]) -> None:
        env_hash = environment_hash(env)
        self.db.execute("INSERT OR IGNORE INTO environments VALUES (?, ?)", (env_hash, json.dumps(env)))
        self.db.execute(
            "UPDATE runs SET git_commit = ?, git_dirty = ?, env_hash = ? WHERE id = ?",
            (commit, None if dirty is None else int(dirty), env_hash, run_id),
        )

    def _producer(self, event: dict[str, Any], run_id: str) -> sqlite3.Row | None:
        """For a stage restored from the run cache: the latest recorded run in which a stage of
        that name and fingerprint ran (its executed notebook is the stage's, not copied)."""
        if event.get("outcome") != Outcome.RESTORED or not event.get("fingerprint"):
            return None
        row: sqlite3.Row | None = self.db.execute(
            "SELECT run_id, notebook FROM stages WHERE stage = ? AND fingerprint = ? AND outcome = ? AND run_id != ?"
            " ORDER BY rowid DESC LIMIT 1",
            (event["stage"], event["fingerprint"], Outcome.RAN, run_id),
        ).fetchone()
        return row

    def _pipeline_relative(self, path: str | None) -> str | None:
        """Paths in events are relative to where the run started; the store keeps them relative
        to the pipeline folder, so they mean the same from anywhere."""
        return os.path.relpath(os.path.abspath(path), self.pipeline.root) if path else None

    # --- reading ---

    def _mark_interrupted(self) -> None:
        """Runs still marked running whose process is gone were killed: say so."""
        lock_held = is_locked(state_dir(self.pipeline) / "run.pid")
        for row in self.db.execute("SELECT id, pid FROM runs WHERE status = ?", (RunStatus.RUNNING,)).fetchall():
            if not (lock_held and pid_alive(row["pid"])):
                self.db.execute(
                    "UPDATE runs SET status = ?, error = ? WHERE id = ?", (RunStatus.INTERRUPTED, "the run was killed", row["id"])
                )
                self.db.execute("UPDATE stages SET outcome = ?, error = ? WHERE run_id = ? AND outcome = ?",
                                (RunStatus.INTERRUPTED, "the run was killed", row["id"], RunStatus.RUNNING))

    @_history_errors
    def runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs, newest first, each with its per-stage records and flat metrics."""
        self._mark_interrupted()
        sql = "SELECT * FROM runs ORDER BY started DESC" + (f" LIMIT {int(limit)}" if limit else "")
        return [self._run(row) for row in self.db.execute(sql).fetchall()]

    def _run(self, row: sqlite3.Row) -> dict[str, Any]:
        stages = self.db.execute("SELECT * FROM stages WHERE run_id = ? ORDER BY rowid", (row["id"],)).fetchall()
        tags = [r["name"] for r in self.db.execute("SELECT name FROM tags WHERE run_id = ? ORDER BY name", (row["id"],))]
        run = {
            "id": row["id"],
            "started": row["started"],
            "finished": row["finished"],
            "duration": round(row["finished"] - row["started"], 3) if row["finished"] else None,
            "status": row["status"],
            "command": json.loads(row["command"] or "[]"),
            "git_commit": row["git_commit"],
            "git_dirty": None if row["git_dirty"] is None else bool(row["git_dirty"]),
            "params": json.loads(row["params"] or "{}"),
            "error": row["error"],
            "summary": row["summary"],
            "environment": row["env_hash"],
            "sweep": row["sweep"],
            "trial": json.loads(row["trial"]) if row["trial"] else None,
            "tags": tags,
            "stages": [
                {
                    "name": s["stage"],
                    "outcome": s["outcome"],
                    "duration": s["duration"],
                    "fingerprint": s["fingerprint"],
                    "lock": json.loads(s["lock"] or "{}"),
                    "metrics": json.loads(s["metrics"] or "{}"),
                    "error": s["error"],
                    "notebook": s["notebook"],
                    "from_run": s["from_run"],
                    "tries": json.loads(s["tries"] or "[]"),  # the failed tries before the last, when retried
                }
                for s in stages
            ],
        }
        run["metrics"] = flat_metrics(run["stages"])
        return run

    @_history_errors
    def resolve(self, ref: str) -> str:
        """A run id from a ref: a tag, 'latest', 'latest~N', an id or an unambiguous id prefix."""
        self._mark_interrupted()
        if ref == "latest" or ref.startswith("latest~"):
            back = ref[len("latest~"):] if "~" in ref else "0"
            rows = (
                self.db.execute("SELECT id FROM runs ORDER BY started DESC LIMIT 1 OFFSET ?", (int(back),)).fetchall()
                if back.isdigit()
                else []
            )
            if rows:
                return rows[0]["id"]
            raise UnknownRun(f"no run '{ref}' in this pipeline's history; see nb2pipe runs")
        tagged = self.db.execute("SELECT run_id FROM tags WHERE name = ?", (ref,)).fetchone()
        if tagged:
            return tagged["run_id"]
        matches = [r["id"] for r in self.db.execute("SELECT id FROM runs WHERE substr(id, 1, ?) = ? ORDER BY started", (len(ref), ref))]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UnknownRun(f"run '{ref}' is ambiguous ({', '.join(matches[:3])}...); give more of the id")
        raise UnknownRun(f"no run or tag '{ref}' in this pipeline's history; see nb2pipe runs")

    @_history_errors
    def get(self, ref: str) -> dict[str, Any]:
        row = self.db.execute("SELECT * FROM runs WHERE id = ?", (self.resolve(ref),)).fetchone()
        return self._run(row)

    # --- sweeps ---

    @_history_errors
    def save_sweep(self, sweep_id: str, trials: list[dict[str, Any]], command: list[str]) -> None:
        """Remember a sweep's trial set, so `--resume SWEEP` can run it; a sweep started again is the latest."""
        self.db.execute(
            "INSERT INTO sweeps VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET created = excluded.created",
            (sweep_id, time.time(), json.dumps(command), json.dumps(trials, default=str)),
        )

    @_history_errors
    def sweep_trials_asked(self, ref: str) -> tuple[str, list[dict[str, Any]]]:
        """(id, trials) of a sweep: its id or an unambiguous prefix, or 'latest'."""
        sweep_id = self.resolve_sweep(ref)
        row = self.db.execute("SELECT trials FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
        return sweep_id, json.loads(row["trials"])

    @_history_errors
    def resolve_sweep(self, ref: str) -> str:
        if ref == "latest":
            rows = self.db.execute("SELECT id FROM sweeps ORDER BY created DESC LIMIT 1").fetchall()
        else:
            rows = self.db.execute("SELECT id FROM sweeps WHERE substr(id, 1, ?) = ?", (len(ref), ref)).fetchall()
        if len(rows) == 1:
            return str(rows[0]["id"])
        if len(rows) > 1:
            raise UnknownRun(f"sweep '{ref}' is ambiguous ({', '.join(r['id'] for r in rows[:3])}...); give more of the id")
        raise UnknownRun(f"no sweep '{ref}' in this pipeline's history; start one with nb2pipe sweep, or name one listed by nb2pipe runs")

    @_history_errors
    def sweep_runs(self, sweep_id: str) -> list[dict[str, Any]]:
        """The trials' runs of a sweep, the latest attempt of each trial, oldest trial first (the
        run that made the shared stages is not a trial)."""
        self._mark_interrupted()
        rows = self.db.execute("SELECT * FROM runs WHERE sweep = ? AND trial IS NOT NULL ORDER BY started", (sweep_id,)).fetchall()
        latest = {row["trial"]: row for row in rows}
        return [self._run(row) for row in latest.values()]

    @_history_errors
    def environment_of(self, env_hash: str) -> dict[str, Any]:
        row = self.db.execute("SELECT data FROM environments WHERE hash = ?", (env_hash,)).fetchone()
        return json.loads(row["data"]) if row else {}

    @_history_errors
    def tag(self, ref: str, name: str) -> str:
        if not name or name.startswith("latest") or any(c.isspace() for c in name):
            raise SpecError(f"bad tag name '{name}'; use a word such as 'champion' (not 'latest')")
        run_id = self.resolve(ref)
        self.db.execute("INSERT OR REPLACE INTO tags VALUES (?, ?)", (name, run_id))
        return run_id


def flat_metrics(stages: list[dict[str, Any]]) -> dict[str, Any]:
    """A run's metrics: `name` when one stage reports it, and always `stage.name`."""
    flat: dict[str, Any] = {}
    seen: dict[str, int] = {}
    for stage in stages:
        for name, value in stage["metrics"].items():
            flat[f"{stage['name']}.{name}"] = value
            seen[name] = seen.get(name, 0) + 1
            flat.setdefault(name, value)
    return {k: v for k, v in sorted(flat.items()) if "." in k or seen.get(k) == 1}


# --- comparing -------------------------------------------------------------------------------


def diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Params and metrics of two runs side by side, with the change."""

    def side_by_side(x: dict[str, Any], y: dict[str, Any], numeric: bool) -> list[dict[str, Any]]:
        rows = []
        for key in sorted(set(x) | set(y)):
            old, new = x.get(key), y.get(key)
            row = {"name": key, "a": old, "b": new, "changed": old != new}
            if numeric and isinstance(old, (int, float)) and isinstance(new, (int, float)):
                row["change"] = new - old
            rows.append(row)
        return rows

    return {
        "a": a["id"],
        "b": b["id"],
        "tags": {"a": a["tags"], "b": b["tags"]},
        "params": side_by_side(a["params"], b["params"], numeric=False),
        "metrics": side_by_side(a["metrics"], b["metrics"], numeric=True),
        "outputs": side_by_side(outputs_of(a), outputs_of(b), numeric=False),
    }


def outputs_of(run: dict[str, Any]) -> dict[str, str | None]:
    """{out path: content hash} of what a run's stages produced (a failed stage's record holds
    its inputs, not outputs, so it is left out)."""
    return {
        out: digest
        for stage in run["stages"]
        if stage["outcome"] in SUCCEEDED
        for out, digest in ((stage["lock"] or {}).get(L_OUTS) or {}).items()
    }


def is_no_op(run: dict[str, Any]) -> bool:
    """A run that changed nothing: it succeeded and every stage was already up to date (a stage
    restored from the run cache changed its outputs, so such a run is not a no-op)."""
    return run["status"] == RunStatus.OK and bool(run["stages"]) and all(s["outcome"] == Outcome.UP_TO_DATE for s in run["stages"])


@dataclass(frozen=True)
class GateCheck:
    metric: str
    goal: str  # "max" or "min"
    baseline: float | None
    candidate: float | None
    passed: bool | None  # None: the metric is missing

    def line(self, margin: float) -> str:
        if self.passed is None or self.baseline is None or self.candidate is None:
            where = "baseline" if self.baseline is None else "candidate"
            return f"missing  {self.metric}: the {where} run has no such metric"
        sign = "≥" if self.goal == "max" else "≤"
        need = self.baseline + margin if self.goal == "max" else self.baseline - margin
        verdict = "pass" if self.passed else "FAIL"
        return f"{verdict:<8} {self.metric}: {self.candidate:g} (baseline {self.baseline:g}, needs {sign} {need:g})"


def parse_metric_goal(text: str) -> tuple[str, str]:
    name, _, goal = text.rpartition(":")
    if not name or goal not in ("max", "min"):
        raise SpecError(f"bad --metric '{text}'; write NAME:max or NAME:min, e.g. --metric auc:max")
    return name, goal


def gate(candidate: dict[str, Any], baseline: dict[str, Any], goals: list[tuple[str, str]], margin: float) -> tuple[int, list[GateCheck]]:
    """0 when the candidate beats the baseline by `margin` on every metric, 1 when not, 2 when a
    metric is missing from either run."""
    checks = []
    for name, goal in goals:
        old, new = baseline["metrics"].get(name), candidate["metrics"].get(name)
        if not isinstance(old, (int, float)) or not isinstance(new, (int, float)):
            checks.append(GateCheck(name, goal, old, new, None))
            continue
        passed = new >= old + margin if goal == "max" else new <= old - margin
        checks.append(GateCheck(name, goal, old, new, passed))
    if any(c.passed is None for c in checks):
        return 2, checks
    return (0 if all(c.passed for c in checks) else 1), checks


def changed_params(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per run id: the params that differ from the run before it (oldest runs first in time)."""
    result: dict[str, dict[str, Any]] = {}
    previous: dict[str, Any] | None = None
    for run in sorted(runs, key=lambda r: r["started"]):
        params = run["params"]
        result[run["id"]] = {} if previous is None else {k: v for k, v in params.items() if previous.get(k) != v}
        previous = params
    return result


def when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp)) if timestamp else "-"


def checkout_run(pipeline: m.Pipeline, run: dict[str, Any]) -> list[str]:
    """Roll the outputs (and their lock entries) back to what `run` produced or used."""
    from nb2pipe import lockfile
    from nb2pipe.run.cache import OutputCache

    cache = OutputCache(lockfile.state_dir(pipeline))
    entries = lockfile.read_lock(pipeline)
    # a failed stage's record holds its inputs, not outputs
    stages = [s for s in run["stages"] if s["name"] in pipeline.names and s["lock"] and s["outcome"] in SUCCEEDED]
    outs = [
        (out, digest)
        for s in stages
        for out, digest in (s["lock"].get(lockfile.L_OUTS) or {}).items()
        if digest and declares(pipeline.stage(s["name"]).produced, out)  # only what nb2pipe.yaml says the stage writes
    ]
    missing = [out for out, digest in outs if not cache.has(digest)]
    if missing:  # checked before anything is touched, so outputs and lock never disagree
        raise Nb2PipeError(
            f"'{missing[0]}' of run {run['id']} is no longer in the output cache; rerun it with nb2pipe run --params-from {run['id']}"
        )
    targets = [(lockfile.out_path(pipeline, out), digest) for out, digest in outs]  # all checked before any is touched
    for target, digest in targets:
        cache.restore(target, digest)
    rolled_back = [s["name"] for s in stages]
    entries.update({s["name"]: s["lock"] for s in stages})
    lockfile.write_lock(pipeline, entries)
    # a later failed attempt no longer describes these stages: their outputs are now the run's
    last = lockfile.read_last(pipeline)
    for name in rolled_back:
        if last.get(name, {}).get("outcome") == Outcome.FAILED:
            last[name] = {"outcome": Outcome.RESTORED, "run": run["id"]}
    lockfile.write_last(pipeline, last)
    return [out for out, _ in outs]
