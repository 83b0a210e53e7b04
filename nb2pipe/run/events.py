"""Progress of a run as events: written to the run's events.jsonl and shown to the user.

Events are dicts with an `event` key: run_started, stage_started, cell, stage_finished,
stage_failed, run_finished. Reporters show them as a live line on a terminal, plain lines
otherwise, or JSON lines for machines (`--events jsonl`).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, TextIO

Reporter = Callable[[dict[str, Any]], None]


class Events:
    """Fans each event out to the run's log file and to the reporters; safe across threads."""

    def __init__(self, log_file: Path | None, reporters: list[Reporter]):
        self._lock = threading.Lock()
        self._log = open(log_file, "a", encoding="utf-8") if log_file else None
        self._reporters = reporters

    def emit(self, event: str, **fields: Any) -> None:
        record = {"event": event, "time": round(time.time(), 3), **fields}
        with self._lock:
            if self._log:
                self._log.write(json.dumps(record, default=str) + "\n")
                self._log.flush()
            for report in self._reporters:
                report(record)

    def close(self) -> None:
        if self._log:
            self._log.close()


def jsonl_reporter(stream: TextIO = sys.stdout) -> Reporter:
    def report(record: dict[str, Any]) -> None:
        stream.write(json.dumps(record, default=str) + "\n")
        stream.flush()

    return report


def plain_reporter(stream: TextIO = sys.stderr) -> Reporter:
    """One line per stage start and end: for logs and CI."""

    def report(record: dict[str, Any]) -> None:
        kind = record["event"]
        if kind == "stage_started":
            stream.write(f"running {record['stage']}\n")
        elif kind == "stage_finished":
            stream.write(f"{record['outcome']:>10} {record['stage']}" + _duration(record) + "\n")
        elif kind == "stage_failed":
            stream.write(f"{'failed':>10} {record['stage']}" + _duration(record) + "\n")
        elif kind == "message":
            stream.write(record["text"] + "\n")
        stream.flush()

    return report


def terminal_reporter(stream: TextIO = sys.stderr) -> Reporter:
    """A live status line (stages running, cell i of n, elapsed) above the finished stages."""
    running: dict[str, str] = {}

    def report(record: dict[str, Any]) -> None:
        kind, stage = record["event"], record.get("stage")
        if kind == "stage_started":
            running[stage] = "starting"
        elif kind == "cell":
            running[stage] = f"cell {record['index']}/{record['count']}"
        elif kind in ("stage_finished", "stage_failed"):
            running.pop(stage, None)
            outcome = record.get("outcome", "failed")
            stream.write("\r\033[K" + f"{outcome:>10} {stage}" + _duration(record) + "\n")
        elif kind == "message":
            stream.write("\r\033[K" + record["text"] + "\n")
        if running:
            line = "  ".join(f"{name} [{state}]" for name, state in running.items())
            stream.write("\r\033[K" + "  running: " + line[:150])
        else:
            stream.write("\r\033[K")
        stream.flush()

    return report


def _duration(record: dict[str, Any]) -> str:
    duration = record.get("duration")
    return f" ({duration:.1f}s)" if isinstance(duration, (int, float)) else ""
