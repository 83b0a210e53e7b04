"""Progress of a run as events: written to the run's events.jsonl and shown to the user.

Events are dicts with an `event` key, one of `vocabulary.EventName`: run_started, stage_started,
cell (`index` of `count` code cells of the executed notebook, and where that is among the stage's
own cells: `title`, `notebook_cell`, `position`, `of`, `role`, see run/cell_progress.py), output
(`stage`, `cell`: the notebook cell number or null, `stream`: stdout, stderr, display or error,
`text`: whole lines, redacted; see run/stage_output.py), stage_finished, stage_failed (with
`stage_error`, an errors.StageError as JSON), stage_retry (a failed try of a stage with retries:
that runs again; run/tries.py), run_finished, message.
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


def plain_reporter(stream: TextIO = sys.stderr, log: bool = False) -> Reporter:
    """One line per stage start and end and per cell (`train: notebook cell 14, 2 of 5`): for logs
    and CI. With `log`, also every line the stages print, prefixed by the stage's name."""

    def report(record: dict[str, Any]) -> None:
        kind = record["event"]
        if kind == EventName.STAGE_STARTED:
            stream.write(f"running {record['stage']}\n")
        elif kind == EventName.CELL:
            stream.write(f"{record['stage']}: {progress_label(record)}\n")
        elif kind == EventName.STAGE_FINISHED:
            stream.write(f"{record['outcome']:>10} {record['stage']}" + _duration(record) + "\n")
        elif kind == EventName.STAGE_FAILED:
            stream.write(f"{Outcome.FAILED:>10} {record['stage']}" + _duration(record) + "\n")
        elif kind == EventName.MESSAGE:
            stream.write(record["text"] + "\n")
        elif kind == EventName.OUTPUT and log:
            stream.write(_log_lines(record))
        stream.flush()

    return report


def terminal_reporter(stream: TextIO = sys.stderr, log: bool = False, tick: float = 1.0) -> Reporter:
    """A live status line above the finished stages: each running stage, where it is ('notebook
    cell 14, 2 of 5'), for how long, and its kernel's memory, redrawn every `tick` seconds. With
    `log`, the lines the stages print go above it, prefixed by the stage's name."""
    live = _LiveLine(stream, tick)

    def report(record: dict[str, Any]) -> None:
        kind, stage = record["event"], record.get("stage", "")  # every stage event names its stage
        with live.lock:
            if kind == EventName.STAGE_STARTED:
                live.running[stage] = _Running(record.get("time", time.time()))
                live.start_ticking()
            elif kind == EventName.CELL and stage in live.running:
                live.running[stage].label = progress_label(record)
                live.running[stage].pid = record.get("kernel_pid") or live.running[stage].pid
            elif kind in (EventName.STAGE_FINISHED, EventName.STAGE_FAILED):
                live.running.pop(stage, None)
                outcome = record.get("outcome", Outcome.FAILED)
                stream.write("\r\033[K" + f"{outcome:>10} {stage}" + _duration(record) + "\n")
            elif kind == EventName.MESSAGE:
                stream.write("\r\033[K" + record["text"] + "\n")
            elif kind == EventName.OUTPUT and log:
                stream.write("\r\033[K" + _log_lines(record))
            live.draw()

    return report


class _Running:
    def __init__(self, started: float):
        self.started, self.label, self.pid = started, "starting", None


class _LiveLine:
    """The status line of the running stages, redrawn by a thread of its own while any runs."""

    def __init__(self, stream: TextIO, tick: float):
        self.stream, self.tick = stream, tick
        self.lock = threading.Lock()
        self.running: dict[str, _Running] = {}
        self._ticking = False

    def start_ticking(self) -> None:
        if not self._ticking:
            self._ticking = True
            threading.Thread(target=self._tick, name="nb2pipe-status-line", daemon=True).start()

    def _tick(self) -> None:
        while True:
            time.sleep(self.tick)
            with self.lock:
                if not self.running:
                    self._ticking = False
                    return
                self.draw()

    def draw(self) -> None:
        now = time.time()
        parts = []
        for name, stage in self.running.items():
            memory = kernel_memory(stage.pid)
            parts.append(f"{name} [{stage.label}, {now - stage.started:.0f} s" + (f", {memory}]" if memory else "]"))
        self.stream.write("\r\033[K" + ("  running: " + "  ".join(parts)[:150] if parts else ""))
        self.stream.flush()


def kernel_memory(pid: int | None) -> str:
    """The resident memory of process `pid` as '312 MiB' (from /proc; '' where it cannot be read)."""
    if not pid:
        return ""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return ""
    return f"{kib / 1024:.0f} MiB" if kib < 1024 * 1024 else f"{kib / 1024 / 1024:.1f} GiB"


def _log_lines(record: dict[str, Any]) -> str:
    """A stage's printed lines, each prefixed by the stage's name (as `docker compose logs` does)."""
    stage = record.get("stage", "")
    return "".join(f"{stage} | {line}\n" for line in str(record.get("text", "")).splitlines())


def _duration(record: dict[str, Any]) -> str:
    duration = record.get("duration")
    return f" ({duration:.1f}s)" if isinstance(duration, (int, float)) else ""
