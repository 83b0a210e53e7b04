"""A running stage's limits: its timeout, its cells' timeout and its memory, watched by a thread.

1. `StageWatch(settings, stop)` is made for each stage with `timeout:`, `cell-timeout:` or
   `memory:`; `start(pid)` starts its thread once the stage's kernel (or command) runs.
2. Every POLL_S seconds the thread checks, cheapest first: the time since the stage started
   against `timeout`, the time since the running cell started (`cell_started`/`cell_ended`, from
   papermill's cell hooks) against `cell-timeout`, and the resident memory of the process and all
   its children (psutil) against `memory`, remembering the peak.
3. Over a limit, it notes why (`Stopped`) and calls `stop`, which kills the kernel (or the
   command's process group) with its children: the stage fails at once, as when its kernel dies.
4. The executor asks `stopped_by(exit_status)` why the stage ended: the limit the watch stopped
   it for; or, for a stage with `memory:` whose kernel the OS killed (SIGKILL) while near its
   limit or with its cgroup's `oom_kill` counter risen, the memory limit too (the OOM killer).
   `failure(stopped, cell)` words it: `timed out after 30m in cell 4`, `cell 4 timed out after
   5m`, `ran out of memory at cell 4 (limit 1GiB, peak 1.1 GiB)`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nb2pipe import model as m
from nb2pipe.errors import STOPPED_BY_LIMIT, SpecError
from nb2pipe.settings import format_duration, format_size

POLL_S = 0.1  # how often the watch looks; memory that grows faster than this may overshoot a little
OOM_KILLER_NEAR = 0.8  # a SIGKILLed kernel that had used this share of its memory limit was the OOM killer's
STAGE_TIMEOUT, OUT_OF_MEMORY = STOPPED_BY_LIMIT  # the failures' enames; StageError words them as they are
CELL_TIMEOUT = "CellTimeout"


@dataclass(frozen=True)
class Stopped:
    """Why a stage was stopped: `ename` (one of the three above), the limit as the user wrote it,
    and the memory peak seen (bytes; for OUT_OF_MEMORY)."""

    ename: str
    limit: str
    peak: int = 0


def needs_watch(settings: m.Settings) -> bool:
    return any(value is not None for value in (settings.timeout, settings.cell_timeout, settings.memory))


def check_memory_watch(stage: str, settings: m.Settings) -> None:
    """A SpecError when `memory:` is set where this machine cannot watch a process's memory."""
    if settings.memory is None:
        return
    try:
        import psutil

        psutil.Process().memory_info()
        return
    except ImportError:
        reason = "psutil is not installed"
    except Exception as e:  # a platform psutil cannot read
        reason = f"psutil cannot read it here: {e}"
    raise SpecError(
        f"stage '{stage}' has memory:{format_size(settings.memory)}, but nb2pipe cannot watch a process's memory here "
        f"({reason}); install psutil, or remove the memory: setting"
    )


