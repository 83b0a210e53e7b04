"""GET /nb2pipe/status tells what the saved notebook makes stale, before any re-export: a
changed cell, a changed parameter default, a new stage; nothing is written and no notebook code
runs; a notebook that cannot be exported keeps the last export's status and says why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import code, md, write_nb
from helpers import fetch_json, wait_job

PATH = "work/saved.ipynb"


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"nb2pipe.server": True}}}


def _notebook(root: Path, *, n: str = "3", make: str = "open('a.txt', 'w').write(str(n))", use: str = "print(open('a.txt').read())",
              extra: tuple = ()) -> Path:
    return write_nb(
        root / PATH,
        code(f"n = {n}", "parameters"),
        md("## Make"),
        code(make, "stage:make", "out:a.txt"),
        md("## Use"),
        code(use, "stage:use", "in:a.txt"),
        *extra,
    )


async def _ran(jp_fetch) -> None:
    code_, _ = await fetch_json(jp_fetch, "export", method="POST", body=json.dumps({"path": PATH}))
    assert code_ == 200
    _, job = await fetch_json(jp_fetch, "runs", method="POST", body=json.dumps({"path": PATH}))
    assert (await wait_job(jp_fetch, job["id"]))["status"] == "ok"


async def _stages(jp_fetch) -> tuple[dict, dict[str, tuple[str, list[str]]]]:
    _, status = await fetch_json(jp_fetch, "status", params={"path": PATH})
    return status, {s["name"]: (s["state"], s["reasons"]) for s in status["stages"]}


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


async def test_a_saved_change_of_code_shows_its_cell_before_any_re_export(jp_fetch, jp_root_dir):
    notebook = _notebook(jp_root_dir)
    await _ran(jp_fetch)
    pipeline = jp_root_dir / "work" / "pipelines" / "saved"
    before = _tree(pipeline)

    _notebook(jp_root_dir, use="print('use:', open('a.txt').read())")  # saved: cell 5 changed
    status, stages = await _stages(jp_fetch)
    assert status["source_in_sync"] is False and status["export_error"] is None
    assert stages == {"make": ("up-to-date", []), "use": ("stale", ["code changed: cell 5"])}
    assert _tree(pipeline) == before  # nothing written
    assert notebook.is_file()


async def test_a_changed_parameter_default_and_a_new_stage_show_as_they_would_after_export(jp_fetch, jp_root_dir):
    _notebook(jp_root_dir)
    await _ran(jp_fetch)
    _notebook(jp_root_dir, n="5", extra=(md("## Report"), code("print('report')", "stage:report", "after:use")))
    _, stages = await _stages(jp_fetch)
    assert stages["make"] == ("stale", ["param changed: n 3 → 5"])
    assert stages["use"] == ("stale", ["upstream stale: make"])
    assert stages["report"] == ("never-run", ["never run"])


async def test_an_edit_that_runs_nothing_leaves_the_stages_up_to_date(jp_fetch, jp_root_dir):
    """A markdown edit changes the notebook's hash but no stage's code."""
    notebook = _notebook(jp_root_dir)
    await _ran(jp_fetch)
    content = json.loads(notebook.read_text())
    content["cells"][1]["source"] = "## Make the data"
    notebook.write_text(json.dumps(content))
    status, stages = await _stages(jp_fetch)
    assert status["source_in_sync"] is False
    assert stages == {"make": ("up-to-date", []), "use": ("up-to-date", [])}


async def test_a_notebook_that_cannot_be_exported_keeps_the_last_status_and_says_why(jp_fetch, jp_root_dir):
    _notebook(jp_root_dir)
    await _ran(jp_fetch)
    _notebook(jp_root_dir, extra=(code("m = 1", "parameters"),))  # a second parameters cell
    status, stages = await _stages(jp_fetch)
    assert "two parameters cells" in status["export_error"], status["export_error"]
    assert status["export_error"].startswith("the saved notebook cannot be exported: ")
    assert stages == {"make": ("up-to-date", []), "use": ("up-to-date", [])}
