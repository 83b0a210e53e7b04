"""`nb2pipe debug` through the REST API (jp_fetch): POST debug writes a failed stage's debug
notebook and answers where it is and the index of its failing cell; an edited notebook is a 409
until the client asks again with force; mistakes are one clear line."""

from __future__ import annotations

import json

import pytest

from conftest import code, write_nb
from helpers import expect_error, fetch_json, wait_job
from test_server import jp_server_config  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

NOTEBOOK = "work/fails.ipynb"


def failing_notebook(root):
    """`check` fails on its third cell, over a parameter."""
    return write_nb(
        root / "work" / "fails.ipynb",
        code("limit = 2", "parameters"),
        code("values = [1, 2, 3]", "stage:prepare"),
        code("total = sum(values)", "stage:check"),
        code("print('total', total)"),
        code("if total > limit:\n    raise ValueError(f'total {total} is over {limit}')"),
        code("print('after the failure')"),
    )


async def run_failing(jp_fetch) -> None:
    status, job = await fetch_json(jp_fetch, "runs", method="POST", body=json.dumps({"path": NOTEBOOK}))
    assert status == 202, job
    job = await wait_job(jp_fetch, job["id"])
    assert job["status"] == "failed", job


def debug(**body):
    return {"method": "POST", "body": json.dumps({"path": NOTEBOOK, **body})}


async def test_a_failed_stage_gives_its_debug_notebook_and_the_failing_cells_index(jp_fetch, jp_root_dir):
    failing_notebook(jp_root_dir)
    await run_failing(jp_fetch)
    status, answer = await fetch_json(jp_fetch, "debug", **debug(stage="check"))
    assert status == 200, answer
    assert answer["notebook"] == "work/pipelines/fails/debug/check.ipynb"
    assert answer["error"] == "ValueError: total 6 is over 2" and answer["changed"] == [] and answer["run"], answer
    cells = json.loads((jp_root_dir / answer["notebook"]).read_text())["cells"]
    failing = cells[answer["failed_cell"]]
    assert failing["metadata"]["nb2pipe"]["debug"]["failed"] is True
    assert "raise ValueError" in "".join(failing["source"])
    assert [i for i, c in enumerate(cells) if c["metadata"].get("nb2pipe", {}).get("debug", {}).get("failed")] == [answer["failed_cell"]]

    again = await fetch_json(jp_fetch, "debug", **debug(stage="check", run=answer["run"]))
    assert again == (200, answer), "an unedited debug notebook is written again"


async def test_an_edited_debug_notebook_is_409_until_force(jp_fetch, jp_root_dir):
    failing_notebook(jp_root_dir)
    await run_failing(jp_fetch)
    _, answer = await fetch_json(jp_fetch, "debug", **debug(stage="check"))
    path = jp_root_dir / answer["notebook"]
    notebook = json.loads(path.read_text())
    notebook["cells"][-1]["source"] = "print('my edit')"
    path.write_text(json.dumps(notebook))
    body = await expect_error(jp_fetch, 409, "debug", **debug(stage="check"))
    assert "has edits of yours" in body["message"] and "\n" not in body["message"]
    status, forced = await fetch_json(jp_fetch, "debug", **debug(stage="check", force=True))
    assert status == 200 and forced["failed_cell"] == answer["failed_cell"]
    assert "my edit" not in path.read_text()


async def test_mistakes_are_one_clear_line(jp_fetch, jp_root_dir):
    failing_notebook(jp_root_dir)
    await jp_fetch("nb2pipe", "export", method="POST", body=json.dumps({"path": NOTEBOOK}))
    body = await expect_error(jp_fetch, 400, "debug", **debug(stage="chek"))
    assert "'chek'" in body["message"] and "check" in body["message"], body
    body = await expect_error(jp_fetch, 400, "debug", **debug(stage="check"))  # exported, never run
    assert "has no run with an executed notebook" in body["message"], body
    body = await expect_error(jp_fetch, 400, "debug", **debug())
    assert body["message"] == "'stage' must name the stage to debug"
    body = await expect_error(jp_fetch, 403, "debug", method="POST", body=json.dumps({"path": "../x.ipynb", "stage": "check"}))
    assert "outside the server root" in body["message"]
    await expect_error(jp_fetch, 403, "debug", headers={"Authorization": ""}, **debug(stage="check"))
    body = await expect_error(jp_fetch, 404, "debug", method="POST", body=json.dumps({"path": "work/none.ipynb", "stage": "check"}))
    assert body["message"] == "notebook 'work/none.ipynb' does not exist"
