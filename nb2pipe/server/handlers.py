"""REST handlers under `<base_url>/nb2pipe/`: status, export, runs. Thin: parse, call, map errors.

Every verb is authenticated. Every path is relative to the server's root and must stay inside
it once resolved (`..`, absolute paths and symlinks pointing out are refused). Errors are mapped
to HTTP in one place, `_error_status`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from nb2pipe import model as m
from nb2pipe.errors import Nb2PipeError, NotebookError, OverwriteError, PipelineLocked, SpecError
from nb2pipe.server.jobs import Jobs

NAMESPACE = "nb2pipe"


class PathError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _error_status(error: Exception) -> int:
    from nb2pipe.track import UnknownRun

    if isinstance(error, PathError):
        return error.status
    if isinstance(error, UnknownRun):
        return 404
    if isinstance(error, (PipelineLocked, OverwriteError)):
        return 409
    if isinstance(error, (SpecError, NotebookError)):
        return 400
    return 500


def confine(root: Path, relative: Any) -> Path:
    """`relative` resolved inside `root`, or a PathError (400 malformed, 403 outside the root)."""
    if not isinstance(relative, str) or not relative.strip() or "\x00" in relative:
        raise PathError(400, "a 'path' relative to the server root is required")
    if os.path.isabs(relative) or relative.startswith(("/", "\\")):
        raise PathError(400, f"'{relative}' is absolute; give a path relative to the server root")
    full = (root / relative).resolve()
    if full != root and root not in full.parents:
        raise PathError(403, f"'{relative}' is outside the server root")
    return full


def maps_errors(method):
    """Turn nb2pipe's errors into JSON responses with the right status, in one place."""

    @functools.wraps(method)
    async def wrapper(self: "Nb2PipeHandler", *args, **kwargs):
        try:
            return await method(self, *args, **kwargs)
        except (Nb2PipeError, PathError) as error:
            self.set_status(_error_status(error))
            self.finish(json.dumps({"message": str(error)}))

    return wrapper


