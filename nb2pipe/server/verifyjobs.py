"""`nb2pipe verify` started from the browser: one background job per notebook, in a child process.

1. `start` records a job and the task that watches it. The task spawns `python -m nb2pipe verify
   --json NOTEBOOK` in the server's root (the server imports no executor: the kernels run in the
   child, as for runs).
2. While it runs, each `verify: ...` line the child prints on stderr is the job's `progress`.
3. When it exits, the JSON report on its stdout is the job's `report`: `equal` says whether the
   pipeline matches the notebook, `differences` the first ways it does not. A child that printed
   no report (a notebook nb2pipe refuses, a kernel that never started) fails the job with its
   last error line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nb2pipe.vocabulary import JobStatus

PROGRESS_PREFIX = "verify: "
FIRST_DIFFERENCES = 5  # a job shows this many differences; the whole report has all of them
STREAM_LIMIT = 16 * 1024 * 1024  # longest line read from the child


@dataclass
class VerifyJob:
    id: str
    notebook: str  # relative to the server root
    status: JobStatus = JobStatus.STARTING
    progress: str | None = None
    report: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    task: asyncio.Task[None] | None = None

    def to_json(self) -> dict[str, Any]:
        report = self.report or {}
        return {
            "id": self.id,
            "notebook": self.notebook,
            "status": self.status,
            "progress": self.progress,
            "equal": report.get("equal"),
            "summary": report.get("summary"),
            "differences": list(report.get("differences", []))[:FIRST_DIFFERENCES],
            "report": self.report,
            "errors": self.errors,
            "started": self.started,
            "finished": self.finished,
        }


class VerifyJobs:
    def __init__(self, root: Path):
        self.root = root
        self.jobs: dict[str, VerifyJob] = {}
        self._count = 0

    def running_for(self, notebook: str) -> VerifyJob | None:
        return next((job for job in self.jobs.values() if job.notebook == notebook and job.finished is None), None)

    def start(self, notebook: str) -> VerifyJob:
        self._count += 1
        job = VerifyJob(f"verify-{int(time.time())}-{self._count}", notebook)
        self.jobs[job.id] = job
        job.task = asyncio.get_running_loop().create_task(self._watch(job))
        return job

    async def _watch(self, job: VerifyJob) -> None:
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "nb2pipe", "verify", "--json", job.notebook, cwd=str(self.root),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                limit=STREAM_LIMIT,
            )
        except Exception as error:  # OSError, a bad executable...
            _conclude(job, None, f"cannot start nb2pipe verify: {error}")
            return
        job.status = JobStatus.RUNNING
        stdout = asyncio.ensure_future(_read_all(process.stdout))
        last_error = await _follow_progress(job, process.stderr)
        await process.wait()
        _conclude(job, _report_of(await stdout), last_error or f"nb2pipe verify exited with {process.returncode}")


async def _read_all(stream: asyncio.StreamReader | None) -> bytes:
    return await stream.read() if stream is not None else b""


async def _follow_progress(job: VerifyJob, stderr: asyncio.StreamReader | None) -> str:
    """Each `verify: ...` line becomes the job's progress; the last other line (an error) is returned."""
    last = ""
    if stderr is None:
        return last
    async for raw in stderr:
        line = raw.decode(errors="replace").strip()
        if line.startswith(PROGRESS_PREFIX):
            job.progress = line.removeprefix(PROGRESS_PREFIX)
        elif line:
            last = line
    return last


def _report_of(stdout: bytes) -> dict[str, Any] | None:
    try:
        report = json.loads(stdout)
    except ValueError:
        return None
    return report if isinstance(report, dict) and "equal" in report else None


def _conclude(job: VerifyJob, report: dict[str, Any] | None, error: str) -> None:
    job.report = report
    if report is None:
        job.errors.append(error)
    job.status = JobStatus.OK if report is not None else JobStatus.FAILED
    job.progress = None
    job.finished = time.time()
