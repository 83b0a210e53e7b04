"""Run a pipeline: plan, execute stale stages in dependency order, record what they produced.

1. Take the pipeline's run lock (one run at a time) and recover from a run that was killed:
   the outs of the stages it left half-done are restored from the output cache.
2. Select the stages (all, `--stage`, `--from`, `--downstream`) and order them.
3. Dispatch a stage when its upstream stages are done. At that moment its status is checked
   afresh, so a stage whose inputs came out byte-identical stays up to date (early cut-off).
   A stale stage seen before (same code, params, dep hashes) is restored from the run cache.
   The stage's code, params and deps are hashed once, here: that is what its lock entry and the
   run history record, even if a file changes while the stage runs.
4. Before a stage starts, the journal notes what is at its outs (run/journal.py). Run the rest on
   the executor, several at once. On success hash the outs, store them in the output cache and
   write the lock entry (atomically). On failure put back exactly what was at the stage's outs
   before it started, keep its lock entry, and do not run its dependants. A stage with
   `retries:` is tried again first, and one with `allow-failure` does not fail the run
   (run/tries.py); `timeout:`, `cell-timeout:` and `memory:` are the executor's (run/limits.py).
5. Ctrl-C or SIGTERM (whatever signal dispositions the process inherited), or an error of the
   runner itself (a full disk), kills the kernels and puts back the outs of the running stages;
   an interrupt exits 130.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2pipe import lockfile, state
from nb2pipe import model as m
from nb2pipe.errors import Nb2PipeError, SpecError, StageError
from nb2pipe.graph import after_only, ancestors, order, select, upstream
from nb2pipe.run import redact as redaction
from nb2pipe.run.cache import OutputCache
from nb2pipe.run.cell_progress import cell_progress, own_cells
from nb2pipe.run.events import Events, Reporter
from nb2pipe.run.journal import Journal, read_journal, restore_snapshots
from nb2pipe.run.limits import check_memory_watch
from nb2pipe.run.pidlock import RunLock
from nb2pipe.run.stage_output import StageLogs, event_text
from nb2pipe.run.starting import RUNS_DIR as RUNS_DIR  # where runs/<run-id>/ lives, for the server and the API
from nb2pipe.run.starting import acquire_run_lock, first_done, new_run_id, signals_interrupt
from nb2pipe.run.tries import Tries, keep_try, summary_failed
from nb2pipe.settings import effective
from nb2pipe.spec import declares, effective_params, load_pipeline, resolved_pipeline
from nb2pipe.vocabulary import EventName, Outcome, RunStatus

if TYPE_CHECKING:
    from concurrent.futures import Future

    from nb2pipe.run.executors import Executor, StageJob, StageOutcome
    from nb2pipe.run.pool import KernelPool




@dataclass
class RunOptions:
    stages: tuple[str, ...] = ()
    from_stage: str | None = None
    downstream: bool = False
    force: bool = False
    keep_going: bool = False
    dry_run: bool = False
    jobs: int | None = None  # None: number of cores
    params: dict[str, Any] = field(default_factory=dict)  # overrides of params.yaml
    kernel: str | None = None
    wait: bool = False
    executor: str = "local"
    scheduler: str | None = None  # dask: the scheduler's address (else DASK_SCHEDULER_ADDRESS, else a LocalCluster)
    stage_env: Callable[[str], dict[str, str]] | None = None  # extra environment for a stage's kernel
    cancel: threading.Event | None = None  # set from another thread: the run stops as on Ctrl-C (a sweep's trials)
    kernel_pool: KernelPool | None = None  # executor 'local': kernels shared with other runs (a sweep's trials)


@dataclass
class RunResult:
    run_id: str
    outcomes: dict[str, Outcome]
    errors: dict[str, StageError]  # the stages that failed, in the order they failed (but those allowed to)
    planned: list[str]
    allowed: frozenset[str] = frozenset()  # the stages that failed with allow-failure

    @property
    def ok(self) -> bool:
        failed = [n for n, o in self.outcomes.items() if o == Outcome.FAILED and n not in self.allowed]
        return not failed and (bool(self.allowed) or Outcome.NOT_RUN not in self.outcomes.values())

    def summary(self) -> str:
        """`N ran, M up to date, K restored from cache, F failed` (and how many were not run)."""
        counts = {k: sum(1 for o in self.outcomes.values() if o == k) for k in Outcome}
        if counts[Outcome.WOULD_RUN] or not self.outcomes:
            return f"{counts[Outcome.WOULD_RUN]} would run, {counts[Outcome.UP_TO_DATE]} up to date (dry run: nothing ran)"
        text = (
            f"{counts[Outcome.RAN]} ran, {counts[Outcome.UP_TO_DATE]} up to date, "
            f"{counts[Outcome.RESTORED]} restored from cache, {summary_failed(counts[Outcome.FAILED], len(self.allowed))}"
        )
        return text + (f", {counts[Outcome.NOT_RUN]} not run" if counts[Outcome.NOT_RUN] else "")


class Runner:
    def __init__(
        self, pipeline: m.Pipeline, options: RunOptions, reporters: list[Reporter], lock: RunLock | None = None, run_id: str | None = None
    ):
        """`lock`: the pipeline's run lock when the caller holds it already (taken for `run_id`)."""
        if options.jobs is not None and options.jobs < 1:
            raise SpecError(f"--jobs {options.jobs} is not a number of stages; use 1 or more")
        self.pipeline = pipeline
        self.options = options
        self.run_id = run_id or new_run_id()
        self.state_dir = lockfile.state_dir(pipeline)
        # not under .nb2pipe/: Jupyter does not open files in hidden folders, and users open these
        self.run_dir = Path(pipeline.root) / RUNS_DIR / self.run_id
        self.cache = OutputCache(self.state_dir)
        self.hashes = lockfile.hash_cache(pipeline)
        self.params = effective_params(pipeline, options.params)
        self.pipeline = resolved_pipeline(pipeline, self.params)  # paths named by parameters, as this run names them
        self.reporters = reporters
        self.held_lock = lock
        self.lock_entries: dict[str, dict[str, Any]] = {}
        self.last: dict[str, dict[str, Any]] = {}
        self.journal = Journal(self.pipeline, self.cache, self.run_id)
        self.forced: set[str] = set()  # the stages --force applies to (not those before a --from stage)
        self._events: Events | None = None
        self.stage_logs = StageLogs(self.run_dir)  # what each stage printed: runs/<run-id>/<stage>.log
        self.after_only: dict[str, set[str]] = {}  # per stage, the stages it follows by `after:` alone
        self.kernel_envs: dict[str, dict[str, str]] = {}  # per stage, what its kernel starts with (env:, secret:)
        self.held_secrets: tuple[str, ...] = ()  # redacted from every output while the run lasts
        self.kernel = ""  # the kernel of the stages without one of their own, chosen before the run starts
        self.kernel_warnings: list[str] = []  # about that choice, said once a stage runs on it
        self.tries = Tries()
        self.allowed: set[str] = set()  # the stages that failed with allow-failure

    @property
    def events(self) -> Events:
        """The run's events file and reporters, from the start of `run()`."""
        if self._events is None:
            raise RuntimeError("the run has not started")
        return self._events

    # --- the whole run ---

    def run(self) -> RunResult:
        run_lock = self.held_lock or acquire_run_lock(self.pipeline.root, self.options.wait, self.reporters, self.run_id)
        try:
            self.lock_entries = lockfile.read_lock(self.pipeline)
            self.last = lockfile.read_last(self.pipeline)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._events = Events(self.run_dir / "events.jsonl", self.reporters)
            self._recover()
            return self._run_selected()
        finally:
            self.hashes.save()
            self.stage_logs.close_all()
            redaction.release(self.held_secrets)
            if self._events:
                self._events.close()
            if run_lock is not self.held_lock:
                run_lock.release()

    def _run_selected(self) -> RunResult:
        o = self.options
        planned = select(self.pipeline, o.stages, from_stage=o.from_stage, with_downstream=o.downstream)
        self.forced = set(planned) if o.force else set()
        if o.from_stage:  # a resume: the stages before it are checked as any run checks them, never forced
            before = ancestors(upstream(self.pipeline), [o.from_stage])
            planned = [name for name in order(self.pipeline) if name in before or name in planned]
        for name in planned:  # before anything runs: no out may lead out of the project
            for out in self.pipeline.stage(name).produced:
                lockfile.out_path(self.pipeline, out)
            check_memory_watch(name, effective(self.pipeline, self.pipeline.stage(name)))
        if not o.dry_run:  # an unknown kernel, an unset variable or secret: one error before anything runs
            from nb2pipe.run.kernels import choose_kernel, hold_stage_environments

            self.kernel_envs, self.held_secrets = hold_stage_environments(self.pipeline, planned)
            self.kernel = choose_kernel(self.pipeline, o.kernel, self.kernel_warnings.append)
        self.events.emit(EventName.RUN_STARTED, run=self.run_id, stages=planned, params=self.params, pid=os.getpid())
        if o.dry_run:
            return self._dry_run(planned)
        outcomes: dict[str, Outcome] = {}
        errors: dict[str, StageError] = {}
        self._dispatch_all(planned, outcomes, errors)
        lockfile.write_last(self.pipeline, self.last)
        result = RunResult(self.run_id, {n: outcomes[n] for n in planned}, errors, planned, frozenset(self.allowed))
        status = RunStatus.OK if result.ok else RunStatus.FAILED
        self.events.emit(EventName.RUN_FINISHED, run=self.run_id, status=status, summary=result.summary(), outcomes=result.outcomes)
        return result

    def _dispatch_all(self, planned: list[str], outcomes: dict[str, Outcome], errors: dict[str, StageError]) -> None:
        """Run the planned stages, each once its upstream is done, at most `jobs` at once."""
        edges = upstream(self.pipeline)
        self.after_only = after_only(self.pipeline)
        executor = None
        running: dict[Future[StageOutcome], tuple[str, state.StageInputs]] = {}
        starting: list[tuple[str, state.StageInputs]] = []  # a stage that started and is not submitted yet
        pending = list(planned)
        slots = min(self.options.jobs or os.cpu_count() or 1, len(planned))
        try:
            with signals_interrupt():
                while pending or running:
                    if self.options.cancel is not None and self.options.cancel.is_set():
                        raise KeyboardInterrupt
                    for name in list(pending):
                        if len(running) >= slots:
                            break  # queued here, not in the executor, so a failure can still stop it
                        ups = [u for u in edges[name] if u in planned]
                        if self._settle_unrunnable(name, ups, outcomes):
                            pending.remove(name)
                            continue
                        if any(u not in outcomes for u in ups):
                            continue
                        pending.remove(name)
                        inputs = state.stage_inputs(self.pipeline, self.pipeline.stage(name), self.params, self.hashes)
                        decision = self._decide(name, inputs, self._upstream_reasons(name, edges[name], outcomes))
                        if decision is not None:
                            outcomes[name] = decision
                            continue
                        self._start(name, inputs)
                        starting.append((name, inputs))
                        if executor is None:  # after the first stage started: see _executor
                            executor = self._executor([*pending, name])
                        running[executor.submit(self._job(name, inputs))] = starting.pop()
                    if not running:
                        continue
                    for future in first_done(running):  # so a cancel is seen too
                        name, inputs = running.pop(future)
                        if executor is not None and self._try_again(name, inputs, future.result()):
                            running[executor.submit(self._job(name, inputs))] = (name, inputs)
                        else:
                            outcomes[name] = self._finish(name, inputs, future.result(), errors)
        except BaseException as error:
            self._abandon(executor, running, starting, interrupted=isinstance(error, KeyboardInterrupt))
            raise
        finally:
            if executor is not None:
                executor.close()

    def _settle_unrunnable(self, name: str, ups: list[str], outcomes: dict[str, Outcome]) -> bool:
        """Mark `name` not run when an upstream stage failed, or when any stage failed and the run
        does not keep going; True when it was."""
        if any(outcomes.get(u) in (Outcome.FAILED, Outcome.NOT_RUN) for u in ups):
            reason = "an upstream stage failed"
        elif all(u in outcomes for u in ups) and self._failed_run(outcomes) and not self.options.keep_going:
            reason = "the run stopped after a failure"
        else:
            return False
        outcomes[name] = Outcome.NOT_RUN
        self.events.emit(EventName.STAGE_FINISHED, stage=name, outcome=Outcome.NOT_RUN, reason=reason)
        return True

    def _failed_run(self, outcomes: dict[str, Outcome]) -> bool:
        """Whether a stage failed that was not allowed to."""
        return any(o == Outcome.FAILED and n not in self.allowed for n, o in outcomes.items())

    def _try_again(self, name: str, inputs: state.StageInputs, outcome: StageOutcome) -> bool:
        """Whether a failed try of a stage with retries left is to run again (run/tries.py): its
        executed notebook is kept aside and a `stage_retry` event names the try and its error."""
        stage = self.pipeline.stage(name)
        settings = effective(self.pipeline, stage)
        stopping = self.options.cancel is not None and self.options.cancel.is_set()
        if not self.tries.again(name, settings, outcome, stopping):
            return False
        keys = self.tries.keys(name, settings, retrying=True)
        notebook = keep_try(self.run_dir, name, keys["try"], bool(stage.cmd)) or ""
        error = stage_error(self.pipeline, stage, outcome.error or {}, notebook)
        self.stage_logs.close(name)
        self.events.emit(
            EventName.STAGE_RETRY, stage=name, duration=outcome.duration, error=error.message, stage_error=error.to_json(),
            notebook=notebook or None, fingerprint=inputs.fingerprint, **keys,
        )  # fmt: skip
        self.events.emit(EventName.MESSAGE, text=f"try {keys['try']} of {keys['tries']}: {error.message}; trying again")
        return True

    def _start(self, name: str, inputs: state.StageInputs) -> None:
        """Note what is at the stage's outs (the journal), then say it started."""
        self.journal.start(self.pipeline.stage(name), self.hashes)
        self.events.emit(EventName.STAGE_STARTED, stage=name, fingerprint=inputs.fingerprint, lock=inputs.lock_entry({}))

    def _abandon(
        self,
        executor: Executor | None,
        running: dict[Future[StageOutcome], tuple[str, state.StageInputs]],
        starting: list[tuple[str, state.StageInputs]],
        interrupted: bool,
    ) -> None:
        """Stop the running stages (and one that started but was not submitted: the executor
        could not be made) and put back what was at their outs before they started. A stage whose
        outs cannot be put back (a full disk) stays in the journal, so the next run puts them back
        first."""
        if executor is not None:
            executor.interrupt()
        reason = RunStatus.INTERRUPTED if interrupted else "the run stopped: nb2pipe itself failed"
        for future in running:
            with contextlib.suppress(BaseException):
                future.result()
        for name, inputs in [*running.values(), *starting]:
            self._record(name, Outcome.FAILED, 0.0, error=reason)
            self.events.emit(
                EventName.STAGE_FAILED,
                stage=name,
                error=reason,
                interrupted=interrupted,
                lock=inputs.lock_entry({}),
                fingerprint=inputs.fingerprint,
            )
            self._put_back(name)
        for name in list(self.journal.stages):  # a stage caught between its journal and its `stage_started`
            self._put_back(name)
        with contextlib.suppress(OSError):
            lockfile.write_last(self.pipeline, self.last)
        self.events.emit(EventName.RUN_FINISHED, run=self.run_id, status=RunStatus.INTERRUPTED if interrupted else RunStatus.FAILED)

    def _put_back(self, name: str) -> None:
        try:
            self.journal.restore(name)
            self.journal.end(name)
        except OSError as e:
            self.events.emit(
                EventName.MESSAGE,
                text=f"warning: could not put back the outputs of stage '{name}' ({e.strerror}); the next run puts them back",
            )

    def _dry_run(self, planned: list[str]) -> RunResult:
        status = {s.name: s for s in state.pipeline_status(self.pipeline, self.params).stages}
        outcomes = {}
        for name in planned:
            reasons = [str(r) for r in status[name].reasons] or (["forced"] if name in self.forced else [])
            outcome = Outcome.WOULD_RUN if reasons else Outcome.UP_TO_DATE
            self.events.emit(EventName.MESSAGE, text=f"{outcome:>10} {name}" + (f"  ({'; '.join(reasons)})" if reasons else ""))
            outcomes[name] = outcome
        return RunResult(self.run_id, outcomes, {}, planned)

    # --- deciding ---

    def _upstream_reasons(self, name: str, ups: list[str], outcomes: dict[str, Outcome]) -> list[m.Reason]:
        """What `status` would call upstream staleness, as this run saw it: the upstream stages that ran or were restored."""
        changed = (Outcome.RAN, Outcome.RESTORED)
        return state.upstream_reasons(ups, lambda up: outcomes.get(up) in changed, self.after_only[name], deps_hashed=True)

    def _decide(self, name: str, inputs: state.StageInputs, upstream_reasons: list[m.Reason]) -> Outcome | None:
        """UP_TO_DATE or RESTORED when the stage need not run; None to run it."""
        stage = self.pipeline.stage(name)
        entry = self.lock_entries.get(name)
        reasons = state.stage_reasons(self.pipeline, stage, entry, self.params, self.hashes, inputs)
        if entry:  # as in status: "never run" says it all
            reasons.extend(upstream_reasons)
        if self.last.get(name, {}).get("outcome") == Outcome.FAILED:
            reasons.append(m.Reason(state.LAST_RUN_FAILED))
        if not reasons and name not in self.forced:
            self.events.emit(EventName.STAGE_FINISHED, stage=name, outcome=Outcome.UP_TO_DATE, **self._stage_record(name))
            return Outcome.UP_TO_DATE
        if name in self.forced:
            return None
        remembered = self.cache.recall_run(inputs.fingerprint)
        if remembered is None or set(remembered) != set(stage.produced):
            return None
        self.journal.start(stage, self.hashes)
        restore_snapshots(self.pipeline, self.cache, remembered)
        self.lock_entries[name] = inputs.lock_entry(remembered)
        lockfile.write_lock(self.pipeline, self.lock_entries)
        self.journal.end(name)
        self._record(name, Outcome.RESTORED, 0.0)
        self.events.emit(
            EventName.STAGE_FINISHED, stage=name, outcome=Outcome.RESTORED, reasons=[str(r) for r in reasons], **self._stage_record(name)
        )
        return Outcome.RESTORED

    # --- executing ---

    def _executor(self, planned: list[str]) -> Executor:
        """The executor named by the options, from the registry (run/executors.py), for the
        stages still to run: at most that many at once, and never more kernels than stages.
        Made once the first stage started: its kernels' boot begins with importing jupyter_client
        (~0.1 s of CPU), which would share the GIL with the first stage's dispatch and slow it
        down without making the kernel ready any sooner."""
        from nb2pipe.run.executors import executor

        kernel = self.kernel
        for text in self.kernel_warnings:
            self.events.emit(EventName.MESSAGE, text=text)
        jobs = min(self.options.jobs or os.cpu_count() or 1, len(planned))
        # a stage with a kernel or environment of its own gets a kernel of its own: none boots for it ahead
        own = [
            n for n in planned if self.kernel_envs.get(n) or effective(self.pipeline, self.pipeline.stage(n)).kernel not in (None, kernel)
        ]
        return executor(
            self.options.executor, kernel, lockfile.wdir(self.pipeline), jobs,
            stages=len(planned) - len(own), log=self.run_dir / "kernels.log", scheduler=self.options.scheduler,
            pool=self.options.kernel_pool,
        )  # fmt: skip

    def _job(self, name: str, inputs: state.StageInputs) -> StageJob:
        from nb2pipe.run.executors import StageJob
        from nb2pipe.run.kernels import stage_notebook

        stage = self.pipeline.stage(name)
        notebook = None if stage.cmd else stage_notebook(self.pipeline, stage, inputs.script)
        return StageJob(
            name=name,
            cmd=stage.cmd,
            notebook=notebook,
            parameters=inputs.params,
            output=self.run_dir / f"{name}.ipynb",
            **self._cell_reporters(name, own_cells(notebook)),
            on_output=lambda title, stream, text: self._output(name, title, stream, text),
            env=self.options.stage_env(name) if self.options.stage_env else {},
            settings=effective(self.pipeline, stage),
            kernel_env=self.kernel_envs.get(name, {}),
        )

    def _cell_reporters(self, name: str, own: tuple[str, ...]) -> dict[str, Any]:
        """A stage job's on_cell_title, on_kernel and on_cell: `cell` events with the executed
        notebook's code cell i of n, where that is among the stage's own cells
        (run/cell_progress.py), and the pid of the stage's kernel (for its memory on the status line)."""
        seen_own, title, pid = False, "", None

        def on_cell_title(cell_title: str) -> None:  # the executor calls it just before on_cell
            nonlocal title
            title = cell_title

        def on_kernel(kernel_pid: int) -> None:
            nonlocal pid
            pid = kernel_pid

        def on_cell(index: int, count: int) -> None:
            nonlocal seen_own
            where = cell_progress(title, own, after_own=seen_own)
            seen_own = seen_own or where["position"] is not None
            self.events.emit(EventName.CELL, stage=name, index=index, count=count, title=title, kernel_pid=pid, **where)

        return {"on_cell_title": on_cell_title, "on_cell": on_cell, "on_kernel": on_kernel}

    def _output(self, name: str, title: str, stream: str, text: str) -> None:
        """Whole lines a stage printed: redacted, appended to its log, and an `output` event."""
        text = redaction.redact(text)
        self.stage_logs.append(name, text)
        cell = cell_progress(title, ())["notebook_cell"]
        self.events.emit(EventName.OUTPUT, stage=name, cell=cell, stream=stream, text=event_text(text))

    def _finish(self, name: str, inputs: state.StageInputs, outcome: StageOutcome, errors: dict[str, StageError]) -> Outcome:
        stage = self.pipeline.stage(name)
        self.stage_logs.close(name)
        # what to open: the executed notebook, or a command stage's log
        notebook = os.path.relpath(self.run_dir / f"{name}.{'log' if stage.cmd else 'ipynb'}")
        if outcome.ok:
            outs = state.hash_paths(self.pipeline, stage.produced, self.hashes)
            missing = [p for p, d in outs.items() if d is None]
            if missing:
                outcome.ok = False
                outcome.error = {"ename": "MissingOutput", "evalue": f"the stage did not write its declared output '{missing[0]}'"}
        if not outcome.ok:
            error = self._fail(name, inputs, outcome, notebook)
            if effective(self.pipeline, stage).allow_failure:
                self.allowed.add(name)
                self.events.emit(EventName.MESSAGE, text=f"{error.message} (allow-failure: its dependants are not run, the run goes on)")
            else:
                errors[name] = error
            return Outcome.FAILED
        for path, digest in outs.items():
            assert digest is not None  # a missing out failed the stage above
            self.cache.store(lockfile.out_path(self.pipeline, path), digest, self.hashes)
        self.lock_entries[name] = inputs.lock_entry(outs)
        lockfile.write_lock(self.pipeline, self.lock_entries)
        self.cache.remember_run(inputs.fingerprint, outs)
        self.journal.end(name)
        self._record(name, Outcome.RAN, outcome.duration, notebook=notebook)
        self.events.emit(
            EventName.STAGE_FINISHED, stage=name, outcome=Outcome.RAN, duration=outcome.duration, notebook=notebook,
            **self._stage_record(name), **self.tries.keys(name, effective(self.pipeline, stage)),
        )  # fmt: skip
        return Outcome.RAN

    def _fail(self, name: str, inputs: state.StageInputs, outcome: StageOutcome, notebook: str) -> StageError:
        """Put back the stage's outs and say that it failed, where, and what to open."""
        stage = self.pipeline.stage(name)
        error = stage_error(self.pipeline, stage, outcome.error or {}, notebook)
        settings = effective(self.pipeline, stage)
        self._put_back(name)
        self._record(name, Outcome.FAILED, outcome.duration, error=error.exception, notebook=notebook)
        self.last[name]["stage_error"] = error.rebased(os.getcwd(), self.pipeline.root).to_json()
        self.events.emit(
            EventName.STAGE_FAILED, stage=name, duration=outcome.duration, error=error.message, stage_error=error.to_json(),
            notebook=notebook, cell=error.cell, lock=inputs.lock_entry({}), fingerprint=inputs.fingerprint,
            **self.tries.keys(name, settings), **({"allowed": True} if settings.allow_failure else {}),
        )
        return error

    def _stage_record(self, name: str) -> dict[str, Any]:
        """What the run history keeps of a stage that is up to date now: its lock entry,
        fingerprint and metrics."""
        entry = self.lock_entries.get(name) or {}
        stage = self.pipeline.stage(name)
        fingerprint = state.entry_fingerprint(entry)
        return {"fingerprint": fingerprint, "lock": entry, "metrics": read_metrics(self.pipeline, stage)}

    def _record(self, name: str, outcome: Outcome, duration: float, error: str | None = None, notebook: str | None = None) -> None:
        entry = {
            "outcome": outcome,
            "run": self.run_id,
            "duration": round(duration, 3),
            "finished": dt.datetime.now().isoformat(timespec="seconds"),
        }
        if error:
            entry["error"] = error
        if notebook:
            entry["notebook"] = os.path.relpath(os.path.abspath(notebook), self.pipeline.root)
        self.last[name] = entry

    # --- nothing lost ---

    def _recover(self) -> None:
        """Put back what a killed run left half-done (we hold the run lock, so it is dead)."""
        journal = read_journal(self.pipeline)
        if not journal:
            return
        for name, outs in journal["stages"].items():
            if name in self.pipeline.names:
                restore_snapshots(self.pipeline, self.cache, outs)
                self.last[name] = {"outcome": Outcome.FAILED, "run": journal.get("run"), "error": "interrupted (the runner was killed)"}
                self.events.emit(
                    EventName.MESSAGE,
                    text=f"recovered stage '{name}' from interrupted run {journal.get('run')}: its previous outputs are restored",
                )
        self.journal.path.unlink()
        lockfile.write_last(self.pipeline, self.last)


