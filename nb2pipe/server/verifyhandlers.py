"""REST handlers of `nb2pipe verify` under `<base_url>/nb2pipe/verify`: start one (202, a background
job, see verifyjobs.py) and follow it. Thin: check the path, start or read the job."""

from __future__ import annotations

import json

import tornado.web
from jupyter_server.utils import url_path_join

from nb2pipe.server.handlers import NAMESPACE, Nb2PipeHandler, maps_errors
from nb2pipe.server.paths import RequestError, confine, shown
from nb2pipe.server.verifyjobs import VerifyJobs


class VerifyHandler(Nb2PipeHandler):
    @property
    def verify_jobs(self) -> VerifyJobs:
        return self.settings["nb2pipe_verify_jobs"]

    @tornado.web.authenticated
    @maps_errors
    async def post(self) -> None:
        data = self.body()
        notebook = confine(self.root, data.get("path"))
        if notebook.suffix != ".ipynb" or not notebook.is_file():
            raise RequestError(
                404 if notebook.suffix == ".ipynb" else 400,
                f"'{shown(str(data.get('path')))}' is not a notebook in the server root; verify compares a notebook with its pipeline",
            )
        relative = self.relative(notebook)
        if self.verify_jobs.running_for(relative):
            raise RequestError(409, f"notebook '{relative}' is being verified already; wait for that verify to finish")
        job = self.verify_jobs.start(relative)
        self.set_status(202)
        self.finish(json.dumps(job.to_json()))


class VerifyJobHandler(VerifyHandler):
    @tornado.web.authenticated
    @maps_errors
    async def get(self, job_id: str) -> None:
        job = self.verify_jobs.jobs.get(job_id)
        if job is None:
            raise RequestError(404, f"no verify '{shown(job_id)}' was started by this server")
        self.finish(json.dumps(job.to_json(), default=str))


def setup_verify_handlers(web_app: tornado.web.Application) -> None:
    web_app.settings["nb2pipe_verify_jobs"] = VerifyJobs(web_app.settings["nb2pipe_root"])
    base = url_path_join(web_app.settings["base_url"], NAMESPACE)
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "verify"), VerifyHandler),
            (url_path_join(base, r"verify/(?P<job_id>[\w-]+)"), VerifyJobHandler),
        ],
    )
