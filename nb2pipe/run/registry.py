"""What is running: the run registry on disk, read by the server and by `nb2pipe status`.

1. A run registers itself by holding its pipeline's run lock (`.nb2pipe/run.pid`, see pidlock):
   the lock file names the run's pid, run id and events file (`runs/<run-id>/events.jsonl`).
2. `active_run(folder)` says which run holds a pipeline folder now (None when none does). An
   events file that is not inside the pipeline folder is not followed.
3. `Progress` folds a run's events (JSON lines: run_started, stage_started, cell, output,
   stage_finished, stage_failed, run_finished) into the record the server shows for a job:
   stage states with cell i of n and where that is among the stage's own cells, the last
   OUTPUT_LINES lines each stage printed (`output`, kept after it ends), errors (the messages,
   and the structured `StageError`s), summary. The server folds its own children's events with
   the same class, and reads a run started elsewhere from its events file the same way.

Light on purpose (no papermill, no pipeline loading): `nb2pipe status` reads it on every call.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nb2pipe import model as m
from nb2pipe.errors import StageError
from nb2pipe.run.pidlock import read_holder
from nb2pipe.vocabulary import EventName, JobStageState, Outcome

RUN_LOCK_FILE = "run.pid"
OUTPUT_LINES = 200  # the lines of output a stage's record keeps (its log file has them all)
OUTPUT_LINE_CHARS = 500  # a longer line is cut there, with an ellipsis
# what a stage's record keeps of its progress through its cells (the `cell` event's fields)
_WHERE = ("title", "notebook_cell", "position", "of", "role")


def run_lock_path(folder: Path) -> Path:
    return Path(folder) / m.STATE_DIR / RUN_LOCK_FILE


@dataclass
class Progress:
    """A run as its events tell it so far."""

    run_id: str | None = None
    started: float | None = None  # time of run_started
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    stage_errors: list[dict[str, Any]] = field(default_factory=list)  # StageError.to_json() of each failed stage
    summary: str | None = None
    outcome: str | None = None  # run_finished's status: ok, failed, interrupted
    last_event: float | None = None

    def apply(self, event: dict[str, Any]) -> None:
        """Fold one runner event into the record."""
        kind, stage = event.get("event"), event.get("stage", "")  # every stage event names its stage
        if isinstance(event.get("time"), (int, float)):
            self.last_event = event["time"]
        if kind == EventName.RUN_STARTED:
            self.run_id = event.get("run")
            self.started = event.get("time")
            for name in event.get("stages", []):
                self.stages[name] = {"state": JobStageState.PENDING}
        elif kind == EventName.STAGE_STARTED:
            self.stages[stage] = {"state": JobStageState.RUNNING, "cell": 0, "cells": None, "started": event.get("time")}
        elif kind == EventName.CELL:
            where = {key: event[key] for key in _WHERE if key in event}
            self.stages.setdefault(stage, {}).update(cell=event["index"], cells=event["count"], **where)
        elif kind == EventName.OUTPUT:
            self._output(stage, event)
        elif kind == EventName.STAGE_FINISHED:
            self.stages[stage] = {"state": event.get("outcome"), "duration": event.get("duration"), "metrics": event.get("metrics"),
                                  **self._kept_output(stage)}
        elif kind == EventName.STAGE_FAILED and event.get("interrupted"):  # stopped by Ctrl-C, SIGTERM or cancel
            self.stages[stage] = {"state": JobStageState.CANCELLED, "duration": event.get("duration"), **self._kept_output(stage)}
        elif kind == EventName.STAGE_FAILED:
            self._failed(stage, event)
        elif kind == EventName.RUN_FINISHED:
            self.summary = event.get("summary")
            self.outcome = event.get("status")

    def _output(self, stage: str, event: dict[str, Any]) -> None:
        """Keep the last OUTPUT_LINES lines the stage printed, each at most OUTPUT_LINE_CHARS long."""
        text = event.get("text")
        if not isinstance(text, str):
            return
        lines = self.stages.setdefault(stage, {}).setdefault("output", [])
        for line in text.splitlines():
            lines.append(line if len(line) <= OUTPUT_LINE_CHARS else line[: OUTPUT_LINE_CHARS - 1] + "…")
        del lines[:-OUTPUT_LINES]

    def _kept_output(self, stage: str) -> dict[str, Any]:
        output = self.stages.get(stage, {}).get("output")
        return {"output": output} if output else {}

    def _failed(self, stage: str, event: dict[str, Any]) -> None:
        self.stages[stage] = {"state": Outcome.FAILED, "duration": event.get("duration"), "error": event.get("error"),
                              "notebook": event.get("notebook"), "cell": event.get("cell"), **self._kept_output(stage)}
        self.errors.append(event.get("error", ""))
        error = StageError.from_json(event.get("stage_error"))
        if error is not None:
            self.stage_errors.append(error.to_json())

    def apply_line(self, line: str | bytes) -> None:
        """Fold one JSON line; a line that is not an event (torn, foreign) is skipped."""
        try:
            event = json.loads(line)
            if isinstance(event, dict):
                self.apply(event)
        except (ValueError, KeyError, TypeError, AttributeError):
            pass

    def running(self) -> set[str]:
        return {name for name, s in self.stages.items() if s.get("state") == JobStageState.RUNNING}

    def stop_running(self, state: str) -> None:
        """The run ended while these stages ran (it was cancelled or killed): say so."""
        for name in self.running():
            self.stages[name] = {**self.stages[name], "state": state}


def read_progress(events: Path | None) -> Progress:
    progress = Progress()
    if events is None:
        return progress
    try:
        with open(events, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                progress.apply_line(line)
    except OSError:
        pass  # not written yet
    return progress


@dataclass(frozen=True)
class ActiveRun:
    """The run that holds a pipeline folder's lock."""

    folder: Path
    pid: int | None
    run_id: str | None
    events: Path | None  # inside the folder, or None

    def progress(self) -> Progress:
        return read_progress(self.events)


def active_run(folder: Path) -> ActiveRun | None:
    """The run holding the pipeline at `folder` now, or None."""
    holder = read_holder(run_lock_path(folder))
    if holder is None:
        return None
    events = Path(holder.events) if holder.events and _is_inside(holder.events, folder) else None
    return ActiveRun(Path(folder), holder.pid, holder.run_id, events)


def running_stages(folder: Path) -> set[str]:
    """The stages a run of the pipeline at `folder` is running now."""
    run = active_run(folder)
    return run.progress().running() if run else set()


def _is_inside(path: str, folder: Path) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(folder)
    return real.startswith(top + os.sep)
