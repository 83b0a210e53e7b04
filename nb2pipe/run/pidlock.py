"""One run per pipeline at a time: an exclusive lock on `.nb2pipe/run.pid`.

The operating system drops the lock when the holder dies, even by `kill -9`, so a crashed run
never blocks the next one. The file holds the holder's pid for the error message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from nb2pipe.errors import PipelineLocked


class RunLock:
    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self, wait: bool = False, where: str = "", on_wait=None) -> None:
        """Take the lock; with `wait`, queue behind its holder (telling `on_wait` once)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            if wait:
                if on_wait:
                    on_wait(f"waiting for the run of pipeline '{where or self.path.parent.parent}' (pid {holder}) to finish")
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._take(fd)
                return
            os.close(fd)
            raise PipelineLocked(
                f"pipeline '{where or self.path.parent.parent}' is already running (pid {holder}); "
                "wait for it to finish, or pass --wait to queue behind it"
            ) from None
        self._take(fd)

    def _take(self, fd: int) -> None:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def is_locked(path: Path) -> bool:
    """True while some run holds the lock."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
