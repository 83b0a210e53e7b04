"""`nb2pipe sweep` with real kernels and papermill: every trial a tracked run in its own scratch
workspace, the shared stage run once and restored in each trial, the workspace untouched, a
failing trial recorded while the others go on, Ctrl-C and resume, `runs --sweep`, and checkout
of a trial."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from conftest import code, write_nb
from helpers import nb2pipe_command, output_or_stacks, signal_another_thread, stacks_env, wait_until

pytestmark = pytest.mark.slow

PIPE = "pipelines/nb"
LOAD = "data = list(range(size))"
TRAIN = "assert depth != 5, 'depth 5 breaks the model'\nmodel = sum(data) * alpha + depth"
EVALUATE = "score = model / 2"


@pytest.fixture(autouse=True)
def _no_stale_papermill_cwd():
    from papermill.iorw import papermill_io

    papermill_io.get_handler("local").cwd(None)
    yield


def project(root: Path, train: str = TRAIN) -> None:
    """load (reads size) -> train (reads alpha, depth) -> evaluate (metrics: score)."""
    write_nb(
        root / "nb.ipynb",
        code("size = 4\nalpha = 0.5\ndepth = 3", "parameters"),
        code(LOAD, "stage:load"),
        code(train, "stage:train"),
        code(EVALUATE, "stage:evaluate", "metrics"),
    )


def workspace_state(root: Path) -> dict[str, tuple[str, int]]:
    """Every file of the workspace (bytes and mtime) but the history, executed notebooks, output
    cache and scratch area, which a sweep adds to."""
    state = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and not re.match(rf"{PIPE}/(\.nb2pipe/(cache|scratch|runs\.db|run\.pid)|runs/)", relative):
            state[relative] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return state


def sweep_runs(cli) -> list[dict]:
    status, out, err = cli("runs", PIPE, "--sweep", "latest", "--json")
    assert status == 0, err
    return json.loads(out)


def history(root: Path) -> list[dict]:
    rows = sqlite3.connect(root / PIPE / ".nb2pipe" / "runs.db").execute("SELECT run_id, stage, outcome FROM stages").fetchall()
    return [{"run": r[0], "stage": r[1], "outcome": r[2]} for r in rows]


def test_a_grid_runs_each_trial_as_a_run_shares_load_and_leaves_the_workspace_alone(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    project(tmp_path)
    status, _, err = cli("run", "nb.ipynb")
    assert status == 0, err
    before = workspace_state(tmp_path)

    status, out, err = cli("sweep", PIPE, "-p", "alpha=0.1,0.2", "-p", "depth=3,4", "-p", "size=3", "--jobs", "2")
    assert status == 0, err
    assert out.splitlines()[-1] == "4 trials: 4 ok, 0 failed"
    table = [line.split() for line in out.splitlines()[1:-1]]
    assert [row[1:4] + row[-1:] for row in table] == [
        ["0.1", "3", "1.65", "ok"], ["0.1", "4", "2.15", "ok"], ["0.2", "3", "1.8", "ok"], ["0.2", "4", "2.3", "ok"],
    ]  # fmt: skip
    assert workspace_state(tmp_path) == before, "the workspace's outputs and nb2pipe.lock are untouched"
    assert not any((tmp_path / PIPE / ".nb2pipe" / "scratch").iterdir()), "no scratch left behind"

    trials = sweep_runs(cli)
    assert sorted((t["trial"]["alpha"], t["trial"]["depth"]) for t in trials) == [(0.1, 3), (0.1, 4), (0.2, 3), (0.2, 4)]
    assert all(t["params"] == {"size": 3, **t["trial"]} for t in trials), "params: every parameter's value"
    load_runs = [h for h in history(tmp_path) if h["stage"] == "load" and h["outcome"] == "ran"]
    assert len(load_runs) == 2, "load ran once in the workspace's run and once for the whole sweep"
    shared_run = load_runs[-1]["run"]
    for trial in trials:
        stages = {s["name"]: s for s in trial["stages"]}
        assert trial["metrics"]["score"] == pytest.approx((3 * trial["trial"]["alpha"] + trial["trial"]["depth"]) / 2)
        assert (stages["load"]["outcome"], stages["load"]["from_run"]) == ("restored", shared_run)
        assert stages["load"]["notebook"] == f"runs/{shared_run}/load.ipynb", "points to the run that produced it"
        assert not (tmp_path / PIPE / "runs" / trial["id"] / "load.ipynb").exists(), "not copied"
        assert stages["train"]["outcome"] == stages["evaluate"]["outcome"] == "ran"
        assert stages["evaluate"]["notebook"] == f"runs/{trial['id']}/evaluate.ipynb"
        executed = json.loads((tmp_path / PIPE / stages["train"]["notebook"]).read_text())
        assert executed["metadata"]["papermill"]["parameters"]["alpha"] == trial["trial"]["alpha"], "the trial's own notebook"

    best = json.loads(cli("runs", PIPE, "--sweep", "latest", "--sort", "score:max", "--json")[1])
    assert [t["metrics"]["score"] for t in best] == pytest.approx([2.3, 2.15, 1.8, 1.65])
    status, out, _ = cli("sweep", PIPE, "-p", "alpha=0.1,0.2", "-p", "depth=3,4", "-p", "size=3", "--md")
    assert status == 0 and out.splitlines()[-1] == "4 trials: 4 ok, 0 failed"
    first = next(t for t in trials if t["trial"] == {"alpha": 0.1, "depth": 3, "size": 3})
    assert out.splitlines()[:3] == [
        "| RUN | alpha | depth | score | TIME | STATUS |", "|---|---|---|---|---|---|",
        f"| {first['id']} | 0.1 | 3 | 1.65 | {first['duration']:.1f}s | ok |",
    ]  # fmt: skip
    assert len(sweep_runs(cli)) == 4 and len(history(tmp_path)) == 3 + 1 + 4 * 3, "the same sweep again ran nothing"

    # checkout of a trial whose shared stage was restored: its outputs, all of them, in the workspace
    chosen = next(t for t in trials if t["trial"] == {"alpha": 0.2, "depth": 4, "size": 3})
    status, out, err = cli("checkout", PIPE, "--run", chosen["id"])
    assert status == 0, err
    status, out, _ = cli("status", PIPE, "-p", "size=3", "-p", "alpha=0.2", "-p", "depth=4")
    assert status == 0 and out.split() == ["load", "up-to-date", "train", "up-to-date", "evaluate", "up-to-date"]
    metrics = json.loads((tmp_path / PIPE / "metrics" / "evaluate.json").read_text())
    assert metrics == {"score": pytest.approx(2.3)}


def test_a_failing_trial_is_recorded_the_others_go_on_and_a_rerun_retries_only_it(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    project(tmp_path)
    status, out, err = cli("sweep", "nb.ipynb", "-p", "depth=3,5,7")
    assert status == 1
    assert out.splitlines()[-1] == "3 trials: 2 ok, 1 failed"
    assert "depth 5 breaks the model" in err
    trials = {t["trial"]["depth"]: t for t in sweep_runs(cli)}
    assert {d: t["status"] for d, t in trials.items()} == {3: "ok", 5: "failed", 7: "ok"}
    failed = {s["name"]: s for s in trials[5]["stages"]}["train"]
    assert failed["outcome"] == "failed" and "depth 5 breaks the model" in failed["error"]
    executed = json.loads((tmp_path / PIPE / failed["notebook"]).read_text())
    assert any("depth 5 breaks the model" in str(cell.get("outputs")) for cell in executed["cells"]), "its executed notebook is kept"

    sweep_id = trials[3]["sweep"]
    status, out, err = cli("sweep", "nb.ipynb", "--resume", sweep_id, "--json")  # the trials as runs.db remembers them
    assert status == 1
    report = json.loads(out)
    assert (report["sweep"], report["summary"], report["ok"]) == (sweep_id, "3 trials: 2 ok, 1 failed", False)
    assert [t["trial"] for t in report["trials"]] == [{"depth": 3}, {"depth": 5}, {"depth": 7}]
    assert "2 of 3 trials finished earlier; running the other 1" in err
    trial_runs = [h for h in history(tmp_path) if h["stage"] == "train"]
    assert len(trial_runs) == 4, "3 trials, then only the failed one again"


def _train_rows(db: Path, outcome: str) -> int:
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM stages WHERE stage = 'train' AND outcome = ?", (outcome,)).fetchone()[0])
        except sqlite3.OperationalError:  # the history is being created
            return 0


@pytest.mark.parametrize("to", ["the process group", "a thread other than the main one"])
def test_ctrl_c_stops_the_sweep_with_no_trial_shown_ok_and_the_same_command_runs_the_rest(tmp_path, monkeypatch, cli, to):
    """A terminal's Ctrl-C goes to the process group, and the OS hands it to any thread of the
    sweep: the main thread, or one of the trials' or kernels' threads."""
    monkeypatch.chdir(tmp_path)
    gate = tmp_path / "gate"
    gate.write_text("closed")
    wait_for_gate = f"import os, time\nwhile os.path.exists({str(gate)!r}):\n    time.sleep(0.1)\n"
    project(tmp_path, train=wait_for_gate + "model = sum(data) * alpha + depth")
    stacks = tmp_path / "stacks.txt"
    argv = nb2pipe_command("sweep", "nb.ipynb", "-p", "depth=1,2,3", "--jobs", "2")
    proc = subprocess.Popen(
        argv, cwd=tmp_path, env=stacks_env(stacks), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        db = tmp_path / PIPE / ".nb2pipe" / "runs.db"
        wait_until(lambda: _train_rows(db, "running") >= 2, "two trials run at once", timeout=300, proc=proc,
                   seen=lambda: f"train rows running: {_train_rows(db, 'running')}", interval=0.2)
        if to == "the process group":
            os.killpg(proc.pid, signal.SIGINT)  # as a terminal does
        else:
            signal_another_thread(proc.pid, signal.SIGINT)
        out, err = output_or_stacks(proc, stacks, timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, (out, err)
    assert "the same command again" in err
    assert out.splitlines()[-1] == "3 trials: 0 ok, 0 failed, 2 interrupted, 1 not run"
    statuses = [t["status"] for t in sweep_runs(cli)]
    assert sorted(statuses) == ["interrupted", "interrupted"], "no half-run trial is shown ok"
    assert not any((tmp_path / PIPE / ".nb2pipe" / "scratch").iterdir()), "no scratch left behind"

    gate.unlink()
    status, out, err = cli("sweep", "nb.ipynb", "-p", "depth=1,2,3", "--jobs", "2")
    assert status == 0, err
    assert out.splitlines()[-1] == "3 trials: 3 ok, 0 failed"
    assert sorted(t["trial"]["depth"] for t in sweep_runs(cli) if t["status"] == "ok") == [1, 2, 3]
