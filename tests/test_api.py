"""The application API (nb2pipe.api) called directly: a tracked run is recorded, a failed stage is
a StageError with every field, every planned stage is accounted for, what the API opens it
closes, and `nb2pipe status` stays light. Real kernels and papermill."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import code, write_nb
from nb2pipe import api
from nb2pipe.errors import SpecError, StageError

pytestmark = pytest.mark.slow

NB = "nb.ipynb"
PIPE = "pipelines/nb"
WRITE_A = "with open('a.txt', 'w') as f:\n    f.write(f'a {alpha}')"
READ_A = "with open('a.txt') as f:\n    text = f.read()\nwith open('b.txt', 'w') as f:\n    f.write(text + ' b')"
FAIL_B = "value = 41\nraise ValueError(f'boom {value + 1}')"
AFTER_B = "with open('b.txt') as f:\n    f.read()\nopen('c.txt', 'w').write('c')"


def project(root: Path, b_source: str = READ_A) -> Path:
    """nb.ipynb: a writes a.txt (with alpha), b reads it and writes b.txt, c reads b.txt."""
    return write_nb(
        root / NB,
        code("alpha = 1", "parameters"),
        code(WRITE_A, "stage:a", "out:a.txt"),
        code(b_source, "stage:b", "in:a.txt", "out:b.txt"),
        code(AFTER_B, "stage:c", "in:b.txt", "out:c.txt"),
    )


@pytest.fixture(autouse=True)
def _no_stale_papermill_cwd():
    """papermill keeps the working folder of a run in a process-wide handler; these tests run
    in-process from several folders (see tests/test_run_failures.py)."""
    from papermill.iorw import papermill_io

    papermill_io.get_handler("local").cwd(None)
    yield


def runs_db_rows(folder: Path) -> tuple[list[dict], list[dict]]:
    """(runs, stages) rows of the pipeline's runs.db, read with sqlite itself."""
    db = sqlite3.connect(folder / ".nb2pipe" / "runs.db")
    db.row_factory = sqlite3.Row
    try:
        runs = [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY started")]
        stages = [dict(r) for r in db.execute("SELECT * FROM stages ORDER BY rowid")]
    finally:
        db.close()
    return runs, stages


def open_files_under(folder: Path) -> list[str]:
    """Files under `folder` this process holds open."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


def test_a_run_called_through_the_api_is_recorded_and_returns_its_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project(tmp_path)
    messages: list[str] = []
    report = api.run(NB, params={"alpha": 2}, reporters=[lambda e: e["event"] == "message" and messages.append(e["text"])])
    assert report.ok and report.recorded and not report.errors
    assert report.outcomes == {"a": "ran", "b": "ran", "c": "ran"}
    assert report.summary == "3 ran, 0 up to date, 0 restored from cache, 0 failed"
    assert report.pipeline == Path(PIPE)
    assert f"exported '{NB}' -> {PIPE}/" in messages
    assert (tmp_path / "b.txt").read_text() == "a 2 b"
    runs, stages = runs_db_rows(tmp_path / PIPE)
    assert [(r["id"], r["status"], json.loads(r["params"]), json.loads(r["command"])) for r in runs] == [
        (report.run_id, "ok", {"alpha": 2}, ["nb2pipe", "run", NB])
    ]
    assert [(s["stage"], s["outcome"]) for s in stages] == [("a", "ran"), ("b", "ran"), ("c", "ran")]
    assert not open_files_under(tmp_path), "the run history, events and logs are closed after the run"

    again = api.run(PIPE, stages=["b"], force=True, jobs=1)
    assert again.outcomes == {"b": "ran"} and again.recorded
    history = api.history(PIPE)
    assert [r["id"] for r in history] == [again.run_id, report.run_id]
    assert history[0]["command"] == ["nb2pipe", "run", PIPE, "--stage", "b", "--force", "--jobs", "1"]
    assert not open_files_under(tmp_path)


def test_a_failed_stage_is_a_stage_error_with_every_field(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    project(tmp_path, b_source=FAIL_B)
    report = api.run(NB, jobs=1)
    assert not report.ok
    assert report.outcomes == {"a": "ran", "b": "failed", "c": "not run"}
    error = report.errors["b"]
    assert isinstance(error, StageError) and list(report.errors) == ["b"]
    assert (error.stage, error.ename, error.evalue, error.cell) == ("b", "ValueError", "boom 42", "nb.ipynb cell 3")
    assert error.script == f"{PIPE}/stages/b.py"
    executed = Path(error.notebook)
    assert executed == Path(PIPE) / "runs" / report.run_id / "b.ipynb" and executed.is_file()
    failing = [c for c in nbformat.read(executed, as_version=4).cells if c.metadata.get("title") == error.cell]
    assert [(o.ename, o.evalue) for c in failing for o in c.outputs if o.output_type == "error"] == [("ValueError", "boom 42")]
    assert error.exception == "ValueError: boom 42"
    assert error.message == f"stage 'b' failed in nb.ipynb cell 3 ({PIPE}/stages/b.py): ValueError: boom 42; open {executed}"
    assert StageError.from_json(json.loads(json.dumps(error.to_json()))) == error

    # the same error in the events, the run history, and the status of the stage
    events = [json.loads(line) for line in (executed.parent / "events.jsonl").read_text().splitlines()]
    failed = [e for e in events if e["event"] == "stage_failed"]
    assert [StageError.from_json(e["stage_error"]) for e in failed] == [error] and failed[0]["error"] == error.message
    _, stages = runs_db_rows(tmp_path / PIPE)
    assert [(s["stage"], s["outcome"], s["error"]) for s in stages] == [
        ("a", "ran", None),
        ("b", "failed", error.message),
        ("c", "not run", None),
    ]
    _exit_code, out, _ = cli("status", PIPE, "--json")
    last = {s["name"]: s for s in json.loads(out)["stages"]}["b"]["last_run"]
    recorded = StageError.from_json(last["stage_error"])
    assert recorded == error.rebased(tmp_path, tmp_path / PIPE)  # kept relative to the pipeline folder
    assert (tmp_path / PIPE / recorded.notebook).resolve() == executed.resolve()


@pytest.mark.parametrize("keep_going", [False, True])
def test_every_planned_stage_ends_with_an_event_and_a_record(tmp_path, monkeypatch, keep_going):
    """A stage that is not run because an unrelated stage failed is said so (it was left out of
    the events, the job's progress and the run history)."""
    monkeypatch.chdir(tmp_path)
    write_nb(
        tmp_path / NB,
        code("raise RuntimeError('first')", "stage:bad"),
        code("open('free.txt', 'w').write('free')", "stage:free", "out:free.txt"),
    )
    seen: list[dict] = []
    report = api.run(NB, jobs=1, keep_going=keep_going, reporters=[seen.append])
    expected = "ran" if keep_going else "not run"
    assert report.outcomes == {"bad": "failed", "free": expected}
    ends = {e["stage"]: e.get("outcome", "failed") for e in seen if e["event"] in ("stage_finished", "stage_failed")}
    assert ends == {"bad": "failed", "free": expected}
    _, stages = runs_db_rows(tmp_path / PIPE)
    assert {s["stage"]: s["outcome"] for s in stages} == {"bad": "failed", "free": expected}
    assert (tmp_path / "free.txt").exists() == keep_going


def test_a_damaged_history_is_a_message_and_the_run_goes_on_unrecorded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project(tmp_path)
    api.export_if_needed(Path(NB))
    db = tmp_path / PIPE / ".nb2pipe" / "runs.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"not a database" * 100)
    seen: list[dict] = []
    report = api.run(PIPE, stages=["a"], reporters=[seen.append])
    assert report.ok and not report.recorded
    warnings = [e["text"] for e in seen if e["event"] == "message" and e["text"].startswith("warning: ")]
    assert len(warnings) == 1 and "is damaged" in warnings[0] and "this run is not recorded" in warnings[0]
    with pytest.raises(SpecError, match="--params-from needs the run history"):
        api.run(PIPE, params_from="latest")


def test_a_dry_run_and_a_run_with_record_off_leave_no_history(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project(tmp_path)
    dry = api.run(NB, dry_run=True)
    assert dry.outcomes == {"a": "would run", "b": "would run", "c": "would run"} and not dry.recorded
    unrecorded = api.run(PIPE, stages=["a"], record=False)
    assert unrecorded.outcomes == {"a": "ran"} and not unrecorded.recorded
    assert not (tmp_path / PIPE / ".nb2pipe" / "runs.db").exists()


def test_bad_arguments_are_one_error_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project(tmp_path)
    with pytest.raises(SpecError, match=r"--jobs 0 is not a number of stages; use 1 or more"):
        api.run(NB, jobs=0)
    (tmp_path / "p.yaml").write_text("- 1\n")
    with pytest.raises(SpecError, match=r"--params-file 'p.yaml' must be a mapping"):
        api.run(NB, params_file="p.yaml")
    with pytest.raises(SpecError, match=r"unknown parameter 'alpah'; did you mean 'alpha'\?"):
        api.run(NB, params={"alpah": 3})
    assert not (tmp_path / "pipelines" / "nb" / "runs").exists(), "nothing ran"


# --- the run worker the server spawns --------------------------------------------------------


@pytest.mark.parametrize(
    "request_text, says",
    [
        ("not json", "the run request is not valid JSON"),
        ('{"stages": ["a"]}', "must be a JSON object with a 'target'"),
        ('{"target": "nb.ipynb", "rm": true}', "unknown key 'rm'"),
        ('{"target": "nb.ipynb", "jobs": true}', "'jobs' in the run request must be a int"),
        ('{"target": "nb.ipynb", "jobs": 0}', "--jobs 0 is not a number of stages"),
        ('{"target": "missing.ipynb"}', "missing.ipynb"),
    ],
)
def test_the_run_worker_refuses_a_bad_request_in_one_line(tmp_path, request_text, says):
    project(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "nb2pipe.api"], input=request_text, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], result.stderr
    assert result.stdout == "" and not (tmp_path / PIPE / "runs").exists()


def test_the_run_worker_runs_a_request_with_typed_params_and_prints_events(tmp_path):
    project(tmp_path)
    request = {"target": NB, "stages": ["a"], "params": {"alpha": [1, "x"]}, "command": ["from", "a test"]}
    result = subprocess.run(
        [sys.executable, "-m", "nb2pipe.api"], input=json.dumps(request), cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["event"] == "run_finished" and events[-1]["status"] == "ok"
    assert (tmp_path / "a.txt").read_text() == "a [1, 'x']"
    runs, _ = runs_db_rows(tmp_path / PIPE)
    assert [(json.loads(r["params"]), json.loads(r["command"])) for r in runs] == [({"alpha": [1, "x"]}, ["from", "a test"])]


# --- reads -----------------------------------------------------------------------------------


def test_status_through_the_cli_imports_nothing_heavy(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project(tmp_path)
    assert cli("export", NB)[0] == 0
    probe = (
        "import sys, json\n"
        "from nb2pipe.cli import main\n"
        f"code = main(['status', {PIPE!r}, '--json'])\n"
        "print(json.dumps(sorted(m for m in sys.modules)))\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.splitlines()[-1]))
    heavy = ("papermill", "nbclient", "jupyter_server", "tornado", "jupytext", "nbconvert", "nbformat", "ipykernel")
    assert not {m for m in loaded if m.split(".")[0] in heavy}
    assert "nb2pipe.api" in loaded


def test_status_reads_a_notebook_a_folder_or_a_loaded_pipeline_alike(tmp_path, monkeypatch):
    from nb2pipe.spec import load_pipeline

    monkeypatch.chdir(tmp_path)
    project(tmp_path)
    api.export_if_needed(Path(NB))
    seen = [[(s.name, s.state, [str(r) for r in s.reasons]) for s in api.status(t, {"alpha": 3}).stages]
            for t in (NB, PIPE, load_pipeline(Path(PIPE)))]
    assert seen[0] == seen[1] == seen[2] == [("a", "never-run", ["never run"]), ("b", "never-run", ["never run"]),
                                              ("c", "never-run", ["never run"])]
    assert re.fullmatch(r".*nb", str(api.folder_of(NB)))


def test_every_name_of_the_api_is_what_it_says_also_after_its_module_was_imported():
    """nb2pipe.api imports its modules on first use; a name is never shadowed by a module."""
    import importlib
    import inspect

    import nb2pipe.api

    for name in nb2pipe.api.__all__:
        importlib.import_module(f"nb2pipe.api.{nb2pipe.api._MODULE_OF[name]}")
        value = getattr(nb2pipe.api, name)
        assert not inspect.ismodule(value) and (callable(value) or inspect.isclass(value)), name
