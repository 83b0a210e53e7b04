"""REST handlers under `<base_url>/nb2pipe/`: status, export, runs, diff. Thin: parse, check, call the
application API (nb2pipe.api), map errors.

Every verb is authenticated. Every path read or written stays inside the server's root, the
paths a pipeline file names included (`paths.py`). A run is checked before the 202 (pipeline,
stage names, parameter names), so a mistake is a 400 at once, not a failed job later. Request
bodies are JSON objects of at most MAX_BODY bytes. Errors are mapped to HTTP in one place,
`_error_status`.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import keyword
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from nb2pipe import api
from nb2pipe import model as m
from nb2pipe.errors import Nb2PipeError, NotebookError, OverwriteError, PipelineLocked, SpecError, StageError
from nb2pipe.server.jobs import Jobs, RunRequest
from nb2pipe.server.paths import RequestError, confine, confine_export, confine_folder, confine_pipeline, is_inside, shown
from nb2pipe.vocabulary import JobStageState

NAMESPACE = "nb2pipe"
MAX_BODY = 1024 * 1024  # bytes
DEFAULT_LIMIT, MAX_LIMIT = 20, 1000  # runs in one history answer


def _error_status(error: Exception) -> int:
    from nb2pipe.track import UnknownRun

    if isinstance(error, RequestError):
        return error.status
    if isinstance(error, UnknownRun):
        return 404
    if isinstance(error, (PipelineLocked, OverwriteError)):
        return 409
    if isinstance(error, (SpecError, NotebookError)):
        return 400
    return 500


_Handler = TypeVar("_Handler", bound="Nb2PipeHandler")
_Params = ParamSpec("_Params")


def maps_errors(
    method: Callable[Concatenate[_Handler, _Params], Awaitable[None]],
) -> Callable[Concatenate[_Handler, _Params], Awaitable[None]]:
    """Turn nb2pipe's errors into JSON responses with the right status, in one place."""

    async def wrapper(self: _Handler, /, *args: _Params.args, **kwargs: _Params.kwargs) -> None:
        try:
            return await method(self, *args, **kwargs)
        except (Nb2PipeError, RequestError) as error:
            self.set_status(_error_status(error))
            self.finish(json.dumps({"message": str(error)}))

    functools.update_wrapper(wrapper, method)
    return wrapper


class Nb2PipeHandler(APIHandler):
    @property
    def root(self) -> Path:
        return self.settings["nb2pipe_root"]

    @property
    def jobs(self) -> Jobs:
        return self.settings["nb2pipe_jobs"]

    def body(self) -> dict[str, Any]:
        size = len(self.request.body or b"")
        if size > MAX_BODY:
            raise RequestError(413, f"the request body is too large ({size} bytes; at most {MAX_BODY})")
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise RequestError(400, "the request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise RequestError(400, "the request body must be a JSON object")
        return data

    @staticmethod
    def flag(data: dict[str, Any], key: str) -> bool:
        value = data.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise RequestError(400, f"'{key}' must be true or false, not {shown(json.dumps(value))}")
        return value

    def limit(self) -> int:
        text = self.get_query_argument("limit", str(DEFAULT_LIMIT))
        if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_LIMIT):
            raise RequestError(400, f"'limit' must be a whole number from 1 to {MAX_LIMIT}, not '{shown(text)}'")
        return int(text)

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def pipeline_of(self, target: Path) -> tuple[Path | None, Path]:
        """(notebook or None, pipeline folder inside the root) for a notebook or a pipeline folder."""
        if target.suffix == ".ipynb":
            return target, confine_folder(self.root, api.folder_of(target))
        return None, target


class StatusHandler(Nb2PipeHandler):
    @tornado.web.authenticated
    @maps_errors
    async def get(self) -> None:
        target = confine(self.root, self.get_query_argument("path", ""))
        notebook, folder = self.pipeline_of(target)
        if notebook is not None and not notebook.is_file():
            raise RequestError(404, f"notebook '{self.relative(notebook)}' does not exist")
        own = self.jobs.running_for(self.relative(folder))
        own_json = copy.deepcopy(own.to_json()) if own else None
        payload = await asyncio.to_thread(_status_payload, self.root, notebook, folder, own_json, self.jobs)
        self.finish(json.dumps(payload, default=str))


