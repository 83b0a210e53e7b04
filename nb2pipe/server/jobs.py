"""Runs started from the browser, and runs started elsewhere that the server shows.

1. `start` records a job and starts the task that watches it (kept on the job). The task spawns
   the run worker, `python -m nb2pipe.api` (one tracked run, see nb2pipe/api/__main__.py), and
   sends it the request as JSON on stdin (the posted parameters keep their JSON types); a spawn
   that fails makes the job `failed` with the error.
2. The child's JSON-lines events fold into the job's progress (`registry.Progress`): stage
   states, error messages (`errors`) and the structured errors (`stage_errors`).
3. Cancel sends SIGTERM once: the runner turns it into its interrupt path (outputs restored,
   lock released, exit 130), and it reaches the child whatever the server's own dispositions
   (a server started without a terminal ignores SIGINT, and so would its children). A cancel
   that arrives before the child exists is recorded and sent as soon as it does.
4. The status comes from how the child ended: 0 is `ok` (a cancel that came too late is said in
   the summary); interrupted (130) or killed by a signal after a cancel is `cancelled`;
   anything else is `failed`, with the child's last error line.
5. A run that holds a pipeline's lock but is not a job here (started from a terminal) is read
   from the run registry and shown as an `external` job, also by `GET runs/{run id}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nb2pipe.run.registry import ActiveRun, Progress, active_run, read_progress
from nb2pipe.vocabulary import JobStatus, RunStatus

INTERRUPTED_EXIT = 130  # what the run worker exits with after SIGINT or SIGTERM
STREAM_LIMIT = 16 * 1024 * 1024  # longest event line read from the child
TOO_LATE = "the cancel came too late: the run had already finished"


@dataclass(frozen=True)
class RunRequest:
    """What `POST runs` asked for, validated."""

    target: Path  # the notebook or pipeline folder to run
    folder: Path  # the pipeline folder
    stages: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    force: bool = False
    downstream: bool = False

    def for_worker(self, root: Path) -> dict[str, Any]:
        """The request the run worker reads (paths relative to the server root, where it runs)."""
        return {"target": os.path.relpath(self.target, root), "stages": list(self.stages), "params": self.params,
                "force": self.force, "downstream": self.downstream}


@dataclass
class Job:
    id: str
    pipeline: str  # relative to the server root
    progress: Progress = field(default_factory=Progress)
    status: JobStatus = JobStatus.STARTING
    argv: list[str] = field(default_factory=list)
    process: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    cancel_requested: bool = False
    cancel_sent: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pipeline": self.pipeline,
            "status": self.status,
            "run": self.progress.run_id,
            "stages": self.progress.stages,
            "errors": self.progress.errors,
            "stage_errors": self.progress.stage_errors,
            "summary": self.progress.summary,
            "started": self.started,
            "finished": self.finished,
            "cancel_requested": self.cancel_requested,
            "external": False,
        }

    def apply_line(self, line: bytes) -> None:
        self.progress.apply_line(line)
        if self.status == JobStatus.STARTING and self.progress.run_id:
            self.status = JobStatus.RUNNING


class Jobs:
    def __init__(self, root: Path):
        self.root = root
        self.jobs: dict[str, Job] = {}
        self._external: dict[str, tuple[str, Path, Path | None]] = {}  # run id -> (pipeline, folder, events)
        self._count = 0

    # --- jobs of this server ---

    def start(self, request: RunRequest) -> Job:
        self._count += 1
        job = Job(f"{int(time.time())}-{self._count}", request.folder.relative_to(self.root).as_posix())
        self.jobs[job.id] = job
        job.task = asyncio.get_running_loop().create_task(self._watch(job, request))
        return job

    def running_for(self, pipeline: str) -> Job | None:
        for job in self.jobs.values():
            if job.pipeline == pipeline and job.finished is None:
                return job
        return None

    def cancel(self, job: Job) -> None:
        """Stop `job`: now if its process exists, else as soon as it does."""
        if job.finished is not None:
            return
        job.cancel_requested = True
        self._send_cancel(job)

    async def _watch(self, job: Job, request: RunRequest) -> None:
        try:
            process = await self._spawn(job)
        except Exception as error:  # OSError, a bad executable, a full disk...
            self._conclude(job, JobStatus.FAILED, f"cannot start nb2pipe run: {error}")
            return
        self._send_cancel(job)  # a cancel that came while the process was being created
        try:
            await self._send_request(process, request)
            code, stderr = await self._follow(job, process)
        except Exception as error:  # never leave a job running forever
            self._terminate(process)
            await process.wait()
            self._conclude(job, JobStatus.FAILED, f"lost track of nb2pipe run: {error}")
            return
        self._conclude_from_exit(job, code, stderr)

    async def _spawn(self, job: Job) -> asyncio.subprocess.Process:
        job.argv = [sys.executable, "-m", "nb2pipe.api"]
        job.process = await asyncio.create_subprocess_exec(
            *job.argv, cwd=str(self.root), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=STREAM_LIMIT,
        )
        return job.process

    async def _send_request(self, process: asyncio.subprocess.Process, request: RunRequest) -> None:
        """The run request, as JSON on the worker's stdin (closed after it)."""
        assert process.stdin is not None  # made with stdin=PIPE
        try:
            process.stdin.write(json.dumps(request.for_worker(self.root)).encode())
            await process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the worker is gone already (a cancel): how it ended says what happened
        finally:
            process.stdin.close()

    @staticmethod
    async def _follow(job: Job, process: asyncio.subprocess.Process) -> tuple[int, str]:
        """Fold the child's events until it exits: (exit code, its stderr)."""
        assert process.stdout is not None and process.stderr is not None  # made with PIPE
        stderr = asyncio.ensure_future(process.stderr.read())
        async for line in process.stdout:
            job.apply_line(line)
        code = await process.wait()
        return code, (await stderr).decode(errors="replace").strip()

    def _send_cancel(self, job: Job) -> None:
        """SIGTERM, once, to a child that exists and runs; a second signal would interrupt
        the runner while it restores outputs."""
        if not job.cancel_requested or job.cancel_sent or job.process is None or job.process.returncode is not None:
            return
        job.cancel_sent = True
        self._terminate(job.process)

    @staticmethod
    def _terminate(process: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)

    def _conclude_from_exit(self, job: Job, code: int, stderr: str) -> None:
        if code == 0:
            if job.cancel_requested:
                job.progress.summary = f"{job.progress.summary}; {TOO_LATE}" if job.progress.summary else TOO_LATE
            self._conclude(job, JobStatus.OK)
        elif job.cancel_requested and (code == INTERRUPTED_EXIT or code < 0):
            self._conclude(job, JobStatus.CANCELLED)
        else:
            self._conclude(job, JobStatus.FAILED, None if job.progress.errors else _exit_message(code, stderr))

    @staticmethod
    def _conclude(job: Job, status: JobStatus, error: str | None = None) -> None:
        if error:
            job.progress.errors.append(error)
        if status != JobStatus.OK:
            job.progress.stop_running(status)
        job.status = status
        job.finished = time.time()

    # --- runs started elsewhere ---

    def external_for(self, folder: Path) -> dict[str, Any] | None:
        """The run holding `folder`'s lock when it is not a job of this server (blocking: it
        reads the lock and the events file)."""
        run = active_run(folder)
        if run is None or self._is_ours(run):
            return None
        pipeline = folder.relative_to(self.root).as_posix()
        if run.run_id:
            self._external[run.run_id] = (pipeline, folder, run.events)
        return _external_json(pipeline, run.run_id, run.pid, run.progress(), JobStatus.RUNNING, None)

    def external(self, run_id: str) -> dict[str, Any] | None:
        """An external run seen before, by its run id: running, or how it ended."""
        if run_id not in self._external:
            return None
        pipeline, folder, events = self._external[run_id]
        run = active_run(folder)
        if run is not None and run.run_id == run_id:
            return _external_json(pipeline, run_id, run.pid, run.progress(), JobStatus.RUNNING, None)
        progress = read_progress(events)
        ended: dict[str, JobStatus] = {RunStatus.OK: JobStatus.OK, RunStatus.INTERRUPTED: JobStatus.CANCELLED}
        status = ended.get(progress.outcome or "", JobStatus.FAILED)
        if progress.outcome is None:
            progress.errors.append("the run stopped without finishing (it was killed)")
        if status != JobStatus.OK:
            progress.stop_running(status)
        return _external_json(pipeline, run_id, None, progress, status, progress.last_event or time.time())

    def _is_ours(self, run: ActiveRun) -> bool:
        return any(job.process is not None and job.process.pid == run.pid for job in self.jobs.values())


def _external_json(pipeline: str, run_id: str | None, pid: int | None, progress: Progress, status: JobStatus,
                   finished: float | None) -> dict[str, Any]:
    return {
        "id": run_id or f"pid-{pid}",
        "pipeline": pipeline,
        "status": status,
        "run": run_id,
        "stages": progress.stages,
        "errors": progress.errors,
        "stage_errors": progress.stage_errors,
        "summary": progress.summary,
        "started": progress.started,
        "finished": finished,
        "cancel_requested": False,
        "external": True,
        "pid": pid,
    }


def _exit_message(code: int, stderr: str) -> str:
    if code < 0:
        return f"nb2pipe run was killed by {_signal_name(-code)}"
    if code == INTERRUPTED_EXIT:
        return "nb2pipe run was interrupted"
    last = stderr.splitlines()[-1] if stderr else ""
    return last or f"nb2pipe run exited with {code}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
