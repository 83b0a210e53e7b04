"""Progress of a run as events: written to the run's events.jsonl and shown to the user.

Events are dicts with an `event` key, one of `vocabulary.EventName`: run_started, stage_started,
cell (`index` of `count` code cells of the executed notebook, and where that is among the stage's
own cells: `title`, `notebook_cell`, `position`, `of`, `role`, see run/cell_progress.py), output
(`stage`, `cell`: the notebook cell number or null, `stream`: stdout, stderr, display or error,
`text`: whole lines, redacted; see run/stage_output.py), stage_finished, stage_failed (with
`stage_error`, an errors.StageError as JSON), run_finished, message.
Reporters show them as a live line on a terminal, plain lines otherwise,
or JSON lines for machines (`--events jsonl`). `message_to` tells reporters something outside a
run's events (a warning before the run starts).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from nb2pipe.run.cell_progress import progress_label
from nb2pipe.vocabulary import EventName, Outcome

Reporter = Callable[[dict[str, Any]], None]


def message_to(reporters: Iterable[Reporter], text: str) -> None:
    """Tell every reporter `text`, as a `message` event."""
    record = {"event": EventName.MESSAGE, "time": round(time.time(), 3), "text": text}
    for report in reporters:
        report(record)


class Events:
    """Fans each event out to the run's log file and to the reporters; safe across threads."""

    def __init__(self, log_file: Path | None, reporters: list[Reporter]):
        self._lock = threading.Lock()
        # open for the run's whole length; close() closes it
        self._log = open(log_file, "a", encoding="utf-8") if log_file else None  # noqa: SIM115
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
        if kind == EventName.STAGE_STARTED:
            stream.write(f"running {record['stage']}\n")
        elif kind == EventName.STAGE_FINISHED:
            stream.write(f"{record['outcome']:>10} {record['stage']}" + _duration(record) + "\n")
        elif kind == EventName.STAGE_FAILED:
            stream.write(f"{Outcome.FAILED:>10} {record['stage']}" + _duration(record) + "\n")
        elif kind == EventName.MESSAGE:
            stream.write(record["text"] + "\n")
        stream.flush()

    return report


def terminal_reporter(stream: TextIO = sys.stderr) -> Reporter:
    """A live status line (stages running, where each is: 'notebook cell 14, 2 of 5') above the
    finished stages."""
    running: dict[str, str] = {}

    def report(record: dict[str, Any]) -> None:
        kind, stage = record["event"], record.get("stage", "")  # every stage event names its stage
        if kind == EventName.STAGE_STARTED:
            running[stage] = "starting"
        elif kind == EventName.CELL:
            running[stage] = progress_label(record)
        elif kind in (EventName.STAGE_FINISHED, EventName.STAGE_FAILED):
            running.pop(stage, None)
            outcome = record.get("outcome", Outcome.FAILED)
            stream.write("\r\033[K" + f"{outcome:>10} {stage}" + _duration(record) + "\n")
        elif kind == EventName.MESSAGE:
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