def _status_payload(root: Path, notebook: Path | None, folder: Path, own_job: dict[str, Any] | None, jobs: Jobs) -> dict[str, Any]:
    from nb2pipe.run.runner import read_metrics
    from nb2pipe.settings import effective
    from nb2pipe.settings import to_dict as settings_to_dict
    from nb2pipe.spec import load_pipeline
    from nb2pipe.state import source_in_sync

    relative = folder.relative_to(root).as_posix()
    base = {"notebook": notebook.relative_to(root).as_posix() if notebook else None, "pipeline": relative}
    if not (folder / m.PIPELINE_FILE).is_file():
        return {**base, "exists": False, "stages": [], "job": None}
    pipeline = load_pipeline(folder)
    confine_pipeline(root, pipeline)
    job = own_job or jobs.external_for(folder)
    running = {name for name, s in (job["stages"] if job else {}).items() if s.get("state") == JobStageState.RUNNING}
    saved = api.status_as_saved(pipeline, {}, running)  # stale as the saved notebook makes it, before a re-export
    report = saved.status
    flows = api.stage_flows(report.pipeline)  # loads, saves, deps, outs, after: what `nb2pipe explain` prints
    stages = []
    for status in report.stages:
        entry = status.to_json()
        stage = report.pipeline.stage(status.name)
        _root_relative_last_run(root, folder, entry["last_run"] or {})
        entry["metrics"] = read_metrics(pipeline, stage)
        entry["cells"] = list(stage.cells)
        entry.update(flows[status.name])
        entry["settings"] = settings_to_dict(effective(report.pipeline, stage))  # the sidebar's summary
        stages.append(entry)
    return {
        **base, "exists": True, "source_in_sync": source_in_sync(pipeline), "export_error": saved.export_error,
        "stages": stages, "job": job, "parameters": api.parameters(report.pipeline, saved.defaults),
        "defaults": settings_to_dict(report.pipeline.defaults),
    }  # fmt: skip


def _root_relative_last_run(root: Path, folder: Path, last: dict[str, Any]) -> None:
    """The executed notebook of a stage's last run (and its structured error's paths) relative
    to the server root; None where they lie outside it."""
    if last.get("notebook"):
        executed = folder / last["notebook"]
        last["notebook"] = executed.resolve().relative_to(root).as_posix() if is_inside(root, executed) else None
    error = StageError.from_json(last.get("stage_error"))
    if error is not None:
        last["stage_error"] = error.rebased(folder, root, inside=root).to_json()
    else:
        last.pop("stage_error", None)


class ExportHandler(Nb2PipeHandler):
    @tornado.web.authenticated
    @maps_errors
    async def post(self) -> None:
        from nb2pipe.export import export_notebook

        data = self.body()
        force = self.flag(data, "force")
        notebook = confine(self.root, data.get("path"))
        if notebook.suffix != ".ipynb" or not notebook.is_file():
            raise RequestError(
                404 if notebook.suffix == ".ipynb" else 400, f"'{shown(str(data.get('path')))}' is not a notebook in the server root"
            )
        _, folder = self.pipeline_of(notebook)
        await asyncio.to_thread(confine_export, self.root, folder)
        result = await asyncio.to_thread(export_notebook, notebook, force=force)
        self.finish(json.dumps({
            "pipeline": self.relative(result.folder),
            "stages": [s.name for s in result.pipeline.stages],
            "written": result.written,
            "warnings": result.warnings,
        }))


class RunsHandler(Nb2PipeHandler):
    @tornado.web.authenticated
    @maps_errors
    async def get(self) -> None:
        target = confine(self.root, self.get_query_argument("path", ""))
        limit = self.limit()
        _, folder = self.pipeline_of(target)
        answer = await asyncio.to_thread(_history, self.root, folder, limit)
        self.finish(json.dumps(answer, default=str))

    @tornado.web.authenticated
    @maps_errors
    async def post(self) -> None:
        data = self.body()
        stages, params = data.get("stages", []), data.get("params", {})
        if not isinstance(stages, list) or not all(isinstance(s, str) for s in stages):
            raise RequestError(400, "'stages' must be a list of stage names")
        if not isinstance(params, dict):
            raise RequestError(400, "'params' must be a mapping of parameter names to values")
        force, downstream = self.flag(data, "force"), self.flag(data, "downstream")
        target = confine(self.root, data.get("path"))
        notebook, folder = self.pipeline_of(target)
        if notebook is not None and not notebook.is_file():
            raise RequestError(404, f"notebook '{shown(str(data.get('path')))}' does not exist")
        if notebook is None and not (folder / m.PIPELINE_FILE).is_file():
            raise RequestError(404, f"no pipeline at '{shown(str(data.get('path')))}'; export its notebook first")
        self._refuse_if_running(folder)
        await asyncio.to_thread(self._refuse_if_running_elsewhere, folder)
        params = await asyncio.to_thread(_prepare_run, self.root, notebook, folder, stages, params)
        self._refuse_if_running(folder)  # again: another request may have started one meanwhile
        request = RunRequest(notebook or folder, folder, tuple(stages), params, force, downstream)
        job = self.jobs.start(request)
        self.set_status(202)
        self.finish(json.dumps(job.to_json()))

    def _refuse_if_running(self, folder: Path) -> None:
        if self.jobs.running_for(self.relative(folder)):
            raise PipelineLocked(f"pipeline '{self.relative(folder)}' is already running; wait for it or cancel it")

    def _refuse_if_running_elsewhere(self, folder: Path) -> None:
        other = self.jobs.external_for(folder)
        if other is not None:
            raise PipelineLocked(
                f"pipeline '{self.relative(folder)}' is already running (pid {other['pid']}), started outside "
                "this server; wait for it to finish"
            )


