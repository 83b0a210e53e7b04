"""A sweep: run a pipeline once per trial (a set of parameter values), each trial a tracked run.

`run_sweep(target, trials, ...)`:
1. Check the arguments and the target; take the pipeline's run lock (one run or sweep at a
   time); export a notebook if it changed; plan the sweep (nb2pipe.sweep) and remember its trial
   set in runs.db. The trials a finished attempt of this sweep ran ok are not run again.
2. The shared stages (they read no swept parameter) run once, in a scratch workspace, recorded
   as a run of the sweep that is not a trial; their outputs land in the output cache.
3. Every other trial runs in its own scratch workspace (deps linked in, outs collected into the
   output cache), up to `jobs` trials at once, each with its own runner running one stage at a
   time: trials never share files, and stages of different trials interleave. A shared stage is
   restored from the run cache in each trial; the history points it at the run that produced it.
   Each trial's executed notebooks are copied out of its scratch into `runs/<trial run>/`.
   On the local executor every trial takes its kernels from one pool for the whole sweep
   (`jobs` + 1 booting ahead, started in the working folder, each moved to its trial's scratch
   when a stage takes it), so kernels boot while other trials' stages run; each stage still
   gets a fresh kernel of its own. The kernels' own output goes to `runs/<sweep>/kernels.log`.
4. A failing trial is recorded with its error and executed notebook; the others go on. Ctrl-C
   (or SIGTERM) stops the running trials as `nb2pipe run` stops its stages: they are recorded
   interrupted, never ok, and the same command again runs only what did not finish.
5. The workspace, its outputs and nb2pipe.lock are never written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2pipe.api.scratch import scratch_workspace
from nb2pipe.api.tracked import export_if_needed
from nb2pipe.errors import SpecError
from nb2pipe.run.events import Reporter, message_to
from nb2pipe.sweep import SweepPlan, canonical, plan_sweep
from nb2pipe.vocabulary import EventName, RunStatus

if TYPE_CHECKING:
    from nb2pipe import model as m
    from nb2pipe.run.pool import KernelPool
    from nb2pipe.track import RunStore

NOT_RUN = "not run"


@dataclass(frozen=True)
class TrialOptions:
    """How each trial runs (the same for all of them)."""

    command: list[str]
    kernel: str | None
    executor: str
    scheduler: str | None
    cancel: threading.Event
    kernels: KernelPool | None = None  # executor 'local': the sweep's kernel pool, shared by its trials


@dataclass(frozen=True)
class SweepReport:
    sweep_id: str
    pipeline: Path
    swept: list[str]
    trials: list[dict[str, Any]]  # per trial, in the plan's order: its latest run (as `runs --json`), or a placeholder
    interrupted: bool
    shared_failed: bool  # the shared stages failed, so no trial ran

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(t["status"] == RunStatus.OK for t in self.trials)

    @property
    def summary(self) -> str:
        """`N trials: K ok, F failed` (and how many were interrupted or not run)."""
        counts: dict[str, int] = {}
        for trial in self.trials:
            counts[trial["status"]] = counts.get(trial["status"], 0) + 1
        text = f"{len(self.trials)} trials: {counts.pop(RunStatus.OK, 0)} ok, {counts.pop(RunStatus.FAILED, 0)} failed"
        text += "".join(f", {n} {status}" for status, n in sorted(counts.items()))
        return text + ("; the shared stages failed, so no trial ran" if self.shared_failed else "")

    def to_json(self) -> dict[str, Any]:
        return {"sweep": self.sweep_id, "pipeline": str(self.pipeline), "swept": self.swept, "trials": self.trials,
                "summary": self.summary, "ok": self.ok, "interrupted": self.interrupted}  # fmt: skip


def run_sweep(
    target: str | os.PathLike[str],
    trials: list[dict[str, Any]] | None,
    *,
    jobs: int = 1,
    kernel: str | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    resume: str | None = None,
    reporters: Sequence[Reporter] = (),
    command: Sequence[str] | None = None,
) -> SweepReport:
    """Run the trials of a sweep over the pipeline of `target` (see the module's description).
    `trials` None with `resume`: the trials of that sweep, as runs.db remembers them."""
    from nb2pipe.api.tracked import checked_folder
    from nb2pipe.run.executors import check_executor
    from nb2pipe.run.starting import acquire_run_lock, new_run_id
    from nb2pipe.spec import load_pipeline
    from nb2pipe.track import RunStore

    if jobs < 1:
        raise SpecError(f"--jobs {jobs} is not a number of trials; use 1 or more")
    check_executor(executor, scheduler=scheduler)
    target = Path(target)
    folder = checked_folder(target)
    reporters = list(reporters)
    run_lock = acquire_run_lock(folder, False, reporters, new_run_id())
    try:
        if target.suffix == ".ipynb":
            export_if_needed(target, reporters)
        pipeline = load_pipeline(folder)
        with RunStore(pipeline) as store:
            plan = _plan(pipeline, store, trials, resume)
            options = TrialOptions(list(command or ["nb2pipe", "sweep", str(target)]), kernel, executor, scheduler, threading.Event())
            store.save_sweep(plan.sweep_id, plan.trials, options.command)
            done = {canonical(run["trial"]) for run in store.sweep_runs(plan.sweep_id) if run["status"] == RunStatus.OK}
            interrupted, shared_failed = _run_trials(pipeline, plan, done, options, jobs, reporters)
            runs = {canonical(run["trial"]): run for run in store.sweep_runs(plan.sweep_id)}
    finally:
        run_lock.release()
    rows = [runs.get(canonical(trial)) or _not_run(trial) for trial in plan.trials]
    return SweepReport(plan.sweep_id, folder, list(plan.swept), rows, interrupted, shared_failed)


def _plan(pipeline: m.Pipeline, store: RunStore, trials: list[dict[str, Any]] | None, resume: str | None) -> SweepPlan:
    """The plan of the trials asked for, or of the sweep `resume` names (the same trials)."""
    if resume is None:
        if not trials:
            raise SpecError("a sweep needs values to try; give -p name=v1,v2 (or --params-file, or --resume SWEEP)")
        return plan_sweep(pipeline, trials)
    sweep_id, remembered = store.sweep_trials_asked(resume)
    if trials and plan_sweep(pipeline, trials).sweep_id != sweep_id:
        raise SpecError(f"--resume {resume} names sweep {sweep_id}, whose trials differ from the -p values given; drop the -p options")
    plan = plan_sweep(pipeline, remembered)
    if plan.sweep_id != sweep_id:
        raise SpecError(f"sweep {sweep_id} was started on a pipeline folder elsewhere; run a new sweep with the same -p options")
    return plan


def _not_run(trial: dict[str, Any]) -> dict[str, Any]:
    return {"id": "-", "status": NOT_RUN, "params": dict(trial), "trial": trial, "metrics": {}, "duration": None, "stages": []}


def _run_trials(
    pipeline: m.Pipeline, plan: SweepPlan, done: set[str], options: TrialOptions, jobs: int, reporters: list[Reporter]
) -> tuple[bool, bool]:
    """Run the shared stages, then the trials not done yet, `jobs` at once; (interrupted, shared stages failed)."""
    remaining = [trial for trial in plan.trials if canonical(trial) not in done]
    if done:
        finished = f"{len(done)} of {len(plan.trials)} trials finished earlier"
        message_to(reporters, f"sweep {plan.sweep_id}: {finished}; running the other {len(remaining)}")
    if not remaining:
        return False, False
    root = Path(pipeline.root)
    with _kernel_pool(pipeline, plan.sweep_id, options, jobs, reporters) as kernels:
        return _run_remaining(root, plan, remaining, replace(options, kernels=kernels), jobs, reporters)


@contextlib.contextmanager
def _kernel_pool(
    pipeline: m.Pipeline, sweep_id: str, options: TrialOptions, jobs: int, reporters: list[Reporter]
) -> Iterator[KernelPool | None]:
    """The kernel pool the trials share (executor 'local'; None for another), closed at the end."""
    if options.executor != "local":
        yield None
        return
    from nb2pipe import lockfile
    from nb2pipe.run.kernels import choose_kernel
    from nb2pipe.run.pool import KernelPool, thread_budget

    log = Path(pipeline.root) / "runs" / sweep_id / "kernels.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    kernel = choose_kernel(pipeline, options.kernel, lambda text: message_to(reporters, text))
    kernels = KernelPool(kernel, lockfile.wdir(pipeline), size=jobs + 1, log=log, env=thread_budget(jobs))
    try:
        yield kernels
    finally:
        kernels.close()


def _run_remaining(
    root: Path, plan: SweepPlan, remaining: list[dict[str, Any]], options: TrialOptions, jobs: int, reporters: list[Reporter]
) -> tuple[bool, bool]:
    from nb2pipe.run.starting import signals_interrupt, wait_all

    futures: list[Future[None]] = []
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="nb2pipe-trial") as pool:
        try:
            with signals_interrupt():
                if plan.shared and not _run_shared(root, plan, remaining[0], options, reporters):
                    return False, True
                for number, trial in enumerate(remaining, 1):
                    label = f"trial {number}/{len(remaining)}"
                    futures.append(pool.submit(_run_trial, root, plan.sweep_id, trial, label, options, reporters))
                wait_all(futures)  # not an untimed wait: it would never see a Ctrl-C the OS gave another thread
        except KeyboardInterrupt:
            options.cancel.set()
            for future in futures:
                future.cancel()
            _wait_ignoring_interrupts(futures)
            return True, False
    for future in futures:
        future.result()  # an error of nb2pipe itself (a full disk) is raised, not hidden
    return False, False


def _wait_ignoring_interrupts(futures: list[Future[None]]) -> None:
    """Wait for the running trials to record themselves stopped (a second Ctrl-C does not cut that short)."""
    from nb2pipe.run.starting import wait_all

    while True:
        try:
            wait_all(futures)
            return
        except KeyboardInterrupt:
            continue


def _run_shared(root: Path, plan: SweepPlan, trial: dict[str, Any], options: TrialOptions, reporters: list[Reporter]) -> bool:
    """The shared stages, once (restored from the run cache when seen before), recorded as the
    sweep's run that is not a trial; True when they succeeded."""
    message_to(reporters, f"sweep {plan.sweep_id}: shared stages {', '.join(plan.shared)}")
    report = _scratch_run(root, plan.sweep_id, None, trial, options, stages=plan.shared)
    if report is None:
        raise KeyboardInterrupt
    if not report.ok:
        for error in report.errors.values():
            message_to(reporters, f"error: {error.message}")
        return False
    message_to(reporters, f"shared stages {report.summary} (run {report.run_id})")
    return True


def _run_trial(root: Path, sweep_id: str, trial: dict[str, Any], label: str, options: TrialOptions, reporters: list[Reporter]) -> None:
    if options.cancel.is_set():
        return
    values = ", ".join(f"{k}={v!r}" for k, v in trial.items())
    report = _scratch_run(root, sweep_id, trial, trial, options)
    if report is None:
        message_to(reporters, f"{label} interrupted: {values}")
        return
    status = "ok" if report.ok else "failed"
    message_to(reporters, f"{label} {status}: {values} (run {report.run_id}; {report.summary})")
    for error in report.errors.values():
        message_to(reporters, f"  {error.message}")


def _scratch_run(
    root: Path, sweep_id: str, trial: dict[str, Any] | None, values: dict[str, Any], options: TrialOptions, stages: Sequence[str] = ()
) -> Any:
    """One run of the sweep in a scratch workspace, recorded in the real history; its RunReport,
    or None when it was interrupted."""
    from nb2pipe.spec import load_pipeline
    from nb2pipe.track import RunStore

    with RunStore(load_pipeline(root)) as store, scratch_workspace(root) as scratch:
        recorder = store.recorder(options.command, sweep=sweep_id, trial=trial)
        relay = _notebooks_kept(recorder, scratch.folder, root)
        try:
            return scratch.run(
                params=values, stages=stages, jobs=1, kernel=options.kernel, executor=options.executor,
                scheduler=options.scheduler, reporters=[relay], cancel=options.cancel, kernel_pool=options.kernels,
            )  # fmt: skip
        except KeyboardInterrupt:
            return None


def _notebooks_kept(recorder: Reporter, scratch_folder: Path, root: Path) -> Reporter:
    """A reporter that copies each executed notebook out of the scratch into the real pipeline's
    `runs/<run>/` before the history records where it is (the scratch is removed afterwards)."""
    run_dirs: list[Path] = []
    scratch_prefix = os.path.abspath(scratch_folder)

    def relay(event: dict[str, Any]) -> None:
        if event["event"] == EventName.RUN_STARTED:
            run_dirs.append(root / "runs" / str(event["run"]))
        notebook = event.get("notebook")
        if notebook and run_dirs and os.path.abspath(notebook).startswith(scratch_prefix + os.sep):
            kept = run_dirs[0] / os.path.basename(notebook)
            if os.path.exists(notebook):
                kept.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(notebook, kept)
            event = {**event, "notebook": str(kept)}
            if isinstance(event.get("error"), str):
                event["error"] = event["error"].replace(str(notebook), os.path.relpath(kept))
        recorder(event)

    return relay