class StageWatch:
    """The thread that stops a stage over its limits (see the module's docstring)."""

    def __init__(self, settings: m.Settings, stop: Callable[[Any], None]):
        """`stop(process)` ends the stage over a limit: `process` is the psutil Process watched
        since `start` (so a pid the OS gave to another process since is never signalled)."""
        self.settings = settings
        self._stop = stop
        self.stopped: Stopped | None = None
        self.peak = 0  # the largest resident memory seen, in bytes (with `memory:`)
        self._started = time.monotonic()
        self._cell_started: float | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._oom_counter: Path | None = None
        self._oom_kills_before: int | None = None

    def start(self, pid: int | None) -> None:
        """Watch process `pid` (a kernel or a command); the stage's time counts from now."""
        self._started = time.monotonic()
        if not needs_watch(self.settings) or pid is None:
            return
        if self.settings.memory is not None:
            self._oom_counter = oom_counter(pid)
            self._oom_kills_before = oom_kills(self._oom_counter)
        self._thread = threading.Thread(target=self._watch, args=(pid,), name="nb2pipe-stage-limits", daemon=True)
        self._thread.start()

    def cell_started(self) -> None:
        self._cell_started = time.monotonic()

    def cell_ended(self) -> None:
        self._cell_started = None

    def close(self) -> None:
        self._done.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def stopped_by(self, exit_status: int | None) -> Stopped | None:
        """Why the stage ended: the limit this watch stopped it for, or the OOM killer's SIGKILL
        of a stage with `memory:` (see the module's docstring); None when no limit ended it."""
        if self.stopped is not None:
            return self.stopped
        memory = self.settings.memory
        if memory is None or exit_status != -signal.SIGKILL:
            return None
        kills_after = oom_kills(self._oom_counter)
        killer = kills_after is not None and kills_after > (self._oom_kills_before or 0)
        if killer or self.peak >= OOM_KILLER_NEAR * memory:
            return Stopped(OUT_OF_MEMORY, format_size(memory), self.peak)
        return None

    def _watch(self, pid: int) -> None:
        import psutil

        try:
            process = psutil.Process(pid)
        except psutil.Error:  # ended already: the executor reports how
            return
        while not self._done.wait(POLL_S):
            why = self._over(process)
            if why is not None:
                self.stopped = why
                self._stop(process)
                return

    def _over(self, process: Any) -> Stopped | None:
        s, now = self.settings, time.monotonic()
        if s.timeout is not None and now - self._started > s.timeout:
            return Stopped(STAGE_TIMEOUT, format_duration(s.timeout))
        cell_started = self._cell_started
        if s.cell_timeout is not None and cell_started is not None and now - cell_started > s.cell_timeout:
            return Stopped(CELL_TIMEOUT, format_duration(s.cell_timeout))
        if s.memory is not None:
            used = tree_memory(process)
            self.peak = max(self.peak, used)
            if used > s.memory:
                return Stopped(OUT_OF_MEMORY, format_size(s.memory), self.peak)
        return None


def tree_memory(process: Any) -> int:
    """The resident memory of a psutil Process and all its children, in bytes (0 once it ended)."""
    import psutil

    total = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0
    for member in members:
        with contextlib.suppress(psutil.Error):
            total += member.memory_info().rss
    return total


def kill_tree(process: Any) -> None:
    """SIGKILL a psutil Process and its children (children first, so none is left without a parent
    to reap it). psutil checks the process is still the one it was, not a reused pid."""
    import psutil

    try:
        children = process.children(recursive=True)
    except psutil.Error:
        return
    for member in [*children, process]:
        with contextlib.suppress(psutil.Error):
            member.kill()


def oom_counter(pid: int) -> Path | None:
    """The file counting the OOM killer's kills in the memory cgroup of process `pid` (cgroup v2's
    memory.events, v1's memory.oom_control), found while the process lives; None where there is none."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as cgroup:
            lines = [line.strip().split(":", 2) for line in cgroup]
    except OSError:
        return None
    places = [Path(root, path.lstrip("/"), "memory.events") for _, controllers, path in lines if controllers == ""
              for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")]  # fmt: skip
    places += [Path("/sys/fs/cgroup/memory", path.lstrip("/"), "memory.oom_control") for _, controllers, path in lines
               if "memory" in controllers.split(",")]  # fmt: skip
    return next((place for place in places if oom_kills(place) is not None), None)


def oom_kills(counter: Path | None) -> int | None:
    """The `oom_kill` count in a file `oom_counter` found; None where it cannot be read."""
    if counter is None:
        return None
    try:
        with open(counter, encoding="utf-8") as counters:
            return next(int(line.split()[1]) for line in counters if line.startswith("oom_kill "))
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def human_size(size: int) -> str:
    """'1.1 GiB', '312 MiB': a measured size, for people."""
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


def failure(stopped: Stopped, cell: str | None, when: str = "") -> dict[str, str]:
    """The executor's error (ename, evalue) of a stage a limit stopped: `cell` names the cell that
    ran ('cell 4', the notebook's number, or "the cell 'nb2pipe: save variables'" for one nb2pipe
    added); without one, `when` says where the stage was ('between cells', 'before its first
    cell'; '' for a command)."""
    if stopped.ename == STAGE_TIMEOUT:
        parts = [f"timed out after {stopped.limit}", f"in {cell}" if cell else when]
    elif stopped.ename == CELL_TIMEOUT:
        parts = [cell or "a cell", f"timed out after {stopped.limit}"]
    else:
        peak = f", peak {human_size(stopped.peak)}" if stopped.peak else ""
        parts = ["ran out of memory", f"at {cell}" if cell else when, f"(limit {stopped.limit}{peak})"]
    return {"ename": stopped.ename, "evalue": " ".join(part for part in parts if part)}
