"""The REST API under /nb2pipe/, through a real jupyter_server (pytest-jupyter's jp_fetch)."""

from __future__ import annotations

import io
import json
import shutil
import zipfile

import pytest
from tornado.httpclient import HTTPClientError

from conftest import EXAMPLES, code, write_nb
from helpers import expect_error, fetch_json, wait_job


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"nb2pipe.server": True}}}


@pytest.fixture
def tiny(jp_root_dir):
    return write_nb(
        jp_root_dir / "work" / "tiny.ipynb",
        code("n = 3", "parameters"),
        code("open('a.txt', 'w').write(str(n))", "stage:make", "out:a.txt"),
        code("print(open('a.txt').read())", "stage:use", "in:a.txt"),
    )


async def test_status_of_a_notebook_without_pipeline_says_so(jp_fetch, tiny):
    code_, body = await fetch_json(jp_fetch, "status", params={"path": "work/tiny.ipynb"})
    assert code_ == 200 and body["exists"] is False and body["pipeline"] == "work/pipelines/tiny"


async def test_export_then_status_lists_never_run_stages(jp_fetch, tiny):
    code_, body = await fetch_json(jp_fetch, "export", method="POST", body=json.dumps({"path": "work/tiny.ipynb"}))
    assert code_ == 200 and body["stages"] == ["make", "use"]
    _, status = await fetch_json(jp_fetch, "status", params={"path": "work/tiny.ipynb"})
    assert status["exists"] and status["source_in_sync"] is True
    assert [(s["name"], s["state"], s["reasons"]) for s in status["stages"]] == [
        ("make", "never-run", ["never run"]),
        ("use", "never-run", ["never run"]),
    ]


async def test_run_in_the_background_then_progress_then_history(jp_fetch, tiny):
    await jp_fetch("nb2pipe", "export", method="POST", body=json.dumps({"path": "work/tiny.ipynb"}))
    code_, job = await fetch_json(jp_fetch, "runs", method="POST", body=json.dumps({"path": "work/tiny.ipynb", "params": {"n": 5}}))
    assert code_ == 202 and job["id"]
    job = await wait_job(jp_fetch, job["id"])
    assert job["status"] == "ok", job
    assert {name: s["state"] for name, s in job["stages"].items()} == {"make": "ran", "use": "ran"}
    _, status = await fetch_json(jp_fetch, "status", params={"path": "work/tiny.ipynb", "p": "x"})
    assert all(s["state"] == "stale" for s in status["stages"][:1])  # n=5 ran, params.yaml says 3
    assert status["stages"][0]["reasons"] == ["param changed: n 5 → 3"]
    _, history = await fetch_json(jp_fetch, "runs", params={"path": "work/tiny.ipynb"})
    assert len(history["runs"]) == 1 and history["runs"][0]["params"] == {"n": 5}


async def test_cancel_stops_the_run_and_keeps_outputs(jp_fetch, jp_root_dir):
    write_nb(
        jp_root_dir / "slow.ipynb",
        code("import time\nopen('s.txt', 'w').write('new')\ntime.sleep(600)", "stage:slow", "out:s.txt"),
    )
    (jp_root_dir / "s.txt").write_text("old")
    await jp_fetch("nb2pipe", "export", method="POST", body=json.dumps({"path": "slow.ipynb"}))
    _, job = await fetch_json(jp_fetch, "runs", method="POST", body=json.dumps({"path": "slow.ipynb"}))
    await wait_job(
        jp_fetch, job["id"],
        lambda j: j["stages"].get("slow", {}).get("state") == "running" and (jp_root_dir / "s.txt").read_text() == "new",
    )  # fmt: skip
    code_, _ = await fetch_json(jp_fetch, "runs", job["id"], method="DELETE")
    assert code_ == 202
    job = await wait_job(jp_fetch, job["id"])
    assert job["status"] == "cancelled", job
    assert (jp_root_dir / "s.txt").read_text() == "old", "what was at the stage's outs before it started is there again"