class Nb2PipeHandler(APIHandler):
    @property
    def root(self) -> Path:
        return self.settings["nb2pipe_root"]

    @property
    def jobs(self) -> Jobs:
        return self.settings["nb2pipe_jobs"]

    def body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise PathError(400, "the request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise PathError(400, "the request body must be a JSON object")
        return data

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def pipeline_of(self, target: Path) -> tuple[Path | None, Path]:
        """(notebook or None, pipeline folder) for a notebook path or a pipeline folder path."""
        if target.suffix == ".ipynb":
            from nb2pipe.export import default_folder

            return target, default_folder(target)
        return None, target


class StatusHandler(Nb2PipeHandler):
    @tornado.web.authenticated
    @maps_errors
    async def get(self):
        target = confine(self.root, self.get_query_argument("path", ""))
        notebook, folder = self.pipeline_of(target)
        if notebook is not None and not notebook.is_file():
            raise PathError(404, f"notebook '{self.relative(notebook)}' does not exist")
        payload = await asyncio.to_thread(_status_payload, self.root, notebook, folder, self.jobs)
        self.finish(json.dumps(payload, default=str))


def _status_payload(root: Path, notebook: Path | None, folder: Path, jobs: Jobs) -> dict[str, Any]:
    from nb2pipe.run.runner import read_metrics
    from nb2pipe.spec import load_params, load_pipeline
    from nb2pipe.state import pipeline_status

    relative = folder.relative_to(root).as_posix()
    base = {"notebook": notebook.relative_to(root).as_posix() if notebook else None, "pipeline": relative}
    if not (folder / m.PIPELINE_FILE).is_file():
        return {**base, "exists": False, "stages": [], "job": None}
    pipeline = load_pipeline(folder)
    job = jobs.running_for(relative)
    running = {name for name, s in (job.stages if job else {}).items() if s.get("state") == "running"}
    report = pipeline_status(pipeline, load_params(pipeline), running)
    stages = []
    for status in report.stages:
        entry = status.to_json()
        stage = pipeline.stage(status.name)
        last = entry["last_run"] or {}
        if last.get("notebook"):
            last["notebook"] = (folder / last["notebook"]).resolve().relative_to(root).as_posix()
        entry["metrics"] = read_metrics(pipeline, stage)
        entry["cells"] = list(stage.cells)
        entry["params"] = list(stage.params)
        stages.append(entry)
    return {**base, "exists": True, "source_in_sync": report.source_in_sync, "stages": stages, "job": job.to_json() if job else None}


class ExportHandler(Nb2PipeHandler):
    @tornado.web.authenticated
    @maps_errors
    async def post(self):
        from nb2pipe.export import export_notebook

        data = self.body()
        notebook = confine(self.root, data.get("path"))
        if notebook.suffix != ".ipynb" or not notebook.is_file():
            raise PathError(404 if notebook.suffix == ".ipynb" else 400, f"'{data.get('path')}' is not a notebook in the server root")
        result = await asyncio.to_thread(export_notebook, notebook, force=bool(data.get("force")))
        self.finish(json.dumps({
            "pipeline": self.relative(result.folder),
            "stages": [s.name for s in result.pipeline.stages],
            "written": result.written,
            "warnings": result.warnings,
        }))


class RunsHandler(Nb2PipeHandler):
    @tornado.web.authenticated
    @maps_errors
    async def get(self):
        from nb2pipe.spec import load_pipeline
        from nb2pipe.track import RunStore

        target = confine(self.root, self.get_query_argument("path", ""))
        _, folder = self.pipeline_of(target)
        if not (folder / m.PIPELINE_FILE).is_file():
            self.finish(json.dumps({"runs": []}))
            return
        store = RunStore(load_pipeline(folder))
        try:
            runs = await asyncio.to_thread(store.runs, int(self.get_query_argument("limit", "20")))
        finally:
            store.close()
        for run in runs:
            for stage in run["stages"]:
                stage.pop("lock", None)
        self.finish(json.dumps({"runs": runs}, default=str))

    @tornado.web.authenticated
    @maps_errors
    async def post(self):
        data = self.body()
        target = confine(self.root, data.get("path"))
        notebook, folder = self.pipeline_of(target)
        if notebook is not None:
            if not notebook.is_file():
                raise PathError(404, f"notebook '{data.get('path')}' does not exist")
            target = notebook
        elif not (folder / m.PIPELINE_FILE).is_file():
            raise PathError(404, f"no pipeline at '{data.get('path')}'; export its notebook first")
        stages = data.get("stages", [])
        params = data.get("params", {})
        if not isinstance(stages, list) or not all(isinstance(s, str) for s in stages) or not isinstance(params, dict):
            raise PathError(400, "'stages' must be a list of stage names and 'params' a mapping")
        if self.jobs.running_for(self.relative(folder)):
            raise PipelineLocked(f"pipeline '{self.relative(folder)}' is already running; wait for it or cancel it")
        job = self.jobs.start(target, {"stages": stages, "params": params, "force": bool(data.get("force")), "downstream": bool(data.get("downstream"))})
        job.pipeline = self.relative(folder)
        self.set_status(202)
        self.finish(json.dumps(job.to_json()))


class RunHandler(Nb2PipeHandler):
    def _job(self, job_id: str):
        job = self.jobs.jobs.get(job_id)
        if job is None:
            raise PathError(404, f"no run '{job_id}' was started by this server")
        return job

    @tornado.web.authenticated
    @maps_errors
    async def get(self, job_id: str):
        self.finish(json.dumps(self._job(job_id).to_json(), default=str))

    @tornado.web.authenticated
    @maps_errors
    async def delete(self, job_id: str):
        job = self._job(job_id)
        self.jobs.cancel(job)
        self.set_status(202)
        self.finish(json.dumps(job.to_json(), default=str))


def setup_handlers(web_app, root_dir: str) -> None:
    root = Path(root_dir).expanduser().resolve()
    web_app.settings["nb2pipe_root"] = root
    web_app.settings["nb2pipe_jobs"] = Jobs(root)
    base = url_path_join(web_app.settings["base_url"], NAMESPACE)
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "status"), StatusHandler),
            (url_path_join(base, "export"), ExportHandler),
            (url_path_join(base, "runs"), RunsHandler),
            (url_path_join(base, r"runs/(?P<job_id>[\w-]+)"), RunHandler),
        ],
    )
