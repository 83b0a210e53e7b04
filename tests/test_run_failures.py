"""When a run goes wrong: a failing stage, a missing output, Ctrl-C, SIGTERM, kill -9, two runs at
once, bad -p values. Real kernels and papermill; the runner runs in a subprocess where a signal has
to reach it as it would from a terminal.
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import nbformat
import pytest
import yaml

from conftest import code, md, write_nb
from helpers import copy_project, run_dirs, run_events, run_once, set_cell, stage_started, stage_status, summary, wait_until_gone

NB = "nb.ipynb"
PIPE = "pipelines/nb"

# nb.ipynb: stage a has two code cells (4 and 5); b reads a's output; c is independent.
SRC_A = "with open('a.txt', 'w') as a_file:\n    a_file.write(f'a {alpha}\\n')\n"
SRC_A2 = "checked = True\n"
SRC_B = "with open('a.txt') as a_in:\n    a_text = a_in.read()\nwith open('b.txt', 'w') as b_file:\n    b_file.write(a_text + 'b\\n')\n"
SRC_C = "with open('c.txt', 'w') as c_file:\n    c_file.write('c\\n')\n"
CELL_A2 = 5


def write_project(root: Path, *extra: dict) -> Path:
    return write_nb(
        root / NB,
        code("import time", "setup"),
        code("alpha = 0.5", "parameters"),
        md("## Stage a"),
        code(SRC_A, "stage:a", "out:a.txt"),
        code(SRC_A2),
        code(SRC_B, "stage:b", "in:a.txt", "out:b.txt"),
        code(SRC_C, "stage:c", "out:c.txt"),
        *extra,
    )


# slow.ipynb: one stage that writes half of its out, sleeps `nap` seconds, then finishes the out.
SLOW_NB = "slow.ipynb"
SLOW_PIPE = "pipelines/slow"
SRC_SLOW = (
    "with open('slow.txt', 'w') as slow_file:\n"
    "    slow_file.write('partial')\n"
    "    slow_file.flush()\n"
    "    time.sleep(nap)\n"
    "    slow_file.write(' done')\n"
)


def write_slow_project(root: Path) -> Path:
    return write_nb(
        root / SLOW_NB,
        code("import time", "setup"),
        code("nap = 0", "parameters"),
        code(SRC_SLOW, "stage:slow", "out:slow.txt"),
    )


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ran_template(tmp_path_factory) -> Path:
    """nb.ipynb, exported and run once (once per test worker)."""
    root = tmp_path_factory.mktemp("ran_failures_template")
    write_project(root)
    assert run_once(root, NB) == "3 ran, 0 up to date, 0 restored from cache, 0 failed"
    return root


@pytest.fixture
def ran(ran_template, tmp_path, monkeypatch) -> Path:
    """A copy of the run project in tmp_path, which is the current directory."""
    return copy_project(ran_template, tmp_path, monkeypatch)


@pytest.fixture
def slow(tmp_path, monkeypatch, cli) -> Path:
    """slow.ipynb run once with nap=0: slow.txt holds 'partial done'."""
    write_slow_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    exit_code, _, err = cli("run", SLOW_NB, "--jobs", "1")
    assert exit_code == 0, err
    assert (tmp_path / "slow.txt").read_text() == "partial done"
    return tmp_path


# --- a failing stage -------------------------------------------------------------------------

FAILING_A2 = "with open('a.txt', 'w') as bad:\n    bad.write('garbage')\nraise ValueError('boom: a.txt is wrong')\n"


def test_failing_stage_restores_its_outs_keeps_its_lock_entry_and_stops_dependants(ran, cli):
    a_txt, b_txt = (ran / "a.txt").read_bytes(), (ran / "b.txt").read_bytes()
    lock = (ran / PIPE / "nb2pipe.lock").read_bytes()
    set_cell(ran / NB, CELL_A2, FAILING_A2)  # writes garbage over a.txt, then raises
    exit_code, out, err = cli("run", NB)
    assert exit_code == 1
    assert summary(out) == "0 ran, 1 up to date, 0 restored from cache, 1 failed, 1 not run"
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    match = re.fullmatch(
        r"error: stage 'a' failed in nb\.ipynb cell \d+ \(pipelines/nb/stages/a\.py\): ValueError: boom: a\.txt is wrong; open (\S+)",
        errors[0],
    )
    assert match, errors[0]
    executed = Path(match.group(1))
    assert executed.name == "a.ipynb" and executed.is_file()
    outputs = [o for c in nbformat.read(executed, as_version=4).cells if c.cell_type == "code" for o in c.outputs]
    assert any(o.output_type == "error" and o.ename == "ValueError" and o.evalue == "boom: a.txt is wrong" for o in outputs)
    assert f"fix it, then resume with: nb2pipe run {NB} --from a" in err
    # what the failure left: the old a.txt, the old lock, b not run
    assert (ran / "a.txt").read_bytes() == a_txt
    assert (ran / PIPE / "nb2pipe.lock").read_bytes() == lock
    assert "running b" not in err and (ran / "b.txt").read_bytes() == b_txt
    report = stage_status(cli, PIPE)
    assert report["a"]["state"] == "failed"
    assert report["a"]["reasons"] == ["last run failed: ValueError: boom: a.txt is wrong", "code changed"]
    assert report["b"]["reasons"] == ["upstream stale: a"]
    # fix it and follow the hint: a's code is back to what it was, so it comes from the run cache
    set_cell(ran / NB, CELL_A2, SRC_A2)
    exit_code, out, err = cli("run", NB, "--from", "a")
    assert exit_code == 0, err
    assert summary(out) == "0 ran, 1 up to date, 1 restored from cache, 0 failed"
    assert (ran / PIPE / "nb2pipe.lock").read_bytes() == lock
    assert all(s["reasons"] == [] for s in stage_status(cli, PIPE).values())


def test_failing_stage_names_the_failing_cell(ran, cli):
    set_cell(ran / NB, CELL_A2, FAILING_A2)
    exit_code, _, err = cli("run", NB)
    assert exit_code == 1
    assert f"error: stage 'a' failed in nb.ipynb cell {CELL_A2} (pipelines/nb/stages/a.py): ValueError: boom: a.txt is wrong; open " in err


def test_failure_message_path_works_from_the_users_directory_while_other_stages_run(tmp_path, monkeypatch, cli):
    write_nb(
        tmp_path / "proj" / NB,
        code("import os, time", "setup"),
        code(
            "import glob\n"
            "def f_failed():  # still running when f fails: s waits for the run to say so\n"
            "    return any('\"stage_failed\"' in open(log).read() for log in glob.glob('pipelines/nb/runs/*/events.jsonl'))\n"
            "waited = 0.0\n"
            "while not f_failed():\n"
            "    assert waited < 300, 'f did not fail while s ran'\n"
            "    time.sleep(0.05)\n"
            "    waited += 0.05\n"
            "with open('s.txt', 'w') as s_file:\n"
            "    s_file.write('s')\n",
            "stage:s", "out:s.txt",
        ),
        code("raise ValueError('boom')\n", "stage:f", "out:f.txt"),
    )
    monkeypatch.chdir(tmp_path)  # the user works one level above the notebook (the stages run in proj/)
    exit_code, out, err = cli("run", f"proj/{NB}", "--jobs", "2")
    assert exit_code == 1
    assert summary(out) == "1 ran, 0 up to date, 0 restored from cache, 1 failed"
    line = next(line for line in err.splitlines() if line.startswith("error: stage 'f'"))
    assert (tmp_path / line.rsplit("; open ", 1)[1]).is_file(), line
    assert Path(os.getcwd()) == tmp_path.resolve()


def test_outs_that_did_not_exist_before_are_removed_when_the_stage_fails(ran, cli):
    data = json.loads((ran / NB).read_text())
    data["cells"].append(
        code(
            "import os\nos.makedirs('d_dir', exist_ok=True)\n"
            "with open('d_dir/part.txt', 'w') as d_part:\n    d_part.write('half')\n"
            "with open('d.txt', 'w') as d_file:\n    d_file.write('half')\n"
            "raise RuntimeError('d broke')\n",
            "stage:d", "out:d.txt", "out:d_dir",
        )
    )
    (ran / NB).write_text(json.dumps(data, indent=1))
    exit_code, out, err = cli("run", NB)
    assert exit_code == 1
    assert "stage 'd' failed" in err and "RuntimeError: d broke" in err
    assert summary(out) == "0 ran, 3 up to date, 0 restored from cache, 1 failed"
    assert not (ran / "d.txt").exists()
    assert not (ran / "d_dir").exists()
    report = stage_status(cli, PIPE)
    assert report["d"]["reasons"] == ["last run failed: RuntimeError: d broke", "never run"]
    assert "d" not in yaml.safe_load((ran / PIPE / "nb2pipe.lock").read_text())["stages"]


def test_a_stage_that_does_not_write_its_declared_output_fails(ran, cli):
    data = json.loads((ran / NB).read_text())
    data["cells"].append(code("with open('e.txt', 'w') as e_file:\n    e_file.write('e')\n", "stage:e", "out:e.txt", "out:e2.txt"))
    (ran / NB).write_text(json.dumps(data, indent=1))
    exit_code, out, err = cli("run", NB)
    assert exit_code == 1
    assert re.search(r"error: stage 'e' failed.*did not write its declared output 'e2\.txt'; open \S+e\.ipynb", err), err
    assert summary(out) == "0 ran, 3 up to date, 0 restored from cache, 1 failed"
    assert not (ran / "e.txt").exists()  # a failed stage leaves no new outs behind
    assert "e" not in yaml.safe_load((ran / PIPE / "nb2pipe.lock").read_text())["stages"]
    assert stage_status(cli, PIPE)["e"]["state"] == "failed"


# --- bad parameters --------------------------------------------------------------------------


def test_unknown_parameter_is_a_usage_error(ran, cli):
    lock = (ran / PIPE / "nb2pipe.lock").read_bytes()
    exit_code, _out, err = cli("run", PIPE, "-p", "nosuch=1")
    assert exit_code == 2
    assert "error: unknown parameter 'nosuch'" in err
    exit_code, _out, err = cli("run", PIPE, "-p", "alpah=0.1")
    assert exit_code == 2
    assert "unknown parameter 'alpah'; did you mean 'alpha'?" in err
    assert (ran / PIPE / "nb2pipe.lock").read_bytes() == lock


def test_parameter_without_a_value_is_a_usage_error(ran, cli):
    exit_code, _out, err = cli("run", PIPE, "-p", "bad")
    assert exit_code == 2
    assert "error: bad parameter 'bad'; write it as -p name=value" in err
    assert "Traceback" not in err


def test_status_rejects_an_unknown_parameter_like_run_does(ran, cli):
    exit_code, _out, err = cli("status", PIPE, "-p", "alpah=0.1")
    assert exit_code == 2
    assert "unknown parameter 'alpah'" in err


def wait_until_half_written(runs, proc, root: Path, before: set[Path]) -> None:
    """The slow stage of the run `proc` started and wrote the first half of slow.txt."""
    runs.wait_until(
        proc, lambda: stage_started(root / SLOW_PIPE, before) and (root / "slow.txt").read_text() == "partial",
        "the stage starts and writes half of slow.txt", seen=lambda: (root / "slow.txt").read_text(),
    )  # fmt: skip


# --- interrupted runs ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupted_run_exits_130_restores_outs_and_leaves_no_kernel(slow, runs, cli, how):
    lock = (slow / SLOW_PIPE / "nb2pipe.lock").read_bytes()
    before = run_dirs(slow / SLOW_PIPE)
    proc = runs.start(slow, SLOW_PIPE, "-p", "nap=3600", "--jobs", "1")
    wait_until_half_written(runs, proc, slow, before)
    runs.note_kernels(proc)
    assert runs.kernels, "saw no kernel of the running stage"
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # a terminal sends Ctrl-C to the foreground process group
    else:
        proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=300)  # it does not sit out the hour-long nap
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert (slow / "slow.txt").read_text() == "partial done"
    assert yaml.safe_load((slow / SLOW_PIPE / "nb2pipe.lock").read_text())["stages"]["slow"]["outs"]
    assert (slow / SLOW_PIPE / "nb2pipe.lock").read_bytes() == lock
    assert not (slow / SLOW_PIPE / ".nb2pipe" / "journal.json").exists()  # nothing left to recover
    assert stage_status(cli, SLOW_PIPE)["slow"]["reasons"][0] == "last run failed: interrupted"
    assert stage_status(cli, SLOW_PIPE)["slow"]["state"] == "cancelled"
    wait_until_gone(runs.kernels, "the kernels of the interrupted run end")


@pytest.mark.slow
def test_after_kill_9_the_next_run_recovers_the_previous_out(slow, runs, cli):
    lock = (slow / SLOW_PIPE / "nb2pipe.lock").read_bytes()
    before = run_dirs(slow / SLOW_PIPE)
    proc = runs.start(slow, SLOW_PIPE, "-p", "nap=60", "--jobs", "1")
    wait_until_half_written(runs, proc, slow, before)
    proc.kill()
    proc.communicate(timeout=30)
    (killed_run,) = run_dirs(slow / SLOW_PIPE) - before
    assert (slow / "slow.txt").read_text() == "partial"  # the half-written out the runner left
    # the next run, even a dry one, puts the previous out back first
    exit_code, _, err = cli("run", SLOW_PIPE, "--dry-run")
    assert exit_code == 0, err
    assert f"recovered stage 'slow' from interrupted run {killed_run.name}: its previous outputs are restored" in err
    assert (slow / "slow.txt").read_text() == "partial done"
    # and then runs cleanly; the recovery is not repeated
    exit_code, out, err = cli("run", SLOW_PIPE)
    assert exit_code == 0, err
    assert "recovered" not in err
    assert summary(out).endswith("0 failed")
    assert (slow / "slow.txt").read_text() == "partial done"
    assert yaml.safe_load((slow / SLOW_PIPE / "nb2pipe.lock").read_text())["stages"]["slow"]["params"] == {"nap": 0}
    assert (slow / SLOW_PIPE / "nb2pipe.lock").read_bytes() == lock
    assert stage_status(cli, SLOW_PIPE)["slow"]["reasons"] == []


@pytest.mark.slow
def test_a_second_run_fails_at_once_naming_the_holder_and_wait_queues_behind_it(tmp_path, monkeypatch, runs, cli):
    write_slow_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli("export", SLOW_NB)[0] == 0
    before = run_dirs(tmp_path / SLOW_PIPE)
    proc = runs.start(tmp_path, SLOW_PIPE, "-p", "nap=5", "--jobs", "1")
    runs.wait_until(proc, lambda: stage_started(tmp_path / SLOW_PIPE, before), "the first run starts its stage")
    exit_code, out, err = cli("run", SLOW_PIPE)
    assert exit_code == 1
    assert f"is already running (pid {proc.pid})" in err and "--wait" in err
    assert proc.poll() is None  # it answered at once, not after the other run
    assert stage_status(cli, SLOW_PIPE)["slow"]["state"] == "running"
    exit_code, out, err = cli("run", SLOW_PIPE, "-p", "nap=5", "--wait")
    by_pid = {}
    for run in run_dirs(tmp_path / SLOW_PIPE) - before:
        events = run_events(run)
        by_pid[next(e["pid"] for e in events if e["event"] == "run_started")] = events
    other, mine = by_pid[proc.pid], by_pid[os.getpid()]
    assert other[-1]["event"] == "run_finished" and other[-1]["status"] == "ok"
    started_mine = next(e["time"] for e in mine if e["event"] == "run_started")
    assert other[-1]["time"] <= started_mine, "--wait started before the other run had finished"
    assert proc.wait(timeout=30) == 0
    assert exit_code == 0, err
    assert summary(out) == "0 ran, 1 up to date, 0 restored from cache, 0 failed"