async def test_unknown_run_is_404(jp_fetch):
    body = await expect_error(jp_fetch, 404, "runs", "123-9")
    assert "no run '123-9'" in body["message"]


@pytest.mark.parametrize(
    "path, status",
    [("../outside.ipynb", 403), ("/etc/passwd", 400), ("", 400), ("a/../../x.ipynb", 403)],
)
async def test_paths_outside_the_root_are_refused(jp_fetch, path, status):
    await expect_error(jp_fetch, status, "status", params={"path": path})
    await expect_error(jp_fetch, status, "export", method="POST", body=json.dumps({"path": path}))


async def test_a_symlink_out_of_the_root_is_refused(jp_fetch, jp_root_dir, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    shutil.copy(EXAMPLES / "wine_quality.ipynb", outside / "w.ipynb")
    (jp_root_dir / "link").symlink_to(outside)
    await expect_error(jp_fetch, 403, "export", method="POST", body=json.dumps({"path": "link/w.ipynb"}))
    assert not (outside / "pipelines").exists()


@pytest.mark.parametrize("body", ["not json", "[1, 2]", json.dumps({"path": 3})])
async def test_malformed_bodies_are_400(jp_fetch, body):
    await expect_error(jp_fetch, 400, "export", method="POST", body=body)
    await expect_error(jp_fetch, 400, "runs", method="POST", body=body)


async def test_a_bad_notebook_is_a_400_with_the_one_line_message(jp_fetch, jp_root_dir):
    (jp_root_dir / "bad.ipynb").write_text("{not json")
    body = await expect_error(jp_fetch, 400, "export", method="POST", body=json.dumps({"path": "bad.ipynb"}))
    assert "is not valid JSON" in body["message"]


async def test_every_route_needs_the_token(jp_fetch, tiny):
    for method, parts, body in [
        ("GET", ("status",), None),
        ("POST", ("export",), json.dumps({"path": "work/tiny.ipynb"})),
        ("POST", ("runs",), json.dumps({"path": "work/tiny.ipynb"})),
        ("GET", ("runs", "1-1"), None),
        ("DELETE", ("runs", "1-1"), None),
    ]:
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("nb2pipe", *parts, method=method, body=body, headers={"Authorization": ""}, params={"path": "work/tiny.ipynb"})
        assert info.value.code == 403, (method, parts)
    assert not (tiny.parent / "pipelines").exists()


def test_the_openapi_file_documents_exactly_the_routes():
    import re
    from pathlib import Path

    import yaml

    from nb2pipe.server import handlers

    spec = yaml.safe_load((Path(__file__).parent.parent / "docs" / "openapi.yaml").read_text())
    source = "".join(path.read_text() for path in sorted(Path(handlers.__file__).parent.glob("*handlers.py")))
    routes = {"/nb2pipe/" + re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", r).replace("{job_id}", "{id}")
              for r in re.findall(r'url_path_join\(base, r?"([^"]+)"\)', source)}
    assert set(spec["paths"]) == routes


async def test_save_and_export_as_nb2pipe_downloads_the_whole_pipeline(jp_fetch, tiny):
    """JupyterLab's "Save and Export Notebook As → nb2pipe" (the server's nbconvert route)."""
    response = await jp_fetch("nbconvert", "nb2pipe", "work/tiny.ipynb", params={"download": "true"})
    assert response.headers["Content-Type"].startswith("application/zip")
    assert "tiny.zip" in response.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(response.body)) as archive:
        names = sorted(archive.namelist())
        folder = tiny.parent
        assert names == sorted(f"pipelines/tiny/{p.relative_to(folder / 'pipelines' / 'tiny').as_posix()}"
                               for p in (folder / "pipelines" / "tiny").rglob("*") if p.is_file())
        assert {"pipelines/tiny/nb2pipe.yaml", "pipelines/tiny/params.yaml", "pipelines/tiny/stages/make.py"} <= set(names)
