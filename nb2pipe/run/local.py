"""The local executor: each stage in a fresh Jupyter kernel through papermill, kernels started early.

1. A `KernelPool` keeps kernels booting ahead of need (one more than the stages that can run at
   once), so a stage finds a ready kernel instead of waiting ~0.5 s for one.
2. `run_stage` executes the stage notebook with papermill on a kernel from the pool, in `wdir`,
   with its parameters injected, and reports each cell as it starts.
3. A used kernel is shut down in the background; nobody waits for it.
4. `interrupt` kills the kernels in use, so running stages fail at once (Ctrl-C, SIGTERM, cancel).
papermill and jupyter_client are imported here and nowhere else in the core.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from jupyter_client.manager import AsyncKernelManager

logging.getLogger("papermill").setLevel(logging.WARNING)
logging.getLogger("traitlets").setLevel(logging.ERROR)


@dataclass
class StageJob:
    name: str
    notebook: Any  # nbformat.NotebookNode; None for a command stage
    parameters: dict[str, Any]
    output: Path
    on_cell: Callable[[int, int], None]
    cmd: tuple[str, ...] | None = None
    env: dict[str, str] = field(default_factory=dict)  # set in the kernel before the stage's code


@dataclass
class StageOutcome:
    name: str
    ok: bool
    duration: float
    error: dict[str, Any] | None = None  # ename, evalue, cell_index, source, title


class _KernelManager(AsyncKernelManager):
    """A kernel manager that remembers the clients made for it, so that they can be closed: the
    notebook client papermill runs on a kernel it did not start leaves its client open (sockets
    and a heartbeat thread per stage, until the process runs out of file handles)."""

    def client(self, **kwargs):
        made = super().client(**kwargs)
        self.__dict__.setdefault("_nb2pipe_clients", []).append(made)
        return made

    def close_clients(self) -> None:
        for made in self.__dict__.pop("_nb2pipe_clients", []):
            made.stop_channels()


class KernelPool:
    """Kernels of one kind, started in `cwd` before anyone asks for them."""

    def __init__(self, kernel_name: str, cwd: Path, size: int, log: Path | None = None, budget: int | None = None):
        """`size` kernels boot now; `budget`, when given, caps how many are ever started (the
        number of stages to run), so no kernel boots only to be killed at the end."""
        self.kernel_name, self.cwd, self.size = kernel_name, cwd, size
        size = size if budget is None else min(size, budget)
        self._left = None if budget is None else budget - size
        # the kernels' own stdout/stderr (start-up chatter, crashes); cell output comes over ZMQ
        self._log = open(log, "ab") if log else subprocess.DEVNULL
        self._ready: list[Future] = []
        self._in_use: set[AsyncKernelManager] = set()
        self._lock = threading.Lock()
        self._starter = ThreadPoolExecutor(max_workers=2, thread_name_prefix="nb2pipe-kernel-start")
        self._closed = False
        for _ in range(size):
            self._ready.append(self._starter.submit(self._start))

    def _start(self) -> AsyncKernelManager:
        km = _KernelManager(kernel_name=self.kernel_name)
        asyncio.run(km.start_kernel(cwd=str(self.cwd), stdout=self._log, stderr=self._log))
        return km

    def take(self) -> AsyncKernelManager:
        with self._lock:
            future = self._ready.pop(0) if self._ready else self._starter.submit(self._start)
            if not self._closed and (self._left is None or self._left > 0):
                self._ready.append(self._starter.submit(self._start))
                if self._left is not None:
                    self._left -= 1
        km = future.result()
        if not asyncio.run(km.is_alive()):  # it died while waiting (its reason is in the kernel log)
            km = self._start()
        with self._lock:
            self._in_use.add(km)
        return km

    def give_back(self, km: AsyncKernelManager) -> None:
        with self._lock:
            self._in_use.discard(km)
        threading.Thread(target=_shutdown, args=(km,), daemon=True).start()

    def kill_in_use(self) -> None:
        with self._lock:
            in_use = list(self._in_use)
        for km in in_use:
            _kill(km)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            waiting, self._ready = self._ready, []
        for future in waiting:
            future.add_done_callback(lambda f: f.exception() is None and _kill(f.result()))
        self._starter.shutdown(wait=False, cancel_futures=True)
        if self._log is not subprocess.DEVNULL:
            self._log.close()


def _shutdown(km: AsyncKernelManager) -> None:
    try:
        km.close_clients()
        asyncio.run(km.shutdown_kernel(now=True))
    except Exception:  # the kernel may already be gone
        _kill(km)


def _kill(km: AsyncKernelManager) -> None:
    process = getattr(km.provisioner, "process", None)
    if process is not None and process.poll() is None:
        process.kill()


class LocalExecutor:
    """Runs stage jobs on `jobs` threads, each on a pre-started kernel."""

    def __init__(
        self, kernel_name: str, cwd: Path, jobs: int, log: Path | None = None, pool_size: int | None = None, budget: int | None = None
    ):
        self.cwd = cwd
        self.kernel_name = kernel_name
        self.pool = KernelPool(kernel_name, cwd, size=pool_size or jobs + 1, log=log, budget=budget)
        import papermill  # noqa: F401  (imported now, while the kernels boot)

        self.threads = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="nb2pipe-stage")
        self.interrupted = False

    def submit(self, job: StageJob) -> Future:
        return self.threads.submit(self._run, job)

    def _run(self, job: StageJob) -> StageOutcome:
        if job.cmd:
            return _run_command(job, self.cwd)
        import papermill
        from papermill.exceptions import PapermillExecutionError

        if job.env:
            _prepend_env_cell(job)
        km = self.pool.take()
        started = time.monotonic()
        # papermill adds an injected-parameters cell when there are parameters
        count = sum(1 for c in job.notebook.cells if c.cell_type == "code") + (1 if job.parameters else 0)
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
                on_cell_start=_cell_counter(job, count),
            )
            return StageOutcome(job.name, True, time.monotonic() - started)
        except PapermillExecutionError as e:
            return StageOutcome(job.name, False, time.monotonic() - started, _execution_error(e, job))
        except Exception as e:  # dead kernel, interrupt, papermill's own errors
            reason = "interrupted" if self.interrupted else f"{type(e).__name__}: {e}".strip()
            return StageOutcome(job.name, False, time.monotonic() - started, {"ename": type(e).__name__, "evalue": reason})
        finally:
            self.pool.give_back(km)

    def interrupt(self) -> None:
        self.interrupted = True
        self.pool.kill_in_use()

    def close(self) -> None:
        self.pool.close()
        self.threads.shutdown(wait=True, cancel_futures=True)


def _prepend_env_cell(job: StageJob) -> None:
    """Kernels are started before their stage is known, so its environment is set by a first cell."""
    import nbformat

    source = f"import os as _nb2pipe_os\n_nb2pipe_os.environ.update({dict(sorted(job.env.items()))!r})"
    job.notebook.cells.insert(0, nbformat.v4.new_code_cell(source, metadata={"tags": ["nb2pipe-env"], "title": "nb2pipe: stage environment"}))


def _run_command(job: StageJob, cwd: Path) -> StageOutcome:
    """A stage that is a plain command: an argv list, never a shell string."""
    started = time.monotonic()
    env = {**os.environ, **job.env} if job.env else None
    result = subprocess.run(list(job.cmd), cwd=cwd, capture_output=True, text=True, env=env)
    job.output.with_suffix(".log").write_text(result.stdout + result.stderr)
    if result.returncode == 0:
        return StageOutcome(job.name, True, time.monotonic() - started)
    tail = (result.stderr.strip().splitlines() or [""])[-1]
    return StageOutcome(job.name, False, time.monotonic() - started, {"ename": f"exit status {result.returncode}", "evalue": tail})


def _cell_counter(job: StageJob, count: int) -> Callable[..., None]:
    seen = {"n": 0}

    def on_cell_start(cell: Any = None, cell_index: int = 0, **_: Any) -> None:
        if cell is not None and cell.cell_type == "code":
            seen["n"] += 1
            job.on_cell(seen["n"], count)

    return on_cell_start


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
