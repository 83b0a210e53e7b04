"""One run per pipeline at a time: an exclusive lock on `.nb2pipe/run.pid`, which names its holder.

The operating system drops the lock when the holder dies, even by `kill -9`, so a crashed run
never blocks the next one. While held, the file names the holder: JSON with its pid, run id and
events file (`nb2pipe.run.registry` reads it). Released cleanly, the file is empty.

A holder takes the lock first and writes its name second, so for a moment the file is empty, or
still names a holder that was killed. A reader therefore retries (for up to `READ_PATIENCE`
seconds) until the file names a live process, or the lock is free: the message about a busy
pipeline always names the real holder.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nb2pipe.errors import PipelineLocked

READ_PATIENCE = 5.0  # seconds a reader waits for a new holder to write its name
_READ_INTERVAL = 0.01


@dataclass(frozen=True)
class Holder:
    """The run holding a lock, as its lock file names it (pid None: it did not say in time)."""

    pid: int | None
    run_id: str | None = None
    events: str | None = None


class RunLock:
    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(
        self, wait: bool = False, where: str = "", run_id: str | None = None, events: Path | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        """Take the lock, or raise PipelineLocked naming its holder; with `wait`, queue behind the
        holder instead (telling `on_wait` once what it waits for)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        where = where or str(self.path.parent.parent)
        try:
            holder = _take_or_holder(fd)
            if holder is not None:
                pid = holder.pid or "unknown"
                if not wait:
                    raise PipelineLocked(
                        f"pipeline '{where}' is already running (pid {pid}); "
                        "wait for it to finish, or pass --wait to queue behind it"
                    )
                if on_wait:
                    on_wait(f"waiting for the run of pipeline '{where}' (pid {pid}) to finish")
                fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        name = {"pid": os.getpid(), "run": run_id, "events": str(events) if events else None}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(name).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # a clean release leaves no name behind
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _take_or_holder(fd: int, mode: int = fcntl.LOCK_EX) -> Holder | None:
    """Lock `fd` with `mode` (None), or the holder the file names once it names a live process
    (a holder whose name did not appear in time has pid None)."""
    deadline = time.monotonic() + READ_PATIENCE
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            pass
        holder = _named_holder(fd)
        if holder is not None:
            return holder
        if time.monotonic() > deadline:
            return Holder(pid=None)
        time.sleep(_READ_INTERVAL)


def read_holder(path: Path) -> Holder | None:
    """The run holding the lock at `path`, or None when no run holds it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return _take_or_holder(fd, fcntl.LOCK_SH)  # a shared lock taken here ends as fd closes
    finally:
        os.close(fd)


def is_locked(path: Path) -> bool:
    """True while some run holds the lock."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _named_holder(fd: int) -> Holder | None:
    """The holder the file names, if it names a live process (else it is not written yet)."""
    text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    try:
        data = json.loads(text) if text else None
    except ValueError:
        return None  # half written
    if isinstance(data, int):  # written by an older nb2pipe: the pid alone
        data = {"pid": data}
    if not isinstance(data, dict):
        return None
    pid = data.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or not pid_alive(pid):
        return None
    run_id, events = data.get("run"), data.get("events")
    return Holder(pid, run_id if isinstance(run_id, str) else None, events if isinstance(events, str) else None)


def pid_alive(pid: int | None) -> bool:
    """True while process `pid` exists."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
