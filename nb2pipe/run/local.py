"""The local executor: each stage in a fresh Jupyter kernel through papermill, kernels started early.

1. A `KernelPool` keeps kernels booting ahead of need (one more than the stages that can run at
   once), so a stage finds a ready kernel instead of waiting ~0.5 s for one. A kernel is ready
   once it answered `kernel_info`, checked in the pool's starter threads while other stages run:
   a kernel that died at start (most often another process took one of the TCP ports
   jupyter_client picked for it) is replaced, up to KERNEL_START_ATTEMPTS starts; one that does
   not answer within the start timeout is killed. Either way the stage gets a one-line reason.
2. `LocalExecutor` executes the stage notebook with papermill on a kernel from the pool, in `wdir`,
   with its parameters injected, and reports each cell as it starts. The cell in progress is
   remembered, so a kernel that dies (segfault, `os._exit`, the out-of-memory killer) is
   reported with that cell and the kernel's exit status, in the message and in the executed
   notebook.
3. A used kernel is shut down in the background; nobody waits for it. Each kernel writes its
   stdout/stderr to a file of its own, appended to the run's kernels.log when the kernel ends.
4. A command stage runs as its argv in a process group of its own, its output in a log file.
5. `interrupt` kills the kernels in use and the commands' process groups, so running stages fail
   at once (Ctrl-C, SIGTERM, cancel); a stage still waiting for a kernel, or submitted later,
   does not start.
This is the executor registered as 'local' (run/executors.py); the dask workers run it too.
papermill and jupyter_client are imported here and nowhere else in the core.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, TypeVar

from jupyter_client.manager import AsyncKernelManager

from nb2pipe.errors import KernelStartError, SpecError
from nb2pipe.run.executors import INTERRUPTED, StageJob, StageOutcome, interrupted

KERNEL_START_TIMEOUT_S = 60.0  # how long a starting kernel may take to answer (NB2PIPE_KERNEL_START_TIMEOUT)
KERNEL_START_TIMEOUT_ENV = "NB2PIPE_KERNEL_START_TIMEOUT"
KERNEL_START_ATTEMPTS = 3  # starts per kernel handed out, when kernels keep dying at start
DEAD_KERNEL = "DeadKernelError"


class _ReportedByNb2pipe(logging.Filter):
    """nbclient logs a dead kernel through papermill's logger; nb2pipe reports it with its cell."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(("Kernel died", "Error occurred while starting new kernel client"))


logging.getLogger("papermill").setLevel(logging.WARNING)
logging.getLogger("papermill").addFilter(_ReportedByNb2pipe())
logging.getLogger("traitlets").setLevel(logging.ERROR)
_Result = TypeVar("_Result")


class _KernelManager(AsyncKernelManager):
    """A kernel manager that remembers the clients made for it, so that they can be closed (the
    notebook client papermill runs on a kernel it did not start leaves its client open: sockets
    and a heartbeat thread per stage, until the process runs out of file handles), and the file
    its kernel writes its stdout/stderr to."""

    def __init__(self, output: IO[bytes], **kwargs: Any):
        super().__init__(**kwargs)
        self.output = output  # a file: the kernel's stdout and stderr
        self.pid: int | None = None
        self.stage = ""
        self._clients: list[Any] = []

    def client(self, **kwargs: Any) -> Any:
        made = super().client(**kwargs)
        self._clients.append(made)
        return made

    def close_clients(self) -> None:
        while self._clients:
            self._clients.pop().stop_channels()

    def exit_status(self) -> int | None:
        """The kernel process's exit status (negative: the signal that ended it); None while it runs."""
        process = getattr(self.provisioner, "process", None)
        return None if process is None else process.poll()

    def last_words(self) -> str:
        """The last line the kernel wrote to its stdout/stderr ('' if none)."""
        size = os.fstat(self.output.fileno()).st_size
        tail = os.pread(self.output.fileno(), 4096, max(0, size - 4096)).decode("utf-8", "replace")
        lines = [line.strip() for line in tail.splitlines() if line.strip()]
        return lines[-1][:300] if lines else ""


class _NotReady(Exception):
    """A kernel that did not answer `kernel_info`: why, and whether starting another may help."""

    def __init__(self, reason: str, retry: bool):
        super().__init__(reason)
        self.retry = retry


