"""What starting a run takes: its id, the pipeline's run lock, and Ctrl-C/SIGTERM as KeyboardInterrupt.

Used by the runner, a sweep's trials (api/sweep.py) and the stage command the exports run
(run/single.py).

Python runs a signal's handler in the main thread only, and only when that thread runs; the OS
hands a signal sent to the process (a terminal's Ctrl-C) to any of its threads. A main thread
blocked without a timeout on the threads that run the stages would never see the Ctrl-C, so it
waits for them in steps of SIGNALS_SEEN_WITHIN_S (`first_done`, `wait_all`, `result_of`).
concurrent.futures is imported by these, once a run waits: not on the way to its first stage.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import signal
import threading
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from nb2pipe import model as m
from nb2pipe.run.events import Reporter, message_to
from nb2pipe.run.pidlock import RunLock

if TYPE_CHECKING:
    from concurrent.futures import Future  # imported where a run waits, after its first stage started

RUNS_DIR = "runs"
RUN_LOCK_FILE = "run.pid"
SIGNALS_SEEN_WITHIN_S = 0.5  # the longest a main thread waits for other threads at a time (module description)

_Result = TypeVar("_Result")

_minted_lock = threading.Lock()
_minted: set[str] = set()  # the ids this process gave out in the current second


def _timestamp() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S-")


def new_run_id(taken: Callable[[str], bool] | None = None) -> str:
    """`YYYYmmdd-HHMMSS-xxxx` (sorts by time; 4 random hex digits): never one this process gave
    out before (a sweep mints many per second, from several threads), nor one `taken` says is
    used (e.g. its runs/ folder exists)."""
    with _minted_lock:
        while True:
            stamp = _timestamp()
            if not any(run_id.startswith(stamp) for run_id in itertools.islice(_minted, 1)):
                _minted.clear()  # a new second: the ids of earlier ones cannot come again
            run_id = stamp + os.urandom(2).hex()
            if run_id not in _minted and not (taken and taken(run_id)):
                _minted.add(run_id)
                return run_id


def acquire_run_lock(pipeline_root: str | Path, wait: bool, reporters: list[Reporter], run_id: str) -> RunLock:
    """Take the pipeline's run lock (one run at a time) for run `run_id`, saying so while waiting
    for it. The lock file names the run and its events file, for `nb2pipe.run.registry`."""
    root = Path(pipeline_root)
    run_lock = RunLock(root / m.STATE_DIR / RUN_LOCK_FILE)
    run_lock.acquire(
        wait=wait, where=str(root), run_id=run_id, events=root / RUNS_DIR / run_id / "events.jsonl",
        on_wait=lambda text: message_to(reporters, text),
    )
    return run_lock


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt while the stages run, whatever dispositions the
    process inherited (a server or a script may start `nb2pipe run` with SIGINT ignored)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread (e.g. inside a server): leave signals alone
        pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def first_done(futures: Collection[Future[_Result]]) -> set[Future[_Result]]:
    """The futures that are done, waiting up to SIGNALS_SEEN_WITHIN_S for one."""
    from concurrent.futures import FIRST_COMPLETED, wait

    return wait(futures, timeout=SIGNALS_SEEN_WITHIN_S, return_when=FIRST_COMPLETED).done


def wait_all(futures: Collection[Future[Any]]) -> None:
    """Return once every future is done, waking every SIGNALS_SEEN_WITHIN_S so that a Ctrl-C the
    OS handed to another thread raises KeyboardInterrupt here."""
    from concurrent.futures import wait

    while wait(futures, timeout=SIGNALS_SEEN_WITHIN_S).not_done:
        pass


def result_of(future: Future[_Result]) -> _Result:
    """`future.result()`, waited for as `wait_all` waits."""
    wait_all([future])
    return future.result()
