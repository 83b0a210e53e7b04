"""`python -m nb2pipe.run.single PIPELINE STAGE`: one stage, as DVC, Airflow and Kubeflow run it.

Real kernels and papermill, the command started as the engines start it (a subprocess). The
stage runs as `nb2pipe run` runs it (the 'local' executor), says a failure in the same words,
stops its kernel or command (and the command's children) when the engine cancels the task, and
every engine file nb2pipe writes calls it. Files written before it moved get one line saying
how to update them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import code, write_nb
from helpers import signal_another_thread, survivors
from nb2pipe.exporters import STAGE_MODULE, render

NB = "nb.ipynb"
PIPE = "pipelines/nb"
COMMAND = [sys.executable, "-m", "nb2pipe.run.single"]

SLEEPER = (
    "with open('sleeper.pid', 'w') as f:\n    f.write(str(os.getpid()))\n"
    "time.sleep(300)\nopen('sleeper.done', 'w').close()\n"
)
# a command that starts a child of its own, says both pids, and sleeps
COMMANDER = (
    "import os, subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
    "open('commander.tmp', 'w').write(f'{os.getpid()} {child.pid}')\n"
    "os.rename('commander.tmp', 'commander.pid')\n"
    "time.sleep(300)\n"
    "open('commander.done', 'w').close()\n"
)


@pytest.fixture
def project(tmp_path, monkeypatch, cli) -> Path:
    """nb.ipynb exported to pipelines/nb (stages a, b that fails, sleeper), and pipelines/tools,
    a pipeline of command stages. The current directory is tmp_path."""
    write_nb(
        tmp_path / NB,
        code("import os, time", "setup"),
        code("k = 1\nunused = 0", "parameters"),
        code("with open('a.txt', 'w') as f:\n    f.write(str(k))\n", "stage:a", "out:a.txt"),
        code("y = 2\nraise ValueError('boom in b')\n", "stage:b"),
        code(SLEEPER, "stage:sleeper"),
    )
    monkeypatch.chdir(tmp_path)
    exit_code, _, err = cli("export", NB)
    assert exit_code == 0, err
    tools = tmp_path / "pipelines" / "tools"
    tools.mkdir()
    argv = lambda source: json.dumps([sys.executable, "-c", source])  # noqa: E731
    (tools / "nb2pipe.yaml").write_text(
        "version: 1\nwdir: ../..\nstages:\n"
        f"  listing:\n    cmd: {argv('import os; print(sorted(os.listdir(chr(46))))')}\n"
        f"  broken:\n    cmd: {argv('raise SystemExit(chr(110) + chr(111) + chr(33))')}\n"
        f"  commander:\n    cmd: {argv(COMMANDER)}\n"
    )
    return tmp_path


def single(*args: str, **popen) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=300, **popen)


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


# --- running a stage ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_stage_runs_in_wdir_with_params_json_over_params_yaml(project):
    done = single(PIPE, "a", "--params-json", '{"k": 5}', "--engine", "dvc")
    assert done.returncode == 0, done.stderr
    assert (project / "a.txt").read_text() == "5"
    assert done.stdout.strip() == f"stage 'a' done; output in {PIPE}/.nb2pipe/dvc-runs/a.ipynb"
    executed = json.loads((project / PIPE / ".nb2pipe/dvc-runs/a.ipynb").read_text())
    injected = [c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert "".join(injected[0]["source"]).splitlines()[-1] == "k = 5", "only the parameter the stage reads, overridden"


@pytest.mark.slow
def test_a_failing_stage_is_worded_as_nb2pipe_run_words_it(project, cli):
    done = single(PIPE, "b")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = error_lines(done.stderr)
    exit_code, _, err = cli("run", PIPE, "--stage", "b")
    assert exit_code == 1
    (by_run,) = error_lines(err)
    said, _, opened = line.partition("; open ")
    assert said == by_run.partition("; open ")[0]
    assert said == f"error: stage 'b' failed in nb.ipynb cell 4 ({PIPE}/stages/b.py): ValueError: boom in b"
    assert opened == f"{PIPE}/.nb2pipe/export-runs/b.ipynb" and (project / opened).is_file()


@pytest.mark.slow
def test_command_stages_run_on_the_executor_with_their_output_in_a_log(project):
    done = single("pipelines/tools", "listing", "--engine", "airflow")
    assert done.returncode == 0, done.stderr
    log = project / "pipelines/tools/.nb2pipe/airflow-runs/listing.log"
    assert "'nb.ipynb'" in log.read_text(), "the command did not run in wdir, or its output was not logged"
    assert done.stdout.strip() == "stage 'listing' done; output in pipelines/tools/.nb2pipe/airflow-runs/listing.log"
    failed = single("pipelines/tools", "broken")
    assert failed.returncode == 1
    assert error_lines(failed.stderr) == [
        "error: stage 'broken' failed: exit status 1: no!; open pipelines/tools/.nb2pipe/export-runs/broken.log"
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([PIPE, "a", "--params-json", '{"kk": 2}'], "error: unknown parameter 'kk'; did you mean 'k'?"),
        ([PIPE, "a", "--params-json", "{bad"], "error: --params-json is not valid JSON ("),
        ([PIPE, "a", "--params-json", "[1, 2]"], "error: --params-json must be a JSON object of parameter names to values"),
        ([PIPE, "sleepr"], "error: unknown stage 'sleepr'; did you mean 'sleeper'?"),
        (["pipelines/none", "a"], "error: no pipeline at 'pipelines/none' ('nb2pipe.yaml' not found)"),
        ([PIPE, "a", "--engine", "../../elsewhere"], "error: --engine '../../elsewhere' must be a plain name such as dvc"),
    ],
)
def test_a_usage_mistake_is_one_line_and_runs_nothing(project, capsys, argv, message):
    from nb2pipe.run.single import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(message), err
    assert not (project / "a.txt").exists()


# --- the engine cancels the task -------------------------------------------------------------


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("pipeline", "stage", "pid_file", "how"),
    [
        (PIPE, "sleeper", "sleeper.pid", signal.SIGTERM),
        ("pipelines/tools", "commander", "commander.pid", signal.SIGTERM),
        (PIPE, "sleeper", "sleeper.pid", signal.SIGINT),  # even with SIGINT ignored by inheritance
        (PIPE, "sleeper", "sleeper.pid", "SIGINT to a thread other than the main one"),  # as the OS may deliver it
    ],
)
def test_a_cancelled_stage_leaves_no_kernel_or_command_behind(project, pipeline, stage, pid_file, how):
    process = subprocess.Popen(
        [*COMMAND, pipeline, stage], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=_ignore_sigint if how != signal.SIGTERM else None,
    )  # fmt: skip
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 180
        while not (project / pid_file).exists():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"the stage did not start (exit {process.poll()}): {process.stderr.read() if process.poll() is not None else ''}"
                )
            time.sleep(0.1)
        pids = [int(pid) for pid in (project / pid_file).read_text().split()]
        if isinstance(how, str):
            signal_another_thread(process.pid, signal.SIGINT)
        else:
            process.send_signal(how)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        left = survivors(pids, timeout=30)
        for pid in left:  # what the command left behind: the processes this test's stage started
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == f"stage '{stage}' interrupted"
    assert left == [], "the stage's kernel, its command or the command's child outlived the cancelled task"
    assert not (project / "sleeper.done").exists() and not (project / "commander.done").exists()


# --- the engine files ------------------------------------------------------------------------


def test_every_engine_file_runs_its_stages_through_this_command(project):
    assert STAGE_MODULE == "nb2pipe.run.single" and importlib.util.find_spec(STAGE_MODULE) is not None
    targets = ["dvc", "airflow"] + (["kubeflow"] if importlib.util.find_spec("kfp") else [])
    for target in targets:
        _, files = render(target, project / PIPE)
        (text,) = files.values()
        assert "nb2pipe.run.single" in text, target
        assert "nb2pipe.exporters.execute" not in text, target


@pytest.mark.parametrize(("engine", "to"), [("dvc", "dvc"), ("airflow", "airflow"), (None, "dvc|airflow|kubeflow")])
def test_the_command_of_earlier_exports_says_how_to_update_the_file(project, capsys, engine, to):
    from nb2pipe.exporters.execute import main

    assert main([PIPE, "a", *(["--engine", engine] if engine else [])]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "error: this file was exported by an earlier nb2pipe, whose stage command 'python -m nb2pipe.exporters.execute' "
        f"is now 'python -m nb2pipe.run.single'; export it again: nb2pipe export NOTEBOOK --to {to}"
    ]
    assert not (project / "a.txt").exists(), "the old command ran the stage"
