"""The kernel pool: kernels booting ahead of need, each checked to answer before a stage gets it.

1. A `KernelPool` keeps kernels booting ahead of need (one more than the stages that can run at
   once), so a stage finds a ready kernel instead of waiting ~0.5 s for one. A kernel is ready
   once it answered `kernel_info`, checked in the pool's starter threads while other stages run:
   a kernel that died at start (most often another process took one of the TCP ports
   jupyter_client picked for it) is replaced, up to KERNEL_START_ATTEMPTS starts; one that does
   not answer within the start timeout is killed. Either way the stage gets a one-line reason.
2. The client a stage's notebook client makes on a pooled kernel (`_QuickReadyClient`) is ready
   after one `kernel_info` round trip seen on both shell and iopub: no fixed 0.2 s wait for
   iopub to fall silent, as jupyter_client's `wait_for_ready` does, on every stage.
3. Each kernel starts with a thread budget (`thread_budget`): the BLAS/OpenMP thread variables
   set to cores // stages running at once, unless the user's environment sets them, so stages
   running side by side do not oversubscribe the machine.
4. Imports ahead of the stage (`import_ahead`): the modules the submitted stages import are
   imported, silently and in a namespace of their own, in the kernels still waiting for a
   stage, so a stage's import cells find them in sys.modules. Only installed modules (none from
   the working folder, which upstream stages may still write); a module that fails to import is
   left for the stage's own cell to report. The stage still runs every cell, and no variable of
   the user's namespace exists before its first cell.
5. A used kernel is shut down in the background; nobody waits for it. Each kernel writes its
   stdout/stderr to a file of its own, appended to the run's kernels.log when the kernel ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, TypeVar

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager

from nb2pipe.errors import KernelStartError, SpecError

KERNEL_START_TIMEOUT_S = 60.0  # how long a starting kernel may take to answer (NB2PIPE_KERNEL_START_TIMEOUT)
KERNEL_START_TIMEOUT_ENV = "NB2PIPE_KERNEL_START_TIMEOUT"
KERNEL_START_ATTEMPTS = 3  # starts per kernel handed out, when kernels keep dying at start
# the thread pools of OpenMP, OpenBLAS, MKL, Accelerate and numexpr, as threadpoolctl and joblib limit them
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

_Result = TypeVar("_Result")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), else the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def thread_budget(running_at_once: int) -> dict[str, str]:
    """The thread variables for a stage kernel when `running_at_once` stages share the cores:
    cores // running_at_once (at least 1) each, except those the user's environment sets."""
    threads = str(max(1, usable_cores() // max(1, running_at_once)))
    return {name: threads for name in THREAD_VARIABLES if not os.environ.get(name)}


class _QuickReadyClient(AsyncKernelClient):
    """The client nbclient makes on a pooled kernel: ready once a `kernel_info` request was
    answered on shell and its `idle` status arrived on iopub (so iopub is connected, and nothing
    older waits in it), instead of jupyter_client's wait for 0.2 s of iopub silence per stage."""

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (KERNEL_START_TIMEOUT_S if timeout is None else timeout)
        while True:
            request = self.kernel_info()
            reply = await _answer(self.shell_channel, request, "kernel_info_reply", 1.0)
            # no idle status: iopub was not connected yet when it was sent, so ask again
            if reply is not None and await _answer(self.iopub_channel, request, "status", 0.5) is not None:
                self._handle_kernel_info_reply(reply)
                return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout or KERNEL_START_TIMEOUT_S:g} seconds")


async def _answer(channel: Any, request: str, msg_type: str, patience: float) -> dict[str, Any] | None:
    """The first `msg_type` message on `channel` answering `request` within `patience` seconds
    (a status only when it is `idle`); the messages before it are dropped."""
    end = time.monotonic() + patience
    while (left := end - time.monotonic()) > 0:
        try:
            msg: dict[str, Any] = await channel.get_msg(timeout=left)
        except queue.Empty:
            return None
        answers = msg.get("parent_header", {}).get("msg_id") == request and msg["msg_type"] == msg_type
        if answers and (msg_type != "status" or msg["content"].get("execution_state") == "idle"):
            return msg
    return None


class _KernelManager(AsyncKernelManager):
    """A kernel manager that remembers the clients made for it, so that they can be closed (the
    notebook client papermill runs on a kernel it did not start leaves its client open: sockets
    and a heartbeat thread per stage, until the process runs out of file handles), and the file
    its kernel writes its stdout/stderr to."""

    def __init__(self, output: IO[bytes], **kwargs: Any):
        super().__init__(client_class="nb2pipe.run.pool._QuickReadyClient", **kwargs)
        self.output = output  # a file: the kernel's stdout and stderr
        self.pid: int | None = None
        self.stage = ""
        self.imported_ahead = False  # set (under the pool's lock) before an import ahead starts in it
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
        self,
        kernel_name: str,
        cwd: Path,
        size: int,
        log: Path | None = None,
        budget: int | None = None,
        start_timeout: float | None = None,
        env: dict[str, str] | None = None,
    ):
        """`size` kernels boot now; `budget`, when given, caps how many are ever handed out (the
        number of stages to run), so no kernel boots only to be killed at the end. Kernels that
        die at start are replaced and do not count against the budget. `env` is added to this
        process's environment for every kernel (thread_budget's variables)."""
        self.env = dict(env or {})
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
        self._importer = ThreadPoolExecutor(max_workers=max(1, size), thread_name_prefix="nb2pipe-kernel-imports")
        self._imports: tuple[str, ...] = ()  # modules the kernels import ahead of their stage
        self._no_imports_ahead = False  # set once a stage sets its kernel's environment in its first cell
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
                if self._imports:
                    with contextlib.suppress(RuntimeError):  # the pool closed meanwhile
                        self._importer.submit(self._import_in, km, self._imports)
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
            env = {**os.environ, **self.env}
            _wait_for(km.start_kernel(cwd=str(self.cwd), stdout=km.output, stderr=km.output, env=env))
        except Exception as e:  # the kernelspec's program is missing, not executable, ...
            km.output.close()
            raise KernelStartError(f"could not start kernel '{self.kernel_name}': {e}") from None
        km.pid = getattr(km.provisioner, "pid", None)
        return km

    # --- handing out and taking back ---

    def take(self, untouched: bool = False) -> _KernelManager:
        """A kernel that answered; KernelStartError when none can be started. `untouched`: one in
        which nothing was imported ahead (a kernel that had imports is stopped, another started)."""
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
            touched = untouched and km.imported_ahead
        if touched:
            self.give_back(km)
            km = self._start_ready()
            with self._lock:
                self._in_use.add(km)
        return km

    def import_ahead(self, modules: tuple[str, ...]) -> None:
        """Import `modules` in the kernels waiting for a stage (when they are ready), and in every
        kernel started from now on. Never waits: the imports run in the pool's threads."""
        with self._lock:
            new = tuple(name for name in modules if name not in self._imports)
            if not new or self._closed or self._no_imports_ahead:
                return
            self._imports += new
            waiting = list(self._ready)
        for future in waiting:
            future.add_done_callback(lambda done, new=new: self._import_when_ready(done, new))  # type: ignore[misc]

    def stop_importing_ahead(self) -> None:
        """No more imports ahead, in any kernel (those under way finish)."""
        with self._lock:
            self._no_imports_ahead = True
            self._imports = ()

    def _import_when_ready(self, future: Future[_KernelManager], modules: tuple[str, ...]) -> None:
        if not future.cancelled() and future.exception() is None:
            with contextlib.suppress(RuntimeError):  # the pool closed meanwhile
                self._importer.submit(self._import_in, future.result(), modules)

    def _import_in(self, km: _KernelManager, modules: tuple[str, ...]) -> None:
        """Import `modules` in `km` unless a stage took it already (its own cells import them then)."""
        with self._lock:
            if km in self._in_use or self._closed or self._no_imports_ahead:
                return
            km.imported_ahead = True
        with contextlib.suppress(Exception):  # a kernel that dies or ends meanwhile: its stage, if any, reports it
            asyncio.run(_import_silently(km, modules, lambda: self._closed))

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
        self._importer.shutdown(wait=False, cancel_futures=True)
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
    client = _own_client(km)
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