def read_metrics(pipeline: m.Pipeline, stage: m.Stage) -> dict[str, Any]:
    """The numbers in a stage's metrics files ({} when it has none)."""
    metrics: dict[str, Any] = {}
    for path in stage.metrics:
        data = lockfile.read_json(lockfile.resolve(pipeline, path), {})
        if isinstance(data, dict):
            metrics.update({k: v for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return metrics


def stage_error(pipeline: m.Pipeline, stage: m.Stage, error: dict[str, Any], notebook: str) -> StageError:
    """A failed stage's error (an executor's dict: ename, evalue, title of the failing cell,
    traceback) with the stage script and the executed notebook, both relative to where the run
    started. What the stage wrote (evalue, traceback) goes through redact.redact."""
    return StageError(
        stage=stage.name,
        ename=str(error.get("ename") or ""),
        evalue=redaction.redact(str(error.get("evalue") or "")),
        cell=error.get("title") or None,
        script=os.path.relpath(Path(pipeline.root) / stage.script) if stage.script else None,
        notebook=notebook,
        traceback=redaction.redact(error["traceback"]) if error.get("traceback") else None,
    )


def run_pipeline(
    path: Path, options: RunOptions, reporters: list[Reporter], lock: RunLock | None = None, run_id: str | None = None
) -> RunResult:
    pipeline = load_pipeline(path)
    runner = Runner(pipeline, options, reporters, lock=lock, run_id=run_id)
    return runner.run()


def checkout(path: Path) -> list[str]:
    """Restore every out recorded in nb2pipe.lock from the output cache; returns what was restored."""
    pipeline = load_pipeline(path)
    cache = OutputCache(lockfile.state_dir(pipeline))
    hashes = lockfile.hash_cache(pipeline)
    restored, missing = [], []
    for name, entry in lockfile.read_lock(pipeline).items():
        declared = pipeline.stage(name).produced if name in pipeline.names else ()
        for out, digest in (entry.get(lockfile.L_OUTS) or {}).items():
            if digest is None or not declares(declared, out):  # only what nb2pipe.yaml says the stage writes
                continue
            target = lockfile.out_path(pipeline, out)
            if hashes.hash_path(target) == digest:
                continue
            if not cache.has(digest):
                missing.append(out)
                continue
            cache.restore(target, digest)
            restored.append(out)
    hashes.save()
    if missing:
        raise Nb2PipeError(f"'{missing[0]}' is not in the output cache (and {len(missing) - 1} more); rerun its stage with nb2pipe run")
    return restored

