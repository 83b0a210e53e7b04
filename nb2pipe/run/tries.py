"""What crosses a stage's tries within a run: `retries:` and `allow-failure` (run/runner.py asks).

1. A stage that failed is tried again while it has tries left (`retries: n` gives n + 1 tries),
   in a fresh kernel, with the files as the failed try left them; an interrupt (Ctrl-C,
   SIGTERM, cancel) is never tried again. Each failed try that is tried again is a
   `stage_retry` event (`try`, `tries`, its `error`, `stage_error` and `notebook`); its executed
   notebook is kept as `<stage>.try-<k>.ipynb` (a command's log as `<stage>.try-<k>.log`), so the
   next try does not overwrite it. The stage's last event (stage_finished or stage_failed) says
   which try it was.
2. A stage with `allow-failure` that failed (its last try) is recorded as failed and its
   dependants are not run, but it does not fail the run: the summary says `1 failed (allowed)`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2pipe import model as m
from nb2pipe.run.executors import INTERRUPTED

if TYPE_CHECKING:
    from nb2pipe.run.executors import StageOutcome


class Tries:
    """How many times each stage of a run was tried."""

    def __init__(self) -> None:
        self._tried: dict[str, int] = {}

    def again(self, name: str, settings: m.Settings, outcome: StageOutcome, stopping: bool) -> bool:
        """Whether the stage's failed try is to be tried again (counting it as tried if so)."""
        if outcome.ok or stopping or not settings.retries or interrupted(outcome):
            return False
        tried = self._tried.get(name, 1)
        if tried > settings.retries:
            return False
        self._tried[name] = tried + 1
        return True

    def keys(self, name: str, settings: m.Settings, retrying: bool = False) -> dict[str, Any]:
        """The `try` and `tries` keys of a stage's events, when it has retries (the try that just
        ended: the one before the current count when `retrying`)."""
        if not settings.retries:
            return {}
        tried = self._tried.get(name, 1)
        return {"try": tried - 1 if retrying else tried, "tries": settings.retries + 1}


def interrupted(outcome: StageOutcome) -> bool:
    return outcome.error is not None and outcome.error.get("evalue") == INTERRUPTED


def keep_try(run_dir: Path, name: str, attempt: int, command: bool) -> str | None:
    """Move a failed try's executed notebook (or a command's log) aside as `<stage>.try-<k>.<ext>`,
    so the next try writes its own; the path relative to where the run started (None if none)."""
    ext = "log" if command else "ipynb"
    kept = run_dir / f"{name}.try-{attempt}.{ext}"
    with contextlib.suppress(FileNotFoundError):
        os.replace(run_dir / f"{name}.{ext}", kept)
        return os.path.relpath(kept)
    return None


def summary_failed(failed: int, allowed: int) -> str:
    """`F failed`, with how many of them were allowed to: `1 failed (allowed)`, `3 failed (1 allowed)`."""
    if not allowed:
        return f"{failed} failed"
    return f"{failed} failed (allowed)" if allowed == failed else f"{failed} failed ({allowed} allowed)"
