"""Runs through the REST API: typed parameters, validation before the 202, a cancel that is never
lost and works whatever signals the server ignores, a status that says how the run really ended,
a spawn that fails, and runs started from a terminal seen as running."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile

import pytest

from conftest import code, write_nb
from helpers import expect_error, fetch_json, wait_job, wait_status
from test_server import jp_server_config, tiny  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow


async def post_run(jp_fetch, **body) -> dict:
    code_, job = await fetch_json(jp_fetch, "runs", method="POST", body=json.dumps(body))
    assert code_ == 202, job
    return job


async def export(jp_fetch, path: str) -> None:
    await fetch_json(jp_fetch, "export", method="POST", body=json.dumps({"path": path}))


# --- typed parameters ------------------------------------------------------------------------

TYPED_DEFAULTS = "a = 1\nb = 'x'\nc = None\nd = False\ne = 0\nf = 0.5\ng = 's'"
SHOW_TYPES = (
    "import json\n"
    "seen = {name: [type(value).__name__, value] for name, value in\n"
    "        dict(a=a, b=b, c=c, d=d, e=e, f=f, g=g).items()}\n"
    "with open('seen.json', 'w') as out:\n"
    "    json.dump(seen, out)\n"
)
POSTED = {"a": [3, 4], "b": "007", "c": {"a": 1}, "d": True, "e": None, "f": 1e-7, "g": "x = 1\nimport os"}


async def test_posted_parameters_reach_the_stage_with_their_json_types(jp_fetch, jp_root_dir, tmp_path, monkeypatch):
    private_tmp = tmp_path / "server-tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    write_nb(jp_root_dir / "typed.ipynb", code(TYPED_DEFAULTS, "parameters"), code(SHOW_TYPES, "stage:show", "out:seen.json"))
    job = await post_run(jp_fetch, path="typed.ipynb", params=POSTED)
    job = await wait_job(jp_fetch, job["id"])
    assert job["status"] == "ok", job
    seen = json.loads((jp_root_dir / "seen.json").read_text())
    assert seen == {name: [type(value).__name__, value] for name, value in POSTED.items()}
    _, history = await fetch_json(jp_fetch, "runs", params={"path": "typed.ipynb"})
    assert history["runs"][0]["params"] == POSTED
    assert not list(private_tmp.iterdir()), "the parameters file is removed when the job ends"


@pytest.mark.parametrize(
    "name, says",
    [
        ("a=1", "'a=1' is not a parameter name"),
        ("__import__('os')", "'__import__('os')' is not a parameter name"),
        ("class", "'class' is not a parameter name"),
        ("nn", "unknown parameter 'nn'; did you mean 'n'?"),
        ("zzz", "unknown parameter 'zzz'"),
    ],
)
async def test_a_bad_parameter_name_is_400_before_anything_runs(jp_fetch, tiny, name, says):
    await export(jp_fetch, "work/tiny.ipynb")
    body = await expect_error(jp_fetch, 400, "runs", method="POST", body=json.dumps({"path": "work/tiny.ipynb", "params": {name: 5}}))
    assert says in body["message"]
    _, status = await fetch_json(jp_fetch, "status", params={"path": "work/tiny.ipynb"})
    assert status["job"] is None


@pytest.mark.parametrize("path", ["work/tiny.ipynb", "work/pipelines/tiny"])
@pytest.mark.parametrize("exported", [True, False])
async def test_an_unknown_stage_is_400_at_once_with_a_close_match(jp_fetch, tiny, path, exported):
    if exported or not path.endswith(".ipynb"):
        await export(jp_fetch, "work/tiny.ipynb")
    body = await expect_error(jp_fetch, 400, "runs", method="POST", body=json.dumps({"path": path, "stages": ["make", "uze"]}))
    assert "unknown stage 'uze'; did you mean 'use'?" in body["message"]
    _, status = await fetch_json(jp_fetch, "status", params={"path": path})
    assert status["job"] is None


async def test_a_failed_spawn_makes_a_failed_job_with_its_message(jp_fetch, tiny, monkeypatch):
    await export(jp_fetch, "work/tiny.ipynb")
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")
    job = await post_run(jp_fetch, path="work/tiny.ipynb")
    job = await wait_job(jp_fetch, job["id"], timeout=60)
    assert job["status"] == "failed"
    assert any("/nonexistent/python3" in error for error in job["errors"]), job
    _, status = await fetch_json(jp_fetch, "status", params={"path": "work/tiny.ipynb"})
    assert status["job"] is None, "a failed job does not hold the pipeline"


# --- cancel ----------------------------------------------------------------------------------

# longer than any wait here: only a cancel ends it in time
SLOW = "import time\nopen('s.txt', 'w').write('new')\ntime.sleep(600)\nopen('late.txt', 'w').write('late')"


@pytest.fixture
def slow(jp_root_dir):
    write_nb(jp_root_dir / "slow.ipynb", code(SLOW, "stage:slow", "out:s.txt", "out:late.txt"))
    (jp_root_dir / "s.txt").write_text("old")
    return jp_root_dir


async def test_a_cancel_right_after_the_post_is_never_lost(jp_fetch, slow):
    await export(jp_fetch, "slow.ipynb")
    for trial in range(5):
        job = await post_run(jp_fetch, path="slow.ipynb")
        code_, _ = await fetch_json(jp_fetch, "runs", job["id"], method="DELETE")
        assert code_ == 202
        job = await wait_job(jp_fetch, job["id"])
        assert job["status"] == "cancelled", (trial, job)
        assert job["stages"].get("slow", {}).get("state") in (None, "pending", "cancelled"), (trial, job)
        assert (slow / "s.txt").read_text() == "old", trial
        assert not (slow / "late.txt").exists(), trial


async def test_a_cancel_before_the_child_exists_is_applied_as_soon_as_it_does(jp_serverapp, jp_fetch, slow):
    """The window is short over HTTP, so this asks the server's own job table directly."""
    from nb2pipe.server.jobs import RunRequest

    await export(jp_fetch, "slow.ipynb")
    jobs = jp_serverapp.web_app.settings["nb2pipe_jobs"]
    for trial in range(3):
        job = jobs.start(RunRequest(slow / "slow.ipynb", slow / "pipelines" / "slow"))
        assert job.process is None, "the child does not exist yet"
        jobs.cancel(job)
        try:
            await asyncio.wait_for(job.task, timeout=240)
        except TimeoutError:
            pytest.fail(f"the cancelled job did not end within 240 s: {job.to_json()}")
        assert job.status == "cancelled", (trial, job.to_json())
        assert (slow / "s.txt").read_text() == "old" and not (slow / "late.txt").exists(), trial