# runs in the kernel, in a namespace of its own: installed modules only, failures left to the stage
_IMPORT_AHEAD = """
import importlib, importlib.util, os
here = os.path.realpath(os.getcwd()) + os.sep
for name in MODULES:
    try:
        spec = importlib.util.find_spec(name.partition('.')[0])
        if spec is None or not spec.origin or os.path.realpath(spec.origin).startswith(here):
            continue
        importlib.import_module(name)
    except BaseException:
        pass
"""


def _own_client(km: _KernelManager) -> Any:
    """A client of `km` that is closed where it is made (not remembered), with a session of its
    own: jupyter_client names a client's shell socket by its session id, and the kernel ignores
    a second connection under a name in use, so two clients sharing km's session at once would
    leave the later one (the stage's) without replies."""
    session = km.session.clone()
    session.session = str(uuid.uuid4())
    return AsyncKernelManager.client(km, session=session)


async def _import_silently(km: _KernelManager, modules: tuple[str, ...], closed: Callable[[], bool]) -> None:
    """Run the imports of `modules` in `km` as a silent request (no history, no output, no
    variables in the user's namespace) and wait for its reply, or the kernel's or the pool's end."""
    code = f"exec(compile({_IMPORT_AHEAD!r}, '<nb2pipe: imports ahead>', 'exec'), {{'MODULES': {list(modules)!r}}})"
    client = _own_client(km)
    client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
    try:
        request = client.execute(code, silent=True, store_history=False)
        while not closed() and await km.is_alive():
            if await _answer(client.shell_channel, request, "execute_reply", 0.2) is not None:
                return
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