class KernelPool:
    """Kernels of one kind, started in `cwd` and checked to answer before anyone asks for them."""

    def __init__(
        self, kernel_name: str, cwd: Path, size: int, log: Path | None = None, budget: int | None = None, start_timeout: float | None = None
    ):
        """`size` kernels boot now; `budget`, when given, caps how many are ever handed out (the
        number of stages to run), so no kernel boots only to be killed at the end. Kernels that
        die at start are replaced and do not count against the budget."""
        self.kernel_name, self.cwd, self.size = kernel_name, cwd, size
        self.start_timeout = start_timeout if start_timeout is not None else kernel_start_timeout()
        size = size if budget is None else min(size, budget)
        self._left = None if budget is None else budget - size
        self.log = log  # the kernels' own stdout/stderr (start-up chatter, crashes); cell output comes over ZMQ
        self._ready: list[Future[_KernelManager]] = []
        self._in_use: set[_KernelManager] = set()
        self._lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._broken: KernelStartError | None = None  # set once a kernel failed every attempt
        self._stopping: list[threading.Thread] = []
        # one thread per kernel booting at once, so the checks do not delay the next kernel's boot
        self._starter = ThreadPoolExecutor(max_workers=max(2, size + 1), thread_name_prefix="nb2pipe-kernel-start")
        self._closed = False
        for _ in range(size):
            self._ready.append(self._starter.submit(self._start_ready))

    # --- starting ---

    def _start_ready(self) -> _KernelManager:
        """A kernel that answered `kernel_info`. One that died at start is replaced, up to
        KERNEL_START_ATTEMPTS starts; then, or when one never answers, KernelStartError."""
        for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
            if self._broken is not None:
                raise self._broken
            km = self._launch()
            try:
                asyncio.run(_answers_kernel_info(km, self.start_timeout, lambda: self._closed))
                return km
            except _NotReady as not_ready:
                again = not_ready.retry and attempt < KERNEL_START_ATTEMPTS and not self._closed
                what = f"died at start ({describe_exit(km.exit_status())})" if not_ready.retry else str(not_ready)
                self._retire(km, f"{what}; {'starting another' if again else 'giving up'}")
                if not again:
                    error = KernelStartError(f"could not start kernel '{self.kernel_name}': {not_ready}")
                    if not self._closed:
                        self._broken = error
                    raise error from None
        raise AssertionError("unreachable")

    def _launch(self) -> _KernelManager:
        # the kernel's output file lives as long as its kernel: the manager closes it
        output = tempfile.TemporaryFile(dir=self.log.parent if self.log else None)  # noqa: SIM115
        km = _KernelManager(output, kernel_name=self.kernel_name)
        try:
            _wait_for(km.start_kernel(cwd=str(self.cwd), stdout=km.output, stderr=km.output))
        except Exception as e:  # the kernelspec's program is missing, not executable, ...
            km.output.close()
            raise KernelStartError(f"could not start kernel '{self.kernel_name}': {e}") from None
        km.pid = getattr(km.provisioner, "pid", None)
        return km

    # --- handing out and taking back ---

    def take(self) -> _KernelManager:
        """A kernel that answered; KernelStartError when none can be started."""
        with self._lock:
            future = self._ready.pop(0) if self._ready else self._starter.submit(self._start_ready)
            if not self._closed and (self._left is None or self._left > 0):
                self._ready.append(self._starter.submit(self._start_ready))
                if self._left is not None:
                    self._left -= 1
        km = future.result()
        if not _wait_for(km.is_alive()):  # it died while it waited for its stage
            self._retire(km, f"died while waiting for a stage ({describe_exit(km.exit_status())}); starting another")
            km = self._start_ready()
        with self._lock:
            self._in_use.add(km)
        return km

    def give_back(self, km: _KernelManager) -> None:
        with self._lock:
            self._in_use.discard(km)
        stopping = threading.Thread(target=self._retire, args=(km,), daemon=True)
        with self._lock:
            self._stopping = [t for t in self._stopping if t.is_alive()] + [stopping]
        stopping.start()

    def kill_in_use(self) -> None:
        with self._lock:
            in_use = list(self._in_use)
        for km in in_use:
            _kill(km)

    def close(self) -> None:
        """Kill the kernels nobody took; wait a little for the used ones to stop."""
        with self._lock:
            self._closed = True
            waiting, self._ready = self._ready, []
            stopping = list(self._stopping)
        for future in waiting:
            future.add_done_callback(self._retire_started)
        self._starter.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + 10
        for thread in stopping:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _retire_started(self, future: Future[_KernelManager]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._retire(future.result())

    # --- stopping ---

    def _retire(self, km: _KernelManager, note: str = "") -> None:
        """Stop the kernel (if it still runs) and append what it wrote to kernels.log."""
        status = km.exit_status()
        _shutdown(km)
        output = _read_all(km.output)
        km.output.close()
        if self.log is None or not (output or note):
            return
        who = f"kernel '{self.kernel_name}' (pid {km.pid})" + (f" of stage '{km.stage}'" if km.stage else "")
        ended = f", {describe_exit(status)}" if status is not None and not note else ""
        header = f"[nb2pipe] {who}{ended}" + (f" {note}" if note else "") + "\n"
        with self._log_lock, open(self.log, "ab") as log:
            log.write(header.encode() + output + (b"" if output.endswith(b"\n") or not output else b"\n"))


def kernel_start_timeout() -> float:
    """Seconds a starting kernel may take to answer: NB2PIPE_KERNEL_START_TIMEOUT, else 60."""
    value = os.environ.get(KERNEL_START_TIMEOUT_ENV, "").strip()
    if not value:
        return KERNEL_START_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise SpecError(f"{KERNEL_START_TIMEOUT_ENV}={value!r} is not a number of seconds; set it to e.g. 120, or unset it")
    return seconds


async def _answers_kernel_info(km: _KernelManager, timeout: float, closed: Callable[[], bool]) -> None:
    """Return once the kernel replied to `kernel_info` on its shell channel, else raise _NotReady.

    Only the shell channel is opened: no iopub check and no 0.2 s flush as in a client's
    `wait_for_ready`, so the check costs one round trip once the kernel is up."""
    client = AsyncKernelManager.client(km)  # not remembered: it is closed here
    client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
    try:
        request = client.kernel_info()
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = await client.shell_channel.get_msg(timeout=0.1)
            except queue.Empty:
                pass
            else:
                if reply.get("parent_header", {}).get("msg_id") == request:
                    return
                continue
            if not await km.is_alive():
                words = km.last_words()
                status = describe_exit(km.exit_status())
                raise _NotReady(f"{words} ({status})" if words else f"it ended before it answered ({status})", retry=True)
            if closed():
                raise _NotReady("the run ended before it answered", retry=False)
            if time.monotonic() > deadline:
                raise _NotReady(f"it did not answer within {timeout:g} s (set {KERNEL_START_TIMEOUT_ENV} to wait longer)", retry=False)
    finally:
        client.stop_channels()


def describe_exit(status: int | None) -> str:
    """'exit code 1', 'killed by SIGSEGV', ... for a process's exit status (negative: a signal)."""
    if status is None:
        return "still running"
    if status >= 0:
        return f"exit code {status}"
    try:
        name = signal.Signals(-status).name
    except ValueError:
        name = f"signal {-status}"
    if name == "SIGKILL":
        return "killed by SIGKILL; out of memory?"  # what the Linux out-of-memory killer sends
    return f"killed by {name}"


def _read_all(output: IO[bytes]) -> bytes:
    try:
        size = os.fstat(output.fileno()).st_size
        return os.pread(output.fileno(), size, 0) if size else b""
    except (OSError, ValueError):  # closed already
        return b""


def _wait_for(awaitable: Awaitable[_Result]) -> _Result:
    """Run one of jupyter_client's kernel-manager calls to its end (they are typed as awaitables)."""

    async def wait() -> _Result:
        return await awaitable

    return asyncio.run(wait())


def _shutdown(km: _KernelManager) -> None:
    try:
        km.close_clients()
        _wait_for(km.shutdown_kernel(now=True))
    except Exception:  # the kernel may already be gone
        _kill(km)


def _kill(km: AsyncKernelManager) -> None:
    process = getattr(km.provisioner, "process", None)
    if process is not None and process.poll() is None:
        process.kill()


class LocalExecutor:
    """The executor 'local': stage jobs on `jobs` threads of this process, notebooks each on a
    pre-started kernel, commands as child processes."""

    def __init__(self, kernel_name: str, cwd: Path, jobs: int, *, stages: int | None = None, log: Path | None = None):
        """`stages`, when known, is how many stages will be submitted: kernels boot one ahead of
        the running stages, but never more kernels than stages. `log` collects the kernels' own
        stdout and stderr (start-up chatter, crashes); without it that output is dropped."""
        self.cwd = cwd
        self.kernel_name = kernel_name
        pool_size = jobs + 1 if stages is None else min(jobs + 1, stages)
        self.pool = KernelPool(kernel_name, cwd, size=pool_size, log=log, budget=stages)
        import papermill  # noqa: F401  (imported now, while the kernels boot)

        self.threads = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="nb2pipe-stage")
        self.interrupted = False
        self._commands: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()  # `interrupted` and `_commands` change together

    def submit(self, job: StageJob) -> Future[StageOutcome]:
        if self.interrupted:
            refused: Future[StageOutcome] = Future()
            refused.set_result(interrupted(job.name, 0.0))
            return refused
        return self.threads.submit(self._run, job)

    def _run(self, job: StageJob) -> StageOutcome:
        if self.interrupted:  # queued behind the running stages when the interrupt came
            return interrupted(job.name, 0.0)
        if job.cmd:
            return self._run_command(job, job.cmd)
        return self._run_notebook(job)

    def _run_notebook(self, job: StageJob) -> StageOutcome:
        if job.env:
            _prepend_env_cell(job)
        started = time.monotonic()
        try:
            km = self.pool.take()
        except KernelStartError as e:
            _write_not_run(job, str(e), self.pool.log)
            return StageOutcome(job.name, False, time.monotonic() - started, {"ename": "KernelStartError", "evalue": str(e)})
        if self.interrupted:  # it came while this stage waited for its kernel: the kernel was not in use yet
            self.pool.give_back(km)
            return interrupted(job.name, time.monotonic() - started)
        km.stage = job.name
        try:
            return self._execute(job, km)
        finally:
            self.pool.give_back(km)

    def _execute(self, job: StageJob, km: _KernelManager) -> StageOutcome:
        """papermill runs the stage notebook on `km`, which runs in wdir already."""
        import papermill
        from papermill.exceptions import PapermillExecutionError

        started = time.monotonic()
        # papermill adds an injected-parameters cell when there are parameters
        count = sum(1 for c in job.notebook.cells if c.cell_type == "code") + (1 if job.parameters else 0)
        cells = _CellTracker(job, count)
        try:
            papermill.execute_notebook(
                job.notebook,
                str(job.output),
                parameters=job.parameters,
                kernel_name=self.kernel_name,
                # no cwd: papermill would chdir the whole process, racing the other stage threads;
                # the kernel already runs in wdir
                progress_bar=False,
                km=km,
                on_cell_start=cells.on_cell_start,
                on_cell_executed=cells.on_cell_executed,
            )
            return StageOutcome(job.name, True, time.monotonic() - started)
        except PapermillExecutionError as e:
            return StageOutcome(job.name, False, time.monotonic() - started, _execution_error(e, job))
        except Exception as e:  # dead kernel, interrupt, papermill's own errors
            if self.interrupted:
                error = {"ename": type(e).__name__, "evalue": INTERRUPTED}
            elif km.exit_status() is not None:
                error = _kernel_died(job, km, cells)
            else:
                error = {"ename": type(e).__name__, "evalue": str(e).strip()}
            return StageOutcome(job.name, False, time.monotonic() - started, error)

    def _run_command(self, job: StageJob, cmd: tuple[str, ...]) -> StageOutcome:
        """A stage that is a plain command: an argv list, never a shell string, run in wdir in a
        process group of its own (so an interrupt reaches the children it starts)."""
        started = time.monotonic()
        env = {**os.environ, **job.env} if job.env else None
        process = subprocess.Popen(
            list(cmd), cwd=self.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        with self._lock:
            self._commands.add(process)
            stop = self.interrupted
        if stop:  # the interrupt came while the command started
            _kill_group(process)
        try:
            stdout, stderr = process.communicate()
        finally:
            with self._lock:
                self._commands.discard(process)
        job.output.with_suffix(".log").write_text(stdout + stderr)
        duration = time.monotonic() - started
        if process.returncode == 0:
            return StageOutcome(job.name, True, duration)
        if self.interrupted:
            return StageOutcome(job.name, False, duration, {"ename": f"exit status {process.returncode}", "evalue": INTERRUPTED})
        tail = (stderr.strip().splitlines() or [""])[-1]
        return StageOutcome(job.name, False, duration, {"ename": f"exit status {process.returncode}", "evalue": tail})

    def interrupt(self) -> None:
        with self._lock:
            self.interrupted = True
            commands = list(self._commands)
        self.pool.kill_in_use()
        for process in commands:
            _kill_group(process)

    def close(self) -> None:
        self.pool.close()
        self.threads.shutdown(wait=True, cancel_futures=True)


def _kill_group(process: subprocess.Popen[Any]) -> None:
    """Kill a command stage and whatever it started (its process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):  # ended already
        os.killpg(process.pid, signal.SIGKILL)


def _prepend_env_cell(job: StageJob) -> None:
    """Kernels are started before their stage is known, so its environment is set by a first cell."""
    import nbformat

    source = f"import os as _nb2pipe_os\n_nb2pipe_os.environ.update({dict(sorted(job.env.items()))!r})"
    job.notebook.cells.insert(
        0, nbformat.v4.new_code_cell(source, metadata={"tags": ["nb2pipe-env"], "title": "nb2pipe: stage environment"})
    )


class _CellTracker:
    """papermill's cell hooks: progress events for code cells, and the cell in progress."""

    def __init__(self, job: StageJob, count: int):
        self.job, self.count, self.seen = job, count, 0
        self.running: tuple[int, Any] | None = None  # (index in the executed notebook, cell)

    def on_cell_start(self, cell: Any = None, cell_index: int = 0, **_: Any) -> None:
        if cell is not None and cell.cell_type == "code":
            self.seen += 1
            if cell.source.strip():  # an empty cell is skipped: it never runs
                self.running = (cell_index, cell)
            self.job.on_cell(self.seen, self.count)

    def on_cell_executed(self, **_: Any) -> None:
        self.running = None


def _kernel_died(job: StageJob, km: _KernelManager, cells: _CellTracker) -> dict[str, Any]:
    """The error of a stage whose kernel died: the cell it was running, and how the kernel ended.
    That cell gets the error in the executed notebook too, with papermill's banner above."""
    how = describe_exit(km.exit_status())
    if cells.running is None:
        when = "between cells" if cells.seen else "before the stage's first cell"
        return {"ename": DEAD_KERNEL, "evalue": f"the kernel died {when} ({how})"}
    index, cell = cells.running
    evalue = f"the kernel died while running this cell ({how})"
    _mark_dead_cell(job.output, index, evalue)
    return {"ename": DEAD_KERNEL, "evalue": evalue, "cell_index": index, "source": cell.source, "title": cell.metadata.get("title", "")}


def _mark_dead_cell(executed: Path, index: int, evalue: str) -> None:
    """Put the error in the cell the kernel died in, as papermill does for an exception."""
    import nbformat
    from papermill.exceptions import PapermillExecutionError
    from papermill.execute import raise_for_execution_errors

    try:
        nb = nbformat.read(str(executed), as_version=4)
        cell = nb.cells[index]
        cell.outputs.append(nbformat.v4.new_output("error", ename=DEAD_KERNEL, evalue=evalue, traceback=[f"{DEAD_KERNEL}: {evalue}"]))
        cell.metadata.setdefault("papermill", {}).update(exception=True, status="failed")
        nb.metadata.setdefault("papermill", {})["exception"] = True
        raise_for_execution_errors(nb, str(executed))  # writes the notebook with the banner, then raises
    except PapermillExecutionError:
        pass
    except (OSError, ValueError, IndexError):  # no executed notebook to mark; the message names the cell
        pass


def _write_not_run(job: StageJob, reason: str, kernels_log: Path | None) -> None:
    """The stage notebook, unexecuted, with the reason on top: the failure message says to open it."""
    import copy

    import nbformat
    from papermill.execute import ERROR_MARKER_TAG

    nb = copy.deepcopy(job.notebook)
    banner = f"**nb2pipe: this stage did not run.**\n\n```\n{reason}\n```"
    if kernels_log is not None:
        banner += f"\n\nWhat the kernels wrote is in `{kernels_log.name}` beside this notebook."
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(banner, metadata={"tags": [ERROR_MARKER_TAG]}))
    with contextlib.suppress(OSError):  # the message still says why
        nbformat.write(nb, str(job.output))


def _execution_error(e: Any, job: StageJob) -> dict[str, Any]:
    title = ""
    try:
        import nbformat

        # papermill puts an error banner above the cells, so find the failing cell by its output
        executed = nbformat.read(str(job.output), as_version=4)
        failed = next(c for c in executed.cells if any(o.get("output_type") == "error" for o in c.get("outputs", [])))
        title = failed.metadata.get("title", "")
    except Exception:  # the executed notebook may be unreadable; the error still stands
        pass
    return {
        "ename": e.ename,
        "evalue": e.evalue,
        "cell_index": e.cell_index,
        "source": e.source,
        "title": title,
    }