def _history(root: Path, folder: Path, limit: int) -> dict[str, Any]:
    """The newest `limit` runs, and `sweep_trials`: how many trials each sweep among them has in
    all (the Lab says "k of n trials shown" when `limit` cut some off)."""
    from nb2pipe.spec import load_pipeline

    if not (folder / m.PIPELINE_FILE).is_file():
        return {"runs": [], "sweep_trials": {}}
    pipeline = load_pipeline(folder)
    confine_pipeline(root, pipeline)
    runs = api.history_rows(pipeline, limit)
    for run in runs:
        for stage in run["stages"]:
            stage.pop("lock", None)
            executed = folder / stage["notebook"] if stage.get("notebook") else None
            stage["executed"] = executed.resolve().relative_to(root).as_posix() if executed and is_inside(root, executed) else None
    sweep_ids = list(dict.fromkeys(run["sweep"] for run in runs if run.get("sweep")))
    return {"runs": runs, "sweep_trials": api.sweep_trial_counts(pipeline, sweep_ids)}


class DiffHandler(Nb2PipeHandler):
    """Two runs side by side, what `nb2pipe diff --json` prints: params, metrics, outputs."""

    @tornado.web.authenticated
    @maps_errors
    async def get(self) -> None:
        target = confine(self.root, self.get_query_argument("path", ""))
        refs = [self.get_query_argument(side, "") for side in ("a", "b")]
        if not all(refs):
            raise RequestError(400, "give the two runs to compare: diff?path=NOTEBOOK&a=RUN&b=RUN")
        _, folder = self.pipeline_of(target)
        answer = await asyncio.to_thread(_diff, self.root, folder, *refs)
        self.finish(json.dumps(answer, default=str))


def _diff(root: Path, folder: Path, ref_a: str, ref_b: str) -> dict[str, Any]:
    from nb2pipe.spec import load_pipeline

    if not (folder / m.PIPELINE_FILE).is_file():
        raise RequestError(404, f"no pipeline at '{folder.relative_to(root).as_posix()}'; export its notebook and run it first")
    pipeline = load_pipeline(folder)
    confine_pipeline(root, pipeline)
    return api.diff_runs(pipeline, ref_a, ref_b)


def _prepare_run(root: Path, notebook: Path | None, folder: Path, stages: list[str], params: dict[str, Any]) -> dict[str, Any]:
    """Export the notebook when it changed, then check the pipeline, the stage names and the
    parameter names, so that a mistake is a 400 before anything runs. Returns the parameters, a
    whole number given for a float parameter as a float (JSON from a browser writes 2.0 as 2)."""
    from nb2pipe.spec import effective_params, load_pipeline

    if notebook is not None:
        confine_export(root, folder)
        api.export_if_needed(notebook)
    pipeline = load_pipeline(folder)
    confine_pipeline(root, pipeline)
    for name in stages:
        pipeline.stage(name)  # UnknownStageError, with a close match
    for name in params:
        if not name.isidentifier() or keyword.iskeyword(name):
            raise SpecError(f"'{shown(name)}' is not a parameter name; give the name of a parameter in params.yaml")
    defaults = effective_params(pipeline, {})
    effective_params(pipeline, params)  # an unknown parameter, with a close match
    confine_pipeline(root, pipeline, params)  # with this run's values: a parameter may name a path
    return {
        name: float(value) if type(value) is int and type(defaults.get(name)) is float else value for name, value in params.items()
    }


class RunHandler(Nb2PipeHandler):
    @tornado.web.authenticated
    @maps_errors
    async def get(self, job_id: str) -> None:
        job = self.jobs.jobs.get(job_id)
        answer = job.to_json() if job else await asyncio.to_thread(self.jobs.external, job_id)
        if answer is None:
            raise RequestError(404, f"no run '{shown(job_id)}' was started by this server")
        self.finish(json.dumps(answer, default=str))

    @tornado.web.authenticated
    @maps_errors
    async def delete(self, job_id: str) -> None:
        job = self.jobs.jobs.get(job_id)
        if job is None:
            other = await asyncio.to_thread(self.jobs.external, job_id)
            if other is None:
                raise RequestError(404, f"no run '{shown(job_id)}' was started by this server")
            where = f"pid {other['pid']}" if other["pid"] else "it has finished"
            raise RequestError(409, f"run '{job_id}' was started outside this server ({where}); stop it where it runs, e.g. with Ctrl-C")
        self.jobs.cancel(job)
        self.set_status(202)
        self.finish(json.dumps(job.to_json(), default=str))


def setup_handlers(web_app: tornado.web.Application, root_dir: str) -> None:
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
            (url_path_join(base, "diff"), DiffHandler),
            (url_path_join(base, r"runs/(?P<job_id>[\w-]+)"), RunHandler),
        ],
    )
