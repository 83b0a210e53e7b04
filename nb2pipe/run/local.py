"""The local executor: each stage in a fresh Jupyter kernel through papermill, kernels started early.

1. Kernels come from a `KernelPool` (run/pool.py): booted ahead of need, checked to answer, each
   with a thread budget of cores // stages running at once.
2. `LocalExecutor` executes the stage notebook with papermill on a kernel from the pool, in `wdir`,
   with its parameters injected, and reports each cell as it starts and what it prints, line by
   line (run/stage_output.py). The cell in progress is
   remembered, so a kernel that dies (segfault, `os._exit`, the out-of-memory killer) is
   reported with that cell and the kernel's exit status, in the message and in the executed
   notebook.
3. papermill (and nbformat under it) is imported in a thread of its own while the first kernels
   boot, so the first stage starts without waiting for it; nbformat is imported without the
   grammars rfc3987-syntax builds (kernels.import_notebook_libraries).
4. A command stage runs as its argv in a process group of its own, its output in a log file.
5. A stage with `timeout:`, `cell-timeout:` or `memory:` runs under a watch (run/limits.py) that
   kills its kernel or command over a limit; the failure names the limit and the cell.
6. `interrupt` kills the kernels in use and the commands' process groups, so running stages fail
   at once (Ctrl-C, SIGTERM, cancel); a stage still waiting for a kernel, or submitted later,
   does not start.
This is the executor registered as 'local' (run/executors.py); the dask workers run it too.
papermill is imported here and in run/plain.py, jupyter_client in run/kernel_client.py and run/plain.py,
nowhere else in the core.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2pipe.errors import KernelStartError
from nb2pipe.run import limits
from nb2pipe.run import redact as redaction
from nb2pipe.run.cell_progress import cell_progress
from nb2pipe.run.executors import INTERRUPTED, StageJob, StageOutcome, interrupted
from nb2pipe.run.kernels import changes_what_imports_see, describe_exit, import_heavy, import_notebook_libraries, imported_modules
from nb2pipe.run.pool import KernelPool, KernelPools, PoolKey, thread_budget
from nb2pipe.run.stage_output import Batches, StreamLines, plain_traceback, rich_output_lines

if TYPE_CHECKING:
    import subprocess

    from nb2pipe.run.kernel_client import KernelManager

DEAD_KERNEL = "DeadKernelError"


class _ReportedByNb2pipe(logging.Filter):
    """nbclient logs a dead kernel through papermill's logger; nb2pipe reports it with its cell."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(("Kernel died", "Error occurred while starting new kernel client"))


logging.getLogger("papermill").setLevel(logging.WARNING)
logging.getLogger("papermill").addFilter(_ReportedByNb2pipe())
logging.getLogger("traitlets").setLevel(logging.ERROR)


