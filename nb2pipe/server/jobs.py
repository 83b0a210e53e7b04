"""Runs started from the browser: each is `nb2pipe run --events jsonl` in a child process.

The child's JSON-lines events are folded into a progress record (stage states, cell i of n,
errors) that `GET runs/{id}` returns. Cancelling sends SIGINT, the runner's own interrupt path,
so outputs are restored and the lock stays valid, as after Ctrl-C in a terminal.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Job:
    id: str
    pipeline: str  # relative to the server root
    argv: list[str]
    process: asyncio.subprocess.Process | None = None
    status: str = "starting"  # starting, running, ok, failed, cancelled
    run_id: str | None = None
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    summary: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    cancel_requested: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pipeline": self.pipeline,
            "status": self.status,
            "run": self.run_id,
            "stages": self.stages,
            "errors": self.errors,
            "summary": self.summary,
            "started": self.started,
            "finished": self.finished,
        }

    def apply(self, event: dict[str, Any]) -> None:
        """Fold one runner event into the progress record."""
        kind, stage = event.get("event"), event.get("stage")
        if kind == "run_started":
            self.run_id = event.get("run")
            self.status = "running"
            for name in event.get("stages", []):
                self.stages[name] = {"state": "pending"}
        elif kind == "stage_started":
            self.stages[stage] = {"state": "running", "cell": 0, "cells": None, "started": event.get("time")}
        elif kind == "cell":
            self.stages.setdefault(stage, {}).update(cell=event["index"], cells=event["count"])
        elif kind == "stage_finished":
            self.stages[stage] = {"state": event.get("outcome"), "duration": event.get("duration"), "metrics": event.get("metrics")}
        elif kind == "stage_failed":
            self.stages[stage] = {"state": "failed", "duration": event.get("duration"), "error": event.get("error"),
                                  "notebook": event.get("notebook"), "cell": event.get("cell")}
            self.errors.append(event.get("error", ""))
        elif kind == "run_finished":
            self.summary = event.get("summary")


class Jobs:
    def __init__(self, root: Path):
        self.root = root
        self.jobs: dict[str, Job] = {}
        self._count = 0

    def start(self, pipeline: Path, options: dict[str, Any]) -> Job:
        self._count += 1
        job_id = f"{int(time.time())}-{self._count}"
        argv = [sys.executable, "-m", "nb2pipe", "run", str(pipeline), "--events", "jsonl"]
        for stage in options.get("stages", []):
            argv += ["--stage", stage]
        if options.get("downstream"):
            argv.append("--downstream")
        if options.get("force"):
            argv.append("--force")
        for name, value in (options.get("params") or {}).items():
            argv += ["-p", f"{name}={value}"]
        job = Job(job_id, str(pipeline.relative_to(self.root)), argv)
        self.jobs[job_id] = job
        asyncio.get_event_loop().create_task(self._watch(job, pipeline))
        return job

    async def _watch(self, job: Job, pipeline: Path) -> None:
        job.process = await asyncio.create_subprocess_exec(
            *job.argv, cwd=str(self.root), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        stderr_task = asyncio.ensure_future(job.process.stderr.read())
        async for line in job.process.stdout:
            try:
                job.apply(json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue
        code = await job.process.wait()
        stderr = (await stderr_task).decode(errors="replace").strip()
        if code != 0 and not job.errors:
            job.errors.append(stderr.splitlines()[-1] if stderr else f"nb2pipe run exited with {code}")
        job.status = "cancelled" if job.cancel_requested else ("ok" if code == 0 else "failed")
        job.finished = time.time()

    def cancel(self, job: Job) -> None:
        if job.process is not None and job.process.returncode is None:
            job.cancel_requested = True
            job.process.send_signal(signal.SIGINT)

    def running_for(self, pipeline: str) -> Job | None:
        for job in self.jobs.values():
            if job.pipeline == pipeline and job.finished is None:
                return job
        return None
