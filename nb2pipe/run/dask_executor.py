"""The dask executor: each stage in a fresh Jupyter kernel on a dask worker (DESIGN §5).

1. Connect to `--scheduler` or DASK_SCHEDULER_ADDRESS, else start a LocalCluster of `jobs`
   single-threaded workers in this process (the stages run in kernel processes of their own).
   dask is imported here only, when the executor is made.
2. Check that every worker shares the pipeline's filesystem: the client writes a probe file under
   `<wdir>/.nb2pipe/` and each worker must read it back (and may write in wdir, and has the
   kernel). The same call makes this run's `LocalExecutor` on each worker, so its kernels boot now.
3. `submit` sends a plain module-level task. On the worker it runs the StageJob on that
   LocalExecutor: papermill, a pre-started kernel in wdir, command stages as an argv (never a
   shell). A stage therefore behaves exactly as it does locally; only where it runs differs.
4. Progress: the worker logs each cell start (stage, index, count, title) and each output of
   whole lines (stage, cell title, stream, text) as a dask event on a topic named for this run
   (`Worker.log_event`: no client on the worker, nothing polls); the client subscribes to the
   topic and a small thread of ours calls `job.on_cell` / `job.on_output`. A stage's future
   resolves once its events have been delivered, so they never arrive after the stage has finished.
5. `interrupt` tells every worker: start no more stages of this run, and interrupt its
   LocalExecutor (which kills the kernels in use and the running commands' process groups).
   Stages no worker had started are cancelled and resolve at once as interrupted; started ones
   resolve when their kill lands.
6. `close` closes the worker-side executors (idle kernels are killed), the client, and the
   cluster if we made it.
This is the executor registered as 'dask' (run/executors.py); its one option is `scheduler`.
Workers must have nb2pipe installed (the task is pickled by reference) and see wdir at the same path.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import secrets
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.run.executors import INTERRUPTED, StageJob, StageOutcome, interrupted
from nb2pipe.run.kernels import installed_kernels
from nb2pipe.run.local import LocalExecutor

CONNECT_TIMEOUT_S = 10
WORKERS_TIMEOUT_S = 30  # an external scheduler with no worker yet
PROGRESS_GRACE_S = 2.0  # a finished stage waits at most this long for its cell and output events
CELL_EVENT, OUTPUT_EVENT = "cell", "output"  # the first item of each event on the progress topic
IDLE_CLOSE_S = 600.0  # a worker closes a run idle this long (its client may be gone without close())
PROBE_PREFIX = "dask-probe-"
SHARE_HINT = (
    "mount it at the same path on every worker, "
    "or leave out --scheduler and DASK_SCHEDULER_ADDRESS to run on a LocalCluster here"
)


# --- the client side -------------------------------------------------------------------------


@dataclass
class _Entry:
    job: StageJob
    result: Future[StageOutcome]
    task: Any = None  # distributed.Future
    submitted: float = 0.0
    seen: int = 0  # cell and output events delivered
    done: bool = False


class DaskExecutor:
    """The executor 'dask': stage jobs on a dask cluster, each worker running them on its own LocalExecutor."""

    def __init__(
        self, kernel_name: str, cwd: Path, jobs: int, scheduler: str | None = None, *, stages: int | None = None, log: Path | None = None
    ):
        """`scheduler`: the address of a dask scheduler (else DASK_SCHEDULER_ADDRESS, else a new
        LocalCluster of `jobs` workers). `stages` and `log` are not used: a worker's kernels boot
        one ahead of its threads, and their own output stays on the worker."""
        from distributed import Client, LocalCluster

        self.kernel_name = kernel_name
        self.cwd = Path(cwd)
        self.token = secrets.token_hex(8)
        self.interrupted = False
        self.cluster: Any = None  # a distributed.LocalCluster when nb2pipe made one
        self.client: Any = None  # a distributed.Client from connect() to close()
        self.topic = f"nb2pipe-progress-{self.token}"
        # (CELL_EVENT, stage, index, count, title), (OUTPUT_EVENT, stage, title, stream, text), or None to stop
        self._cells: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._subscribed = False
        self._drainer: threading.Thread | None = None
        self._entries: dict[str, _Entry] = {}
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._count = 0
        address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
        try:
            if address:
                try:
                    self.client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False)
                except (OSError, TimeoutError) as e:
                    raise Nb2PipeError(
                        f"cannot reach the dask scheduler at {address} ({type(e).__name__}: {e}); "
                        f"start one with `dask scheduler`, or leave out --scheduler and DASK_SCHEDULER_ADDRESS to run on a LocalCluster"
                    ) from None
            else:
                # workers in this process: a stage runs in a kernel process of its own anyway, and a
                # worker process would only add its start (~0.8 s) and its imports to the run
                self.cluster = LocalCluster(n_workers=max(1, jobs), threads_per_worker=1, processes=False, dashboard_address=None)
                self.client = Client(self.cluster, set_as_default=False)
            self._prepare_workers()
            self.client.subscribe_topic(self.topic, self._on_event)  # before any task is submitted
            self._subscribed = True
        except BaseException:
            self._disconnect()
            raise
        self._drainer = threading.Thread(target=self._drain, name="nb2pipe-dask-progress", daemon=True)
        self._drainer.start()

    def _prepare_workers(self) -> None:
        """Every worker must see wdir (a probe file written here) and have the kernel; start their pools."""
        address = self.client.scheduler.address
        try:
            self.client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
        except TimeoutError:
            raise Nb2PipeError(f"the dask scheduler at {address} has no workers; start some with `dask worker {address}`") from None
        state_dir = self.cwd / ".nb2pipe"
        made = not state_dir.exists()
        state_dir.mkdir(parents=True, exist_ok=True)
        probe = state_dir / f"{PROBE_PREFIX}{self.token}"
        probe.write_text(self.token)
        try:
            answers = self.client.run(_prepare_worker, self.token, self.kernel_name, str(self.cwd), str(probe), on_error="return")
        finally:
            probe.unlink(missing_ok=True)
            if made:
                with contextlib.suppress(OSError):
                    state_dir.rmdir()
        for worker, answer in sorted(answers.items()):
            if isinstance(answer, BaseException):
                raise Nb2PipeError(
                    f"dask worker {worker} cannot run nb2pipe's stages ({type(answer).__name__}: {answer}); "
                    "install nb2pipe, with the same version as here, in the workers' environment"
                )
            if answer:
                raise Nb2PipeError(answer)

    def submit(self, job: StageJob) -> Future[StageOutcome]:
        result: Future[StageOutcome] = Future()
        spec = {f.name: getattr(job, f.name) for f in fields(job) if f.name not in ("on_cell", "on_output", "on_cell_title", "on_kernel")}
        spec["wants_output"] = job.on_output is not None
        spec["output"] = Path(os.path.abspath(job.output))  # a worker's current directory is not ours
        with self._cond:
            if self.interrupted or self._closing.is_set():
                result.set_result(interrupted(job.name, 0.0))
                return result
            entry = self._entries[job.name] = _Entry(job, result, submitted=time.monotonic())
            self._count += 1
            key = f"nb2pipe-{job.name}-{self.token}-{self._count}"
        entry.task = self.client.submit(
            _run_stage, self.token, self.kernel_name, str(self.cwd), self.topic, pickle.dumps(spec),
            key=key, pure=False, retries=0,
        )  # fmt: skip
        entry.task.add_done_callback(lambda task: threading.Thread(target=self._resolve, args=(entry, task), daemon=True).start())
        return result

    def _resolve(self, entry: _Entry, task: Any) -> None:
        name, sent = entry.job.name, 0
        if task.cancelled():
            outcome = interrupted(name, time.monotonic() - entry.submitted)
        else:
            try:
                outcome, sent = task.result()
            except Exception as e:  # the task itself broke: a worker died, nb2pipe missing there, ...
                reason = INTERRUPTED if self.interrupted else str(e) or type(e).__name__
                outcome = StageOutcome(name, False, time.monotonic() - entry.submitted, {"ename": type(e).__name__, "evalue": reason})
        deadline = time.monotonic() + PROGRESS_GRACE_S
        with self._cond:
            while entry.seen < sent and not self._closing.is_set() and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
        self._settle(entry, outcome)

    def _settle(self, entry: _Entry, outcome: StageOutcome) -> None:
        with self._cond:
            if entry.done:
                return
            entry.done = True
        entry.result.set_result(outcome)

    def _on_event(self, event: tuple[float, Any]) -> None:
        """On the client's event loop: hand the event to our thread (reporters may be slow)."""
        self._cells.put(tuple(event[1]))

    def _drain(self) -> None:
        """Deliver events from the workers to job.on_cell and job.on_output, on this one thread."""
        while True:
            item = self._cells.get()
            if item is None:
                return
            kind, name, *rest = item
            entry = self._entries.get(name)
            if entry is None or entry.done:
                continue
            with contextlib.suppress(Exception):  # a reporter's problem must not stop the run
                if kind == CELL_EVENT:
                    index, count, title = rest
                    if entry.job.on_cell_title is not None:
                        entry.job.on_cell_title(title)
                    entry.job.on_cell(index, count)
                elif entry.job.on_output is not None:
                    entry.job.on_output(*rest)
            with self._cond:
                entry.seen += 1
                self._cond.notify_all()

    def interrupt(self) -> None:
        with self._cond:
            self.interrupted = True
            waiting = [e for e in self._entries.values() if not e.done]
        started: set[str] = set()
        try:
            answers = self.client.run(_interrupt_worker, self.token, on_error="return")
            for answer in answers.values():
                if isinstance(answer, list):
                    started.update(answer)
        except Exception:  # the scheduler is gone: nothing there runs any more
            pass
        not_started = [e for e in waiting if e.job.name not in started]
        with contextlib.suppress(Exception):
            self.client.cancel([e.task for e in not_started if e.task is not None])
        for entry in not_started:
            self._settle(entry, interrupted(entry.job.name, time.monotonic() - entry.submitted))

    def close(self) -> None:
        self._closing.set()
        with self._cond:
            self._cond.notify_all()
            left = [e for e in self._entries.values() if not e.done]
        for entry in left:  # the runner waits for every stage before closing; this is for other callers
            self._settle(entry, interrupted(entry.job.name, time.monotonic() - entry.submitted))
        if self._drainer is not None:
            self._cells.put(None)
            self._drainer.join(timeout=PROGRESS_GRACE_S)
        self._disconnect()

    def _disconnect(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.run(_close_worker, self.token, on_error="ignore")
            try:
                if self._subscribed:
                    self.client.unsubscribe_topic(self.topic)
            except Exception:
                pass
            with contextlib.suppress(Exception):
                self.client.close()
            self.client = None
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close()
            self.cluster = None


def _cannot_see(worker: str, cwd: str | Path) -> str:
    return f"dask worker {worker} cannot see '{cwd}'; the workers must share the pipeline's filesystem ({SHARE_HINT})"


# --- the worker side: plain module-level functions, and this run's state in a registry ----------


class _WorkerRun:
    """One run on one worker: its LocalExecutor (and kernel pool), the stages running."""

    def __init__(self, kernel_name: str, cwd: Path, slots: int):
        self.executor = LocalExecutor(kernel_name, cwd, slots)
        self.lock = threading.Lock()
        self.running: set[str] = set()
        self.interrupted = False
        self.active = time.monotonic()  # last start or end of a stage here
        self.closed = False

    def close(self) -> None:
        with self.lock:
            self.closed = True
        self.executor.pool.close()  # kills the idle kernels now
        threading.Thread(target=self.executor.close, daemon=True).start()


_RUNS: dict[str, _WorkerRun] = {}
_RUNS_LOCK = threading.Lock()
_REAPER: list[threading.Thread] = []
_CLOSED: set[str] = set()
_INTERRUPTED: set[str] = set()  # also before this worker's _WorkerRun exists


def _run_key(token: str, worker: Any) -> str:
    """The key of a run on one worker: workers of nb2pipe's own LocalCluster share a process."""
    return f"{token}@{worker.address}"


def _worker_run(key: str, kernel_name: str, cwd: str | Path, slots: int) -> _WorkerRun:
    token = key.partition("@")[0]
    with _RUNS_LOCK:
        run = _RUNS.get(key)
        if run is None:
            if token in _CLOSED:
                raise RuntimeError("this nb2pipe run is closed")
            run = _RUNS[key] = _WorkerRun(kernel_name, Path(cwd), slots)
        if not _REAPER:
            _REAPER.append(threading.Thread(target=_reap_idle_runs, name="nb2pipe-reaper", daemon=True))
            _REAPER[0].start()
    if token in _CLOSED and _RUNS.pop(key, None) is run:  # closed while we were making it
        run.close()
    return run


def _reap_idle_runs() -> None:
    """Close the runs nobody used for IDLE_CLOSE_S: their kernels must not outlive a vanished client.
    A later stage of such a run (a very long one elsewhere) makes it again, kernels and all."""
    while True:
        time.sleep(min(30.0, IDLE_CLOSE_S / 4))
        for key, run in list(_RUNS.items()):
            with run.lock:
                idle = run.closed = run.closed or (not run.running and time.monotonic() - run.active > IDLE_CLOSE_S)
            if idle:
                with _RUNS_LOCK:
                    if _RUNS.get(key) is run:
                        del _RUNS[key]
                run.close()


def _prepare_worker(token: str, kernel_name: str, cwd: str, probe: str, dask_worker: Any = None) -> str | None:
    """On every worker at start (on its event loop, so quick): None when fine, else the problem."""
    where = dask_worker.address
    try:
        seen = Path(probe).read_text() == token
    except OSError:
        seen = False
    if not seen or not Path(cwd).is_dir():
        return _cannot_see(where, cwd)
    if not os.access(cwd, os.W_OK | os.X_OK):
        return f"dask worker {where} cannot write in '{cwd}'; the stages write their outputs there"
    if kernel_name not in installed_kernels():
        return f"dask worker {where} has no Jupyter kernel '{kernel_name}'; install it there, or choose another with --kernel"
    # papermill's import and the kernels' boot happen off the event loop; a stage waits for them
    key = _run_key(token, dask_worker)
    threading.Thread(target=_warm_up, args=(key, kernel_name, cwd, dask_worker.state.nthreads), daemon=True).start()
    return None


def _warm_up(key: str, kernel_name: str, cwd: str, slots: int) -> None:
    with contextlib.suppress(Exception):  # closed already, or the executor cannot start: the stages report it
        _worker_run(key, kernel_name, cwd, slots)


def _run_stage(token: str, kernel_name: str, cwd: str, topic: str, payload: bytes) -> tuple[StageOutcome, int]:
    """The task: run one stage on this worker's LocalExecutor of the run. Returns (outcome, events sent)."""
    from distributed import get_worker

    spec = pickle.loads(payload)
    name = spec["name"]
    worker = get_worker()
    if not Path(cwd).is_dir():  # a worker that joined after the check
        return StageOutcome(name, False, 0.0, {"ename": "Nb2PipeError", "evalue": _cannot_see(worker.address, cwd)}), 0
    while True:
        run = _worker_run(_run_key(token, worker), kernel_name, cwd, worker.state.nthreads)
        with run.lock:
            if run.interrupted or token in _INTERRUPTED:
                return interrupted(name, 0.0), 0
            if run.closed:  # closed for idleness just now: make it again
                time.sleep(0.01)
                continue
            run.running.add(name)
            run.active = time.monotonic()
            break
    sent = [0]

    title = [""]

    def on_cell_title(cell_title: str) -> None:  # called just before on_cell, on the same thread
        title[0] = cell_title

    def on_cell(index: int, count: int) -> None:  # thread-safe, never blocks papermill
        worker.log_event(topic, [CELL_EVENT, name, index, count, title[0]])
        sent[0] += 1

    def on_output(title: str, stream: str, text: str) -> None:
        worker.log_event(topic, [OUTPUT_EVENT, name, title, stream, text])
        sent[0] += 1

    wants_output = spec.pop("wants_output", False)
    try:
        job = StageJob(**spec, on_cell=on_cell, on_cell_title=on_cell_title, on_output=on_output if wants_output else None)
        outcome = run.executor.submit(job).result()
    finally:
        with run.lock:
            run.running.discard(name)
            run.active = time.monotonic()
    if (run.interrupted or token in _INTERRUPTED) and not outcome.ok:
        outcome.error = {"ename": (outcome.error or {}).get("ename", "KeyboardInterrupt"), "evalue": INTERRUPTED}
    return outcome, sent[0]


def _interrupt_worker(token: str, dask_worker: Any = None) -> list[str]:
    """On every worker: no new stage of the run starts; kill what runs. Returns the stages running here."""
    _INTERRUPTED.add(token)
    run = _RUNS.get(_run_key(token, dask_worker))
    if run is None:
        return []
    with run.lock:
        run.interrupted = True
        running = list(run.running)
    run.executor.interrupt()
    return running


def _close_worker(token: str, dask_worker: Any = None) -> None:
    _CLOSED.add(token)
    run = _RUNS.pop(_run_key(token, dask_worker), None)
    if run is not None:
        run.close()
