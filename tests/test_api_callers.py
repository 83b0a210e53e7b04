"""The CLI, the widget and the server make the same tracked run (they all call nb2pipe.api), and
a failed stage reaches the server's JSON as a structured StageError. Real kernels, papermill and
jupyter_server (jp_fetch)."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from pathlib import Path

import pytest

from conftest import code, write_nb
from nb2pipe.cli import main
from nb2pipe.errors import StageError
from test_server import fetch_json, jp_server_config  # noqa: F401  (fixture)
from test_server_runs import post_run, wait_job

pytestmark = pytest.mark.slow

CELLS = (
    code("alpha = 1", "parameters"),
    code("with open('a.txt', 'w') as f:\n    f.write(f'a {alpha}')", "stage:a", "out:a.txt"),
    code("with open('a.txt') as f:\n    text = f.read()\nraise ValueError(f'bad {text}')", "stage:b", "in:a.txt", "out:b.txt"),
    code("open('c.txt', 'w').write(open('b.txt').read())", "stage:c", "in:b.txt", "out:c.txt"),
)


def recorded(root: Path, name: str) -> list[dict]:
    """The runs of work_<name>/pipelines/nb in runs.db, with what differs by nature between two
    runs (ids, times, pids, the folder's name, the command line) taken out."""
    db = sqlite3.connect(root / f"work_{name}" / "pipelines" / "nb" / ".nb2pipe" / "runs.db")
    db.row_factory = sqlite3.Row
    try:
        runs = [dict(r) for r in db.execute("SELECT * FROM runs")]
        for run in runs:
            run["stages"] = [dict(s) for s in db.execute("SELECT * FROM stages WHERE run_id = ? ORDER BY stage", (run["id"],))]
    finally:
        db.close()

    ids = [run["id"] for run in runs]

    def same(value):
        if isinstance(value, str):
            for run_id in ids:
                value = value.replace(run_id, "<run>")
            return value.replace(f"work_{name}", "work_<caller>")
        return value

    for run in runs:
        assert json.loads(run.pop("command"))[:2] == ["nb2pipe", "run"]
        for key in ("id", "started", "finished", "pid", "env_hash"):
            run.pop(key)
        for stage in run["stages"]:
            stage.pop("run_id")
            stage.pop("duration")
        run.update({k: same(v) for k, v in run.items() if k != "stages"})
        run["stages"] = [{k: same(v) for k, v in stage.items()} for stage in run["stages"]]
    return runs


async def test_the_cli_the_widget_and_the_server_record_the_same_run(jp_fetch, jp_root_dir, monkeypatch):
    pytest.importorskip("ipywidgets", reason="ipywidgets is an optional front end")
    from papermill.iorw import papermill_io

    from nb2pipe.widgets import PipelineView

    monkeypatch.chdir(jp_root_dir)  # where the server's runs start, so the recorded paths compare
    for name in ("cli", "widget", "server"):
        write_nb(jp_root_dir / f"work_{name}" / "nb.ipynb", *CELLS)

    # in threads, as they run for real: neither may run kernels on the server's event loop
    papermill_io.get_handler("local").cwd(None)
    assert await asyncio.to_thread(main, ["run", "work_cli/nb.ipynb", "-p", "alpha=2"]) == 1

    assert main(["export", "work_widget/nb.ipynb"]) == 0
    papermill_io.get_handler("local").cwd(None)
    view = PipelineView("work_widget/nb.ipynb")
    view.run_stale.click()  # with params.yaml's alpha
    assert await asyncio.to_thread(view.wait, 300), "the widget's run did not end"
    assert view.report is not None and view.report.outcomes == {"a": "ran", "b": "failed", "c": "not run"}
    assert "ValueError: bad a 1" in view.message.value and "nb.ipynb cell 3" in view.message.value

    job = await post_run(jp_fetch, path="work_server/nb.ipynb", params={"alpha": 2})
    job = await wait_job(jp_fetch, job["id"])
    assert job["status"] == "failed", job

    cli_runs, widget_runs, server_runs = (recorded(jp_root_dir, name) for name in ("cli", "widget", "server"))
    assert cli_runs == server_runs
    assert len(cli_runs) == 1 and cli_runs[0]["status"] == "failed"
    assert [(s["stage"], s["outcome"]) for s in cli_runs[0]["stages"]] == [("a", "ran"), ("b", "failed"), ("c", "not run")]
    # the widget ran with params.yaml's alpha 1: the same record but for that value
    assert json.loads(widget_runs[0].pop("params")) == {"alpha": 1} and json.loads(cli_runs[0].pop("params")) == {"alpha": 2}
    for runs in (widget_runs, cli_runs):
        for stage in runs[0]["stages"]:
            for key in ("fingerprint", "lock", "error"):
                stage.pop(key)
        runs[0]["error"] = re.sub(r"bad a \d", "bad a N", runs[0]["error"])
    assert widget_runs == cli_runs

    # the server's job and status carry the failure as a StageError
    assert job["errors"] == [e["message"] for e in job["stage_errors"]]
    error = StageError.from_json(job["stage_errors"][0])
    assert (error.stage, error.ename, error.evalue, error.cell) == ("b", "ValueError", "bad a 2", "nb.ipynb cell 3")
    assert (jp_root_dir / error.notebook).is_file() and error.notebook.startswith("work_server/pipelines/nb/runs/")
    assert error.script == "work_server/pipelines/nb/stages/b.py"
    _, status = await fetch_json(jp_fetch, "status", params={"path": "work_server/nb.ipynb"})
    last = {s["name"]: s for s in status["stages"]}["b"]["last_run"]
    assert StageError.from_json(last["stage_error"]) == error
    assert last["notebook"] == error.notebook
