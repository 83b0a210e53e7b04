"""REST handler of `nb2pipe debug` under `<base_url>/nb2pipe/debug`: write a failed stage's debug
notebook and say where it is and which of its cells failed. Thin: check the paths, call the
application API in a thread, answer with paths relative to the server root."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.utils import url_path_join

from nb2pipe import api
from nb2pipe import model as m
from nb2pipe.server.handlers import NAMESPACE, Nb2PipeHandler, maps_errors
from nb2pipe.server.paths import RequestError, confine, confine_pipeline, is_inside, shown


class DebugHandler(Nb2PipeHandler):
    @tornado.web.authenticated
    @maps_errors
    async def post(self) -> None:
        data = self.body()
        stage, run = data.get("stage"), data.get("run")
        if not isinstance(stage, str) or not stage:
            raise RequestError(400, "'stage' must name the stage to debug")
        if run is not None and (not isinstance(run, str) or not run):
            raise RequestError(400, "'run' must be a run id or tag, or left out for the stage's last failed run")
        force = self.flag(data, "force")
        notebook, folder = self.pipeline_of(confine(self.root, data.get("path")))
        if notebook is not None and not notebook.is_file():
            raise RequestError(404, f"notebook '{shown(str(data.get('path')))}' does not exist")
        answer = await asyncio.to_thread(_write_debug_notebook, self.root, folder, stage, run, force)
        self.finish(json.dumps(answer, default=str))


def _write_debug_notebook(root: Path, folder: Path, stage: str, run: str | None, force: bool) -> dict[str, Any]:
    from nb2pipe.api.debugging import DEBUG_DIR
    from nb2pipe.spec import load_pipeline

    if not (folder / m.PIPELINE_FILE).is_file():
        raise RequestError(404, f"no pipeline at '{folder.relative_to(root).as_posix()}'; export its notebook and run it first")
    pipeline = load_pipeline(folder)
    confine_pipeline(root, pipeline)
    pipeline.stage(stage)  # an unknown stage is a 400 with the close match, before any path is made of its name
    target = Path(pipeline.root) / DEBUG_DIR
    if not is_inside(root, target) or not is_inside(root, target / f"{stage}.ipynb"):
        raise RequestError(403, f"the debug folder of pipeline '{folder.relative_to(root).as_posix()}' is outside the server root")
    written = api.debug_notebook(folder, stage, run=run, force=force)
    path = Path(written.path).resolve()
    if not is_inside(root, path):  # written through a symlink made meanwhile: do not name it
        raise RequestError(403, f"the debug notebook of stage '{stage}' was written outside the server root")
    return {
        "notebook": path.relative_to(root).as_posix(),
        "failed_cell": None if written.failed_cell is None else written.failed_cell - 1,
        "error": written.error,
        "run": written.run_id,
        "outcome": written.outcome,
        "restored": written.restored,
        "changed": written.changed,
    }


def setup_debug_handlers(web_app: tornado.web.Application) -> None:
    base = url_path_join(web_app.settings["base_url"], NAMESPACE)
    web_app.add_handlers(".*$", [(url_path_join(base, "debug"), DebugHandler)])
