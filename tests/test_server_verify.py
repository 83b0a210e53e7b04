"""`nb2pipe verify` through the REST API: POST verify starts it as a background job (202), GET
verify/{id} shows its progress and then whether the pipeline matches the notebook, and what differs."""

from __future__ import annotations

import json

import pytest

from conftest import code, md, write_nb
from helpers import _poll, expect_error, fetch_json
from test_server import jp_server_config  # noqa: F401  (fixture)
from test_verify import differing_project

pytestmark = pytest.mark.slow


async def wait_verify(jp_fetch, job_id: str, timeout: float = 300) -> dict:
    async def read() -> dict:
        return (await fetch_json(jp_fetch, "verify", job_id))[1]

    return await _poll(read, lambda job: job["finished"], f"verify {job_id} finishes", timeout)


def equal_notebook(root):
    return write_nb(
        root / "eq.ipynb",
        code("n = 3", "parameters"),
        md("## Make"),
        code("numbers = list(range(n))\nprint(numbers)"),
        md("## Use"),
        code("print(sum(numbers))"),
    )


async def test_a_notebook_its_pipeline_matches_verifies_equal(jp_fetch, jp_root_dir):
    equal_notebook(jp_root_dir)
    status, job = await fetch_json(jp_fetch, "verify", method="POST", body=json.dumps({"path": "eq.ipynb"}))
    assert status == 202 and job["status"] in ("starting", "running") and job["notebook"] == "eq.ipynb", job
    busy = await expect_error(jp_fetch, 409, "verify", method="POST", body=json.dumps({"path": "eq.ipynb"}))
    assert "being verified already" in busy["message"]
    job = await wait_verify(jp_fetch, job["id"])
    assert job["status"] == "ok" and job["equal"] is True, job
    assert job["summary"].startswith("verified: 2 cells") and job["differences"] == [], job
    assert job["report"]["compared"]["cells"] == 2
    assert not (jp_root_dir / "pipelines").exists(), "verify works in copies; the workspace is untouched"


async def test_a_pipeline_that_differs_says_where(jp_fetch, jp_root_dir):
    differing_project(jp_root_dir)  # each stage in a process of its own: the notebook's one process is not
    _, job = await fetch_json(jp_fetch, "verify", method="POST", body=json.dumps({"path": "nb.ipynb"}))
    job = await wait_verify(jp_fetch, job["id"])
    assert job["status"] == "ok" and job["equal"] is False, job
    first = job["differences"][0]
    assert (first["kind"], first["cell"], first["stage"]) == ("cell", 4, "second"), job
    assert "one process: False" in first["message"]
    assert job["summary"].endswith("2 differ"), job


async def test_bad_requests_are_one_clear_line(jp_fetch, jp_root_dir):
    body = await expect_error(jp_fetch, 404, "verify", method="POST", body=json.dumps({"path": "missing.ipynb"}))
    assert "'missing.ipynb' is not a notebook in the server root" in body["message"]
    body = await expect_error(jp_fetch, 404, "verify", "verify-1-1")
    assert body["message"] == "no verify 'verify-1-1' was started by this server"
    await expect_error(jp_fetch, 403, "verify", method="POST", body="{}", headers={"Authorization": ""})
    body = await expect_error(jp_fetch, 403, "verify", method="POST", body=json.dumps({"path": "../x.ipynb"}))  # outside the root
    assert body["message"]


async def test_a_notebook_nb2pipe_refuses_fails_the_job_with_the_reason(jp_fetch, jp_root_dir):
    write_nb(jp_root_dir / "bad.ipynb", code("a = 1", "parameters"), code("b = 2", "parameters"))
    _, job = await fetch_json(jp_fetch, "verify", method="POST", body=json.dumps({"path": "bad.ipynb"}))
    job = await wait_verify(jp_fetch, job["id"])
    assert job["status"] == "failed" and job["equal"] is None, job
    assert "two parameters cells" in job["errors"][0], job
