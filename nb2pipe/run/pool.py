"""The kernel pool: kernels booting ahead of need, each checked to answer before a stage gets it.

1. A `KernelPool` keeps kernels booting ahead of need (one more than the stages that can run at
   once), so a stage finds a ready kernel instead of waiting ~0.5 s for one. A kernel is ready
   once it answered `kernel_info`, checked in the pool's starter threads while other stages run:
   a kernel that died at start, or says another process took one of the TCP ports
   jupyter_client picked for it (most often the reason it died; past its shell port it hangs
   half-started instead), is killed and replaced, up to KERNEL_START_ATTEMPTS starts; one that
   does not answer within the start timeout is killed. Either way the stage gets a one-line reason.
2. The client a stage's notebook client makes on a pooled kernel (kernel_client.QuickReadyClient) is ready
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
6. jupyter_client is imported by the first starter thread (run/kernel_client.py), so making a
   pool costs no import: the runner dispatches the first stage while the kernel boots.
7. `KernelPools`: an executor's pools, keyed by kernelspec and environment. The stages without
   a kernel or environment of their own share the first pool (1-6); a stage with one gets a
   kernel started for its key when it is submitted, with its environment in the process
   environment from the start (a secret never passes through a code cell).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import IO, TYPE_CHECKING

from nb2pipe.errors import KernelStartError, SpecError
from nb2pipe.run.kernels import KERNEL_START_TIMEOUT_ENV, KERNEL_START_TIMEOUT_S, describe_exit, import_heavy, start_importing
from nb2pipe.run.redact import redact_bytes

if TYPE_CHECKING:
    from nb2pipe.run.kernel_client import KernelManager

KERNEL_CLIENT = "nb2pipe.run.kernel_client"
KERNEL_START_ATTEMPTS = 3  # starts per kernel handed out, when kernels keep dying at start
# the thread pools of OpenMP, OpenBLAS, MKL, Accelerate and numexpr, as threadpoolctl and joblib limit them
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def _client() -> ModuleType:
    """run/kernel_client.py (jupyter_client), imported by a starter thread, off the dispatch path."""
    return import_heavy(KERNEL_CLIENT)


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
        self._ready: list[Future[KernelManager]] = []
        self._in_use: set[KernelManager] = set()
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
        start_importing(KERNEL_CLIENT)  # first of the heavy imports, while this thread goes on
        for _ in range(size):
            self._ready.append(self._starter.submit(self._start_ready))

    # --- starting ---

    def _start_ready(self) -> KernelManager:
        """A kernel that answered `kernel_info`. One that died at start is replaced, up to
        KERNEL_START_ATTEMPTS starts; then, or when one never answers, KernelStartError."""
        for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
            if self._broken is not None:
                raise self._broken
            km = self._launch()
            try:
                _client().answers_kernel_info(km, self.start_timeout, lambda: self._closed)
                if self._imports:
                    with contextlib.suppress(RuntimeError):  # the pool closed meanwhile
                        self._importer.submit(self._import_in, km, self._imports)
                return km
            except _client().NotReady as not_ready:
                again = not_ready.retry and attempt < KERNEL_START_ATTEMPTS and not self._closed
                status = km.exit_status()  # None: it hangs half-started, and says why
                what = f"died at start ({describe_exit(status)})" if not_ready.retry and status is not None else str(not_ready)
                self._retire(km, f"{what}; {'starting another' if again else 'giving up'}")
                if not again:
                    error = KernelStartError(f"could not start kernel '{self.kernel_name}': {not_ready}")
                    if not self._closed:
                        self._broken = error
                    raise error from None
        raise AssertionError("unreachable")

    def _launch(self) -> KernelManager:
        # the kernel's output file lives as long as its kernel: the manager closes it
        import tempfile  # in the starter thread: not on the way to the first stage

        output = tempfile.TemporaryFile(dir=self.log.parent if self.log else None)  # noqa: SIM115
        km = _client().KernelManager(output, kernel_name=self.kernel_name)
        try:
            env = {**os.environ, **self.env}
            _client().wait_for(km.start_kernel(cwd=str(self.cwd), stdout=km.output, stderr=km.output, env=env))
        except Exception as e:  # the kernelspec's program is missing, not executable, ...
            km.output.close()
            raise KernelStartError(f"could not start kernel '{self.kernel_name}': {e}") from None
        km.pid = getattr(km.provisioner, "pid", None)
        return km

    # --- handing out and taking back ---

    def take(self, untouched: bool = False, cwd: Path | None = None) -> KernelManager:
        """A kernel that answered; KernelStartError when none can be started. `untouched`: one in
        which nothing was imported ahead (a kernel that had imports is stopped, another started).
        `cwd`: the folder the stage runs in, when it is not the pool's (a pool shared by the
        trials of a sweep, each in its own scratch folder): the kernel changes to it first."""
        km = self._take(untouched)
        if cwd is not None and os.path.realpath(cwd) != os.path.realpath(self.cwd):
            try:
                _client().change_directory(km, str(cwd))
            except _client().NotReady as not_ready:
                self.give_back(km)
                raise KernelStartError(f"kernel '{self.kernel_name}': {not_ready}") from None
        return km

    def _take(self, untouched: bool) -> KernelManager:
        with self._lock:
            future = self._ready.pop(0) if self._ready else self._starter.submit(self._start_ready)
            if not self._closed and (self._left is None or self._left > 0):
                self._ready.append(self._starter.submit(self._start_ready))
                if self._left is not None:
                    self._left -= 1
        km = future.result()
        if not _client().wait_for(km.is_alive()):  # it died while it waited for its stage
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

    def start_one(self) -> None:
        """Start one more kernel, for a stage to come."""
        with self._lock:
            if not self._closed:
                self._ready.append(self._starter.submit(self._start_ready))

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

    def _import_when_ready(self, future: Future[KernelManager], modules: tuple[str, ...]) -> None:
        if not future.cancelled() and future.exception() is None:
            with contextlib.suppress(RuntimeError):  # the pool closed meanwhile
                self._importer.submit(self._import_in, future.result(), modules)

    def _import_in(self, km: KernelManager, modules: tuple[str, ...]) -> None:
        """Import `modules` in `km` unless a stage took it already (its own cells import them then)."""
        with self._lock:
            if km in self._in_use or self._closed or self._no_imports_ahead:
                return
            km.imported_ahead = True
        with contextlib.suppress(Exception):  # a kernel that dies or ends meanwhile: its stage, if any, reports it
            _client().import_silently(km, modules, lambda: self._closed)

    def give_back(self, km: KernelManager) -> None:
        with self._lock:
            self._in_use.discard(km)
        stopping = threading.Thread(target=self._retire, args=(km,), daemon=True)
        with self._lock:
            self._stopping = [t for t in self._stopping if t.is_alive()] + [stopping]
        stopping.start()

    def kill_in_use(self, only: set[KernelManager] | None = None) -> None:
        """Kill the kernels in use (`only`: those of them, one run's among the runs sharing the pool)."""
        with self._lock:
            in_use = [km for km in self._in_use if only is None or km in only]
        for km in in_use:
            _client().kill(km)

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

    def _retire_started(self, future: Future[KernelManager]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._retire(future.result())

    # --- stopping ---

    def _retire(self, km: KernelManager, note: str = "") -> None:
        """Stop the kernel (if it still runs) and append what it wrote to kernels.log."""
        status = km.exit_status()
        _client().shutdown(km)
        output = redact_bytes(_read_all(km.output))
        km.output.close()
        if self.log is None or not (output or note):
            return
        who = f"kernel '{self.kernel_name}' (pid {km.pid})" + (f" of stage '{km.stage}'" if km.stage else "")
        ended = f", {describe_exit(status)}" if status is not None and not note else ""
        header = f"[nb2pipe] {who}{ended}" + (f" {note}" if note else "") + "\n"
        with self._log_lock, open(self.log, "ab") as log:
            log.write(header.encode() + output + (b"" if output.endswith(b"\n") or not output else b"\n"))


PoolKey = tuple[str, tuple[tuple[str, str], ...]]  # (kernelspec, environment)


class KernelPools:
    """An executor's kernel pools by (kernelspec, environment) (module docstring, 7)."""

    def __init__(self, default: KernelPool, make: Callable[[str, dict[str, str]], KernelPool]):
        """`default` serves the stages without a kernel or environment of their own; `make(kernel,
        env)` makes a pool of one kernel for another key."""
        self.default, self._make = default, make
        self._keyed: dict[PoolKey, KernelPool] = {}
        self._lock = threading.Lock()

    def key(self, kernel: str | None, env: dict[str, str]) -> PoolKey | None:
        """The key of a stage's pool; None for the default pool."""
        if (kernel is None or kernel == self.default.kernel_name) and not env:
            return None
        return (kernel or self.default.kernel_name, tuple(sorted(env.items())))

    def for_stage(self, key: PoolKey | None) -> KernelPool:
        """The pool of a stage just submitted: for a key of its own, a kernel starts for it now."""
        if key is None:
            return self.default
        with self._lock:
            pool = self._keyed.get(key)
            if pool is None:
                pool = self._keyed[key] = self._make(key[0], dict(key[1]))
                return pool
        pool.start_one()
        return pool

    def pool(self, key: PoolKey | None) -> KernelPool:
        return self.default if key is None else self._keyed[key]

    def all(self) -> list[KernelPool]:
        with self._lock:
            return [self.default, *self._keyed.values()]


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


def _read_all(output: IO[bytes]) -> bytes:
    try:
        size = os.fstat(output.fileno()).st_size
        return os.pread(output.fileno(), size, 0) if size else b""
    except (OSError, ValueError):  # closed already
        return b""
