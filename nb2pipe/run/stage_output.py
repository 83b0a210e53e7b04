"""What a running stage prints, as whole lines: to the stage's log file and the run's events.

1. In the executor, papermill writes each stream output of a cell, as it arrives from the
   kernel, to a `StreamLines` (one for stdout, one for stderr). It keeps a partial last line
   until its end arrives (or the cell ends) and hands the complete lines on. Rich outputs become
   a short placeholder when their cell ends (`rich_output_lines`: "[image]", "[html]"), an error
   its `ValueError: boom` line.
2. A `Batches` collects those lines and hands them to the job's `on_output(cell title, stream,
   text)` at most every BATCH_S seconds, one call per cell and stream, from a timer thread: a
   stage that prints and flushes thousands of lines a second costs papermill's thread a string
   append each, not an event and two file writes each (which made nbclient give up waiting for
   the kernel's output). `close` hands on the rest before the stage's outcome is known.
3. In the runner, `StageLogs` appends that text (after redact.redact) to `runs/<run-id>/<stage>.log`
   and flushes it, so a run that is killed still has what its stages printed; the `output` event
   carries the same text, at most OUTPUT_EVENT_LINES lines of it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

OUTPUT_EVENT_LINES = 200  # the most lines one `output` event carries (the log file has them all)
BATCH_S = 0.1  # how often a running stage's new lines are handed on
OutputSink = Callable[[str, str, str], None]  # (cell title, stream, text of whole lines)


class StreamLines:
    """A file-like object papermill writes one stream of a stage's cells to (`stdout_file`)."""

    def __init__(self, stream: str, sink: OutputSink, cell_title: Callable[[], str]):
        self.stream, self._sink, self._cell_title = stream, sink, cell_title
        self._partial = ""

    def write(self, text: str) -> int:
        complete, newline, self._partial = (self._partial + text).rpartition("\n")
        if newline:
            self._sink(self._cell_title(), self.stream, complete + "\n")
        return len(text)

    def flush(self) -> None:
        """papermill flushes after every write; lines are handed on as they complete."""

    def end_cell(self) -> None:
        """The cell ended: its last line counts even without a newline."""
        if self._partial:
            partial, self._partial = self._partial, ""
            self._sink(self._cell_title(), self.stream, partial + "\n")


class Batches:
    """An OutputSink that hands what it gets to `sink` every BATCH_S seconds (see the top)."""

    def __init__(self, sink: OutputSink, interval: float = BATCH_S):
        self._sink, self._interval = sink, interval
        self._pending: list[list[str]] = []  # [cell title, stream, text], in order of arrival
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def __call__(self, title: str, stream: str, text: str) -> None:
        with self._lock:
            if self._pending and self._pending[-1][:2] == [title, stream]:
                self._pending[-1][2] += text
            else:
                self._pending.append([title, stream, text])
            if self._timer is None:
                self._timer = threading.Timer(self._interval, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Hand on what is pending, now (the timer calls it; so does `close`)."""
        with self._lock:
            pending, self._pending, self._timer = self._pending, [], None
            for title, stream, text in pending:  # under the lock: batches reach the sink in order
                self._sink(title, stream, text)

    def close(self) -> None:
        with self._lock:
            timer = self._timer
        if timer is not None:
            timer.cancel()
        self.flush()


# what a rich output shows as in the output box, by the richest type it has
_PLACEHOLDERS = (("image/", "[image]"), ("text/html", "[html]"), ("application/vnd.jupyter.widget", "[widget]"),
                 ("text/markdown", "[markdown]"), ("text/latex", "[latex]"), ("application/json", "[json]"))


def rich_output_lines(cell: Any) -> list[tuple[str, str]]:
    """(stream, text) for the outputs of a finished cell that are not streams: a placeholder for
    a rich one, its text for a plain result, `ename: evalue` for an error."""
    lines: list[tuple[str, str]] = []
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "error":
            lines.append(("error", f"{output.get('ename', 'Error')}: {output.get('evalue', '')}\n"))
        elif kind in ("display_data", "execute_result"):
            data = output.get("data", {})
            shown = next((text for prefix, text in _PLACEHOLDERS if any(t.startswith(prefix) for t in data)), None)
            plain = data.get("text/plain", "")
            plain = "".join(plain) if isinstance(plain, list) else str(plain)
            lines.append(("display", (shown or plain.rstrip("\n") or "[output]") + "\n"))
    return lines


class StageLogs:
    """The log files of a run's stages (`<run dir>/<stage>.log`), appended to and flushed per call."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self._files: dict[str, IO[str]] = {}
        self._lock = threading.Lock()

    def append(self, stage: str, text: str) -> None:
        with self._lock:
            log = self._files.get(stage)
            if log is None:
                # open while the stage runs; close(stage) or close_all() closes it
                log = self._files[stage] = open(self.run_dir / f"{stage}.log", "a", encoding="utf-8")  # noqa: SIM115
            log.write(text)
            log.flush()

    def close(self, stage: str) -> None:
        with self._lock:
            log = self._files.pop(stage, None)
        if log is not None:
            log.close()

    def close_all(self) -> None:
        for stage in list(self._files):
            self.close(stage)


def event_text(text: str) -> str:
    """At most the last OUTPUT_EVENT_LINES lines of `text`, for an `output` event."""
    lines = text.splitlines(keepends=True)
    return text if len(lines) <= OUTPUT_EVENT_LINES else "".join(lines[-OUTPUT_EVENT_LINES:])


TRACEBACK_CHARS = 8000  # the end of a longer traceback is kept: the failing line is there
_ANSI_COLOURS = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def plain_traceback(lines: list[str] | None) -> str:
    """A kernel's traceback (lines with terminal colours) as plain text, at most TRACEBACK_CHARS."""
    text = _ANSI_COLOURS.sub("", "\n".join(lines or [])).strip("\n")
    return text if len(text) <= TRACEBACK_CHARS else "…" + text[-TRACEBACK_CHARS:]