class LocalExecutor:
    """The executor 'local': stage jobs on `jobs` threads of this process, notebooks each on a
    pre-started kernel, commands as child processes."""

    def __init__(
        self, kernel_name: str, cwd: Path, jobs: int, *, stages: int | None = None, log: Path | None = None, pool: KernelPool | None = None
    ):
        """`stages`, when known, is how many stages will be submitted: kernels boot one ahead of
        the running stages, but never more kernels than stages. Unknown (a dask worker, which
        shares the machine with other workers), `jobs` kernels boot now and each one taken is
        replaced while its stage runs: one more at start would only slow the first ones down.
        `log` collects the kernels' own stdout and stderr (start-up chatter, crashes); without it
        that output is dropped. `pool`: kernels shared with other runs (a sweep's trials), booting
        while those run; each stage still gets a fresh kernel, moved to `cwd`, and this executor
        neither closes that pool nor kills other runs' kernels in it."""
        self.cwd = cwd
        self.kernel_name = kernel_name
        self.shared_pool = pool is not None and pool.kernel_name == kernel_name
        self._kernels: set[KernelManager] = set()  # the kernels this executor's stages run on now
        if pool is not None and self.shared_pool:
            self.pool = pool
        else:
            pool_size = jobs if stages is None else min(jobs + 1, stages)
            # `jobs` stages at once (the runner caps it at the stages to run), counting those on
            # kernels of their own (KernelPools below), which `stages` leaves out
            running_at_once = max(1, jobs)
            self.pool = KernelPool(kernel_name, cwd, size=pool_size, log=log, budget=stages, env=thread_budget(running_at_once))
        # a stage with a kernel or environment of its own: a kernel started for it when it is submitted
        self.pools = KernelPools(
            self.pool, lambda kernel, env: KernelPool(kernel, cwd, size=1, log=log, budget=1, env={**thread_budget(jobs), **env})
        )
        # papermill is imported while the kernels boot, without holding up the first stage's dispatch
        threading.Thread(target=_import_papermill, name="nb2pipe-import-papermill", daemon=True).start()

        self.threads = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="nb2pipe-stage")
        self.interrupted = False
        self._commands: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()  # `interrupted` and `_commands` change together

    def submit(self, job: StageJob) -> Future[StageOutcome]:
        if self.interrupted:
            refused: Future[StageOutcome] = Future()
            refused.set_result(interrupted(job.name, 0.0))
            return refused
        key = self.pools.key(job.settings.kernel, job.kernel_env) if job.notebook is not None else None
        pool = self.pools.for_stage(key)
        if job.env:  # a stage whose first cell sets its environment: nothing may be imported before that cell
            pool.stop_importing_ahead()
        elif job.notebook is not None:
            pool.import_ahead(imported_modules(job.notebook))
        return self.threads.submit(self._run, job, key)

    def _run(self, job: StageJob, key: PoolKey | None = None) -> StageOutcome:
        if self.interrupted:  # queued behind the running stages when the interrupt came
            return interrupted(job.name, 0.0)
        held = redaction.hold(job.kernel_env[name] for name in job.settings.secrets if name in job.kernel_env)
        try:
            return self._run_command(job, job.cmd) if job.cmd else self._run_notebook(job, self.pools.pool(key))
        finally:
            redaction.release(held)

    def _run_notebook(self, job: StageJob, pool: KernelPool) -> StageOutcome:
        if job.env:
            _prepend_env_cell(job)
        started = time.monotonic()
        try:
            shared = self.shared_pool and pool is self.pool
            km = pool.take(untouched=changes_what_imports_see(job.notebook), cwd=self.cwd if shared else None)
        except KernelStartError as e:
            _write_not_run(job, str(e), pool.log)
            return StageOutcome(job.name, False, time.monotonic() - started, {"ename": "KernelStartError", "evalue": str(e)})
        km.stage = job.name
        with self._lock:
            self._kernels.add(km)  # from here on, an interrupt kills it
            stop = self.interrupted
        try:
            if stop:  # it came while this stage waited for its kernel: the kernel was not in use yet
                return interrupted(job.name, time.monotonic() - started)
            if job.on_kernel is not None and km.pid:
                job.on_kernel(km.pid)
            return self._execute(job, km, pool.kernel_name)
        finally:
            with self._lock:
                self._kernels.discard(km)
            pool.give_back(km)

    def _execute(self, job: StageJob, km: KernelManager, kernel_name: str) -> StageOutcome:
        """papermill runs the stage notebook on `km`, which runs in wdir already."""
        import_notebook_libraries()
        papermill = import_heavy("papermill")
        from papermill.exceptions import PapermillExecutionError

        started = time.monotonic()
        # papermill adds an injected-parameters cell when there are parameters
        count = sum(1 for c in job.notebook.cells if c.cell_type == "code") + (1 if job.parameters else 0)
        watch = limits.StageWatch(job.settings, limits.kill_tree)
        watch.start(km.pid)
        cells = _CellTracker(job, count, watch)
        try:
            papermill.execute_notebook(
                job.notebook,
                _output_path(job),
                parameters=job.parameters,
                kernel_name=kernel_name,
                # no cwd: papermill would chdir the whole process, racing the other stage threads;
                # the kernel already runs in wdir
                progress_bar=False,
                km=km,
                on_cell_start=cells.on_cell_start,
                on_cell_executed=cells.on_cell_executed,
                **cells.output_files(),
            )
            return StageOutcome(job.name, True, time.monotonic() - started)
        except PapermillExecutionError as e:
            return StageOutcome(job.name, False, time.monotonic() - started, _execution_error(e, job))
        except Exception as e:  # dead kernel, interrupt, papermill's own errors
            if self.interrupted:
                error = {"ename": type(e).__name__, "evalue": INTERRUPTED}
            elif (stopped := watch.stopped_by(km.exit_status())) is not None:
                error = _stopped_by_limit(job, cells, stopped)
            elif km.exit_status() is not None:
                error = _kernel_died(job, km, cells)
            else:
                error = {"ename": type(e).__name__, "evalue": str(e).strip()}
            return StageOutcome(job.name, False, time.monotonic() - started, error)
        finally:
            watch.close()
            cells.close()

    def _run_command(self, job: StageJob, cmd: tuple[str, ...]) -> StageOutcome:
        """A stage that is a plain command: an argv list, never a shell string, run in wdir in a
        process group of its own (so an interrupt reaches the children it starts)."""
        import subprocess  # here: a pipeline of notebooks never needs it in this thread

        started = time.monotonic()
        env = {**os.environ, **job.kernel_env, **job.env} if job.env or job.kernel_env else None
        process = subprocess.Popen(
            list(cmd), cwd=self.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        with self._lock:
            self._commands.add(process)
            stop = self.interrupted
        if stop:  # the interrupt came while the command started
            _kill_group(process)
        watch = limits.StageWatch(job.settings, lambda _: _kill_group(process))
        watch.start(process.pid)
        try:
            stdout, stderr = process.communicate()
        finally:
            watch.close()
            with self._lock:
                self._commands.discard(process)
        stdout, stderr = redaction.redact(stdout), redaction.redact(stderr)
        job.output.with_suffix(".log").write_text(stdout + stderr)
        duration = time.monotonic() - started
        if process.returncode == 0:
            return StageOutcome(job.name, True, duration)
        if self.interrupted:
            return StageOutcome(job.name, False, duration, {"ename": f"exit status {process.returncode}", "evalue": INTERRUPTED})
        stopped = watch.stopped_by(process.returncode)
        if stopped is not None:
            return StageOutcome(job.name, False, duration, limits.failure(stopped, None))
        tail = (stderr.strip().splitlines() or [""])[-1]
        return StageOutcome(job.name, False, duration, {"ename": f"exit status {process.returncode}", "evalue": tail})

    def interrupt(self) -> None:
        with self._lock:
            self.interrupted = True
            commands = list(self._commands)
            kernels = set(self._kernels)
        for pool in self.pools.all():  # in a pool shared with other runs, only this executor's kernels
            pool.kill_in_use(only=kernels if self.shared_pool and pool is self.pool else None)
        for process in commands:
            _kill_group(process)

    def close(self) -> None:
        for pool in self.pools.all():
            if not (self.shared_pool and pool is self.pool):  # a shared pool is closed by whoever made it
                pool.close()
        self.threads.shutdown(wait=True, cancel_futures=True)


def _import_papermill() -> None:
    with contextlib.suppress(Exception):  # a broken install shows where the stage imports it
        import_notebook_libraries()
        import_heavy("papermill")


def _output_path(job: StageJob) -> str:
    """Where papermill writes the executed notebook: through the redacting writer when the stage
    has secrets (run/redact.py), so no save of it holds their values."""
    if not job.settings.secrets:
        return str(job.output)
    from papermill.iorw import papermill_io

    path = redaction.redacting_path(job.output)
    if papermill_io.get_handler(path) is not redaction.RedactingWriter:
        papermill_io.register(redaction.REDACTING_SCHEME, redaction.RedactingWriter)
    return path


def _kill_group(process: subprocess.Popen[Any]) -> None:
    """Kill a command stage and whatever it started (its process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):  # ended already
        os.killpg(process.pid, signal.SIGKILL)


def _prepend_env_cell(job: StageJob) -> None:
    """Kernels are started before their stage is known, so its environment is set by a first cell."""
    import_notebook_libraries()
    import nbformat

    source = f"import os as _nb2pipe_os\n_nb2pipe_os.environ.update({dict(sorted(job.env.items()))!r})"
    job.notebook.cells.insert(
        0, nbformat.v4.new_code_cell(source, metadata={"tags": ["nb2pipe-env"], "title": "nb2pipe: stage environment"})
    )


class _CellTracker:
    """papermill's cell hooks: progress events for code cells, the cell in progress, and what
    the cells print (whole lines, run/stage_output.py) when the job wants it."""

    def __init__(self, job: StageJob, count: int, watch: limits.StageWatch):
        self.job, self.count, self.seen, self.watch = job, count, 0, watch
        self.running: tuple[int, Any] | None = None  # (index in the executed notebook, cell)
        self.title = ""  # of the code cell that started last
        self.batches = Batches(job.on_output) if job.on_output else None
        self.streams = [StreamLines(name, self.batches, lambda: self.title) for name in ("stdout", "stderr")] if self.batches else []

    def output_files(self) -> dict[str, StreamLines]:
        """papermill's stdout_file and stderr_file, when the job wants the output."""
        return {f"{s.stream}_file": s for s in self.streams}

    def on_cell_start(self, cell: Any = None, cell_index: int = 0, **_: Any) -> None:
        if cell is not None and cell.cell_type == "code":
            self.watch.cell_started()
            self.seen += 1
            if cell.source.strip():  # an empty cell is skipped: it never runs
                self.running = (cell_index, cell)
            self.title = str(cell.metadata.get("title", ""))
            if self.job.on_cell_title is not None:
                self.job.on_cell_title(self.title)
            self.job.on_cell(self.seen, self.count)

    def on_cell_executed(self, cell: Any = None, **_: Any) -> None:
        self.watch.cell_ended()
        self.running = None
        for stream in self.streams:
            stream.end_cell()
        if self.batches is not None and cell is not None:
            for name, text in rich_output_lines(cell):
                self.batches(self.title, name, text)

    def close(self) -> None:
        """Hand on the output not handed on yet: before the stage's outcome is known."""
        if self.batches is not None:
            self.batches.close()


def _kernel_died(job: StageJob, km: KernelManager, cells: _CellTracker) -> dict[str, Any]:
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


def _stopped_by_limit(job: StageJob, cells: _CellTracker, stopped: limits.Stopped) -> dict[str, Any]:
    """The error of a stage a limit stopped (run/limits.py), named with the notebook's number of
    the cell it ran; that cell gets the error in the executed notebook, as for a dead kernel."""
    if cells.running is None:
        return limits.failure(stopped, None, "between cells" if cells.seen else "before its first cell")
    index, cell = cells.running
    title = str(cell.metadata.get("title", ""))
    number = cell_progress(title, ())["notebook_cell"]
    error = limits.failure(stopped, f"cell {number}" if number is not None else f"the cell '{title or index}'")
    _mark_dead_cell(job.output, index, error["evalue"], error["ename"])
    return {**error, "cell_index": index, "source": cell.source, "title": title}


def _mark_dead_cell(executed: Path, index: int, evalue: str, ename: str = DEAD_KERNEL) -> None:
    """Put the error in the cell the kernel died in, as papermill does for an exception."""
    import_notebook_libraries()
    import nbformat
    from papermill.exceptions import PapermillExecutionError
    from papermill.execute import raise_for_execution_errors

    try:
        nb = nbformat.read(str(executed), as_version=4)
        cell = nb.cells[index]
        cell.outputs.append(nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]))
        cell.metadata.setdefault("papermill", {}).update(exception=True, status="failed")
        nb.metadata.setdefault("papermill", {})["exception"] = True
        raise_for_execution_errors(nb, str(executed))  # writes the notebook with the banner, then raises
    except PapermillExecutionError:
        pass
    except (OSError, ValueError, IndexError):  # no executed notebook to mark; the message names the cell
        pass


def _write_not_run(job: StageJob, reason: str, kernels_log: Path | None) -> None:
    """The stage notebook, unexecuted, with the reason on top: the failure message says to open it."""
    import_notebook_libraries()
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
        "traceback": plain_traceback(e.traceback),
    }