async def test_cancel_stops_the_run_even_when_the_server_ignores_sigint(jp_fetch, slow):
    """A server started as a background job or service ignores SIGINT, and so would its children."""
    await export(jp_fetch, "slow.ipynb")
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        job = await post_run(jp_fetch, path="slow.ipynb")
        await wait_job(
            jp_fetch, job["id"],
            lambda j: j["finished"] or (j["stages"].get("slow", {}).get("state") == "running" and (slow / "s.txt").read_text() == "new"),
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    code_, _ = await fetch_json(jp_fetch, "runs", job["id"], method="DELETE")
    assert code_ == 202
    job = await wait_job(jp_fetch, job["id"])
    assert job["status"] == "cancelled", job
    assert job["stages"]["slow"]["state"] == "cancelled"
    assert not (slow / "late.txt").exists(), "the stage ran on after the cancel"
    _, status = await fetch_json(jp_fetch, "status", params={"path": "slow.ipynb"})
    assert status["job"] is None and status["stages"][0]["state"] != "up-to-date"


async def test_a_cancel_after_the_run_finished_does_not_make_it_cancelled(jp_fetch, tiny):
    await export(jp_fetch, "work/tiny.ipynb")
    job = await post_run(jp_fetch, path="work/tiny.ipynb")
    job = await wait_job(jp_fetch, job["id"])
    code_, after = await fetch_json(jp_fetch, "runs", job["id"], method="DELETE")
    assert code_ == 202 and after["status"] == "ok" and after["summary"] == job["summary"]


# --- runs started elsewhere ------------------------------------------------------------------

GATED = "import os, time\nwhile not os.path.exists('go'):\n    time.sleep(0.1)\nopen('w.txt', 'w').write('done')"


async def test_a_run_started_from_a_terminal_shows_as_running(jp_fetch, jp_root_dir):
    write_nb(jp_root_dir / "gate.ipynb", code("n = 1", "parameters"), code(GATED, "stage:wait", "out:w.txt"),
             code("open('after.txt', 'w').write(str(n))", "stage:after", "out:after.txt"))
    await export(jp_fetch, "gate.ipynb")
    log = (jp_root_dir / "run.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nb2pipe", "run", "pipelines/gate", "--jobs", "1"],
        cwd=jp_root_dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        status = await wait_status(jp_fetch, "gate.ipynb", lambda s: proc.poll() is not None or (
            s["job"] and s["job"]["stages"].get("wait", {}).get("state") == "running"))
        assert proc.poll() is None, (jp_root_dir / "run.log").read_text()
        job = status["job"]
        assert job["status"] == "running" and job["external"] is True and job["pid"] == proc.pid
        assert job["stages"]["after"] == {"state": "pending"}
        assert [(s["name"], s["state"]) for s in status["stages"]] == [("wait", "running"), ("after", "never-run")]
        _, followed = await fetch_json(jp_fetch, "runs", job["id"])
        assert followed["status"] == "running" and followed["run"] == job["run"]
        body = await expect_error(jp_fetch, 409, "runs", method="POST", body=json.dumps({"path": "gate.ipynb"}))
        assert f"pid {proc.pid}" in body["message"]
        body = await expect_error(jp_fetch, 409, "runs", job["id"], method="DELETE")
        assert f"pid {proc.pid}" in body["message"]
    finally:
        (jp_root_dir / "go").write_text("")
        try:
            proc.wait(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
    assert proc.returncode == 0, (jp_root_dir / "run.log").read_text()
    _, status = await fetch_json(jp_fetch, "status", params={"path": "gate.ipynb"})
    assert status["job"] is None
    assert [s["state"] for s in status["stages"]] == ["up-to-date", "up-to-date"]
    _, done = await fetch_json(jp_fetch, "runs", job["id"])
    assert done["status"] == "ok" and done["finished"]
    assert done["summary"] == "2 ran, 0 up to date, 0 restored from cache, 0 failed"
    assert os.path.exists(jp_root_dir / "after.txt")
