"""Executors behind one protocol and a registry (nb2pipe/run/executors.py), with real kernels.

- The registry: an unknown executor or an option it does not take is one line naming what is
  known; an executor registered by name is the one the runner runs its stages on.
- The protocol, checked the same way on every built-in executor (dask only where `distributed`
  is installed): jobs run with their parameters, cells are reported before a stage's future
  resolves, failures name the exception and the cell; an interrupt ends the running stages at
  once, kills their kernels and commands (with the commands' children), and a job submitted
  afterwards never runs.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from conftest import code, write_nb
from helpers import survivors
from nb2pipe.errors import SpecError
from nb2pipe.run import RunOptions, executors, run_pipeline
from nb2pipe.run.executors import StageJob, check_executor, executor, executor_names, register_executor

NB = "nb.ipynb"
PIPE = "pipelines/nb"


def has_dask() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


BUILT_IN = [
    pytest.param("local", marks=pytest.mark.slow),
    pytest.param(
        "dask",
        marks=[
            pytest.mark.exports,
            pytest.mark.slow,
            pytest.mark.skipif(not has_dask(), reason="dask is an optional extra: pip install 'dask[distributed]'"),
        ],
    ),
]


# --- the registry ------------------------------------------------------------------------------


def test_the_built_in_executors_are_registered():
    assert executor_names()[:2] == ("local", "dask")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nope", "unknown executor 'nope'; known executors: local, dask"),
        ("dusk", "unknown executor 'dusk'; did you mean 'dask'?"),
        ("Local", "unknown executor 'Local'; did you mean 'local'?"),
    ],
)
def test_an_unknown_executor_is_one_line_naming_the_known_ones(tmp_path, name, message):
    with pytest.raises(SpecError) as caught:
        executor(name, "python3", tmp_path, 1)
    assert str(caught.value) == message


def test_an_option_the_executor_does_not_take_is_refused_before_anything_starts(tmp_path):
    with pytest.raises(SpecError) as caught:
        executor("local", "python3", tmp_path, 1, scheduler="tcp://127.0.0.1:8786")
    assert str(caught.value) == (
        "option 'scheduler' does not apply to executor 'local' (it takes no options); leave it out, or use executor 'dask'"
    )
    with pytest.raises(SpecError, match=r"^option 'colour' does not apply to executor 'dask' \(it takes: scheduler\); leave it out$"):
        executor("dask", "python3", tmp_path, 1, colour="blue")


def test_a_run_can_check_its_executor_and_options_before_it_starts():
    """check_executor makes nothing: a caller (the CLI, the API) checks before it takes a lock."""
    check_executor("dask", scheduler="tcp://127.0.0.1:8786")
    check_executor("local", scheduler=None)  # None: not given
    with pytest.raises(SpecError, match=r"^unknown executor 'nope'; known executors: local, dask$"):
        check_executor("nope")
    with pytest.raises(SpecError, match=r"^option 'scheduler' does not apply to executor 'local'"):
        check_executor("local", scheduler="tcp://127.0.0.1:8786")


@pytest.fixture
def two_stages(tmp_path, monkeypatch, cli) -> Path:
    """a writes a.txt; b reads it and writes b.txt. The current directory is tmp_path."""
    write_nb(
        tmp_path / NB,
        code("import os", "setup"),
        code("with open('a.txt', 'w') as f:\n    f.write('a')\n", "stage:a", "out:a.txt"),
        code(
            "with open('a.txt') as f:\n    text = f.read()\nwith open('b.txt', 'w') as f:\n    f.write(text + 'b')\n",
            "stage:b", "in:a.txt", "out:b.txt",
        ),
    )  # fmt: skip
    monkeypatch.chdir(tmp_path)
    exit_code, _, err = cli("export", NB)
    assert exit_code == 0, err
    return tmp_path


def test_an_unknown_executor_stops_a_run_before_any_stage(two_stages):
    with pytest.raises(SpecError, match=r"^unknown executor 'dusk'; did you mean 'dask'\?$"):
        run_pipeline(Path(PIPE), RunOptions(executor="dusk"), [])
    assert not (two_stages / "a.txt").exists()


def test_a_scheduler_for_the_local_executor_is_a_usage_error(two_stages, cli):
    """It used to be ignored: the run went ahead on this machine."""
    exit_code, _, err = cli("run", NB, "--scheduler", "tcp://127.0.0.1:8786")
    assert exit_code == 2, err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: option 'scheduler' does not apply to executor 'local' (it takes no options); leave it out, or use executor 'dask'"
    ]
    assert "Traceback" not in err
    assert not (two_stages / "a.txt").exists()


@pytest.mark.slow
def test_the_runner_runs_its_stages_on_the_executor_registered_by_name(two_stages, monkeypatch):
    monkeypatch.setattr(executors, "_REGISTRY", dict(executors._REGISTRY))  # registered for this test only
    made: list[dict] = []
    submitted: list[str] = []

    class Recording:
        """The local executor, noting what it was made with and what it ran."""

        def __init__(self, kernel_name, wdir, jobs, *, stages=None, log=None, **options):
            made.append({"kernel": kernel_name, "wdir": wdir, "jobs": jobs, "stages": stages, "log": log, **options})
            self.inner = executor("local", kernel_name, wdir, jobs, stages=stages, log=log)

        def submit(self, job):
            submitted.append(job.name)
            return self.inner.submit(job)

        def interrupt(self):
            self.inner.interrupt()

        def close(self):
            self.inner.close()

    register_executor("recording", Recording)
    assert "recording" in executor_names()
    result = run_pipeline(Path(PIPE), RunOptions(executor="recording", jobs=1), [])
    assert result.outcomes == {"a": "ran", "b": "ran"}, result.errors
    assert submitted == ["a", "b"]
    assert (two_stages / "b.txt").read_text() == "ab"
    (args,) = made
    assert args["kernel"] == "python3" and args["wdir"] == two_stages and args["jobs"] == 1 and args["stages"] == 2
    assert args["log"] == two_stages / PIPE / "runs" / result.run_id / "kernels.log"


def test_an_executor_that_cannot_be_made_fails_the_started_stage_and_loses_nothing(two_stages, monkeypatch):
    """The executor is made once the first stage started (its kernels' imports would only slow
    that stage's dispatch down): one that cannot be made (a scheduler out of reach) is the run's
    one error, the started stage ends failed, and what was at its outs is back."""
    monkeypatch.setattr(executors, "_REGISTRY", dict(executors._REGISTRY))  # registered for this test only

    def unreachable(*args, **options):
        raise SpecError("cannot reach the scheduler at tcp://192.0.2.1:8786; start it, or leave out --scheduler")

    register_executor("unreachable", unreachable)
    (two_stages / "a.txt").write_text("kept")
    seen: list[dict] = []
    with pytest.raises(SpecError, match=r"^cannot reach the scheduler"):
        run_pipeline(Path(PIPE), RunOptions(executor="unreachable"), [seen.append])
    stage_events = [(e["event"], e.get("stage")) for e in seen if e["event"].startswith("stage")]
    assert stage_events == [("stage_started", "a"), ("stage_failed", "a")]
    assert [e["status"] for e in seen if e["event"] == "run_finished"] == ["failed"]
    assert (two_stages / "a.txt").read_text() == "kept"
    assert not (two_stages / PIPE / ".nb2pipe" / "journal.json").exists()
    assert not (two_stages / PIPE / "nb2pipe.lock").exists()


# --- the protocol, on every built-in executor --------------------------------------------------


def notebook(*sources: str) -> nbformat.NotebookNode:
    """A stage notebook: a parameters cell `x = 0`, then `sources` as code cells."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(nbformat.v4.new_code_cell("x = 0", metadata={"tags": ["parameters"]}))
    nb.cells.extend(nbformat.v4.new_code_cell(source) for source in sources)
    return nb


def job(runs: Path, name: str, *sources: str, cmd: tuple[str, ...] | None = None, parameters=None, cells=None) -> StageJob:
    on_cell = (lambda index, count: cells.append((index, count))) if cells is not None else (lambda index, count: None)
    return StageJob(
        name=name, notebook=None if cmd else notebook(*sources), parameters=parameters or {},
        output=runs / f"{name}.ipynb", on_cell=on_cell, cmd=cmd,
    )  # fmt: skip


@pytest.fixture
def runs(tmp_path) -> Path:
    folder = tmp_path / "runs"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("name", BUILT_IN)
def test_jobs_run_with_their_parameters_and_report_cells_and_failures(name, tmp_path, runs):
    cells: list[tuple[int, int]] = []
    made = executor(name, "python3", tmp_path, 2, stages=4)
    try:
        fine = made.submit(
            job(runs, "fine", "with open('fine.txt', 'w') as f:\n    f.write(str(x))", "y = 1", parameters={"x": 7}, cells=cells)
        )
        fine_outcome = fine.result(timeout=300)
        seen = list(cells)  # as the future resolved
        broken = made.submit(job(runs, "broken", "y = 1", "raise ValueError('boom')")).result(timeout=300)
        listing = (sys.executable, "-c", "import os; print(sorted(os.listdir('.')))")
        command = made.submit(job(runs, "listing", cmd=listing)).result(timeout=300)
        failing = made.submit(job(runs, "failing", cmd=(sys.executable, "-c", "raise SystemExit('no such luck')"))).result(timeout=300)
    finally:
        made.close()
    assert fine_outcome.ok, fine_outcome.error
    assert (tmp_path / "fine.txt").read_text() == "7", "the parameter was not injected, or the stage did not run in wdir"
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)], "parameters, injected parameters, two cells"
    assert (runs / "fine.ipynb").is_file()
    assert not broken.ok
    assert (broken.error["ename"], broken.error["evalue"]) == ("ValueError", "boom")
    assert "raise ValueError('boom')" in broken.error["source"]
    executed = nbformat.read(str(runs / "broken.ipynb"), as_version=4)
    ran = [c for c in executed.cells if "papermill-error-cell-tag" not in c.metadata.get("tags", [])]  # papermill's banner aside
    assert ran[broken.error["cell_index"]].source == "raise ValueError('boom')"
    assert command.ok and "'fine.txt'" in (runs / "listing.log").read_text()
    assert failing.error == {"ename": "exit status 1", "evalue": "no such luck"}


SLEEPING_CELL = (
    "import os, time\nwith open('sleeper.pid', 'w') as f:\n    f.write(str(os.getpid()))\n"
    "time.sleep(300)\nopen('sleeper.done', 'w').close()"
)

# a command that starts a child of its own, says both pids, and sleeps
SLEEPING_COMMAND = (
    "import os, subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
    "with open('commander.tmp', 'w') as f:\n"
    "    f.write(f'{os.getpid()} {child.pid}')\n"
    "os.rename('commander.tmp', 'commander.pid')\n"
    "time.sleep(300)\n"
    "open('commander.done', 'w').close()\n"
)


def wait_for_files(*paths: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        if time.monotonic() > deadline:
            pytest.fail(f"the stages did not start; present: {[p.name for p in paths if p.exists()]}")
        time.sleep(0.1)


@pytest.mark.parametrize("name", BUILT_IN)
def test_interrupt_ends_running_stages_kills_their_processes_and_refuses_new_jobs(name, tmp_path, runs):
    made = executor(name, "python3", tmp_path, 2, stages=3)
    pids: list[int] = []
    try:
        sleeping = [
            made.submit(job(runs, "sleeper", SLEEPING_CELL)),
            made.submit(job(runs, "commander", cmd=(sys.executable, "-c", SLEEPING_COMMAND))),
        ]
        wait_for_files(tmp_path / "sleeper.pid", tmp_path / "commander.pid")
        pids = [int((tmp_path / "sleeper.pid").read_text()), *map(int, (tmp_path / "commander.pid").read_text().split())]
        made.interrupt()
        outcomes = [future.result(timeout=120) for future in sleeping]
        late = made.submit(job(runs, "late", "open('late.txt', 'w').close()")).result(timeout=120)
    finally:
        made.close()
        left = survivors(pids, timeout=30)
        for pid in left:  # whatever the executor left behind: the processes this test started
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
    assert [(o.name, o.ok, o.error["evalue"]) for o in outcomes] == [("sleeper", False, "interrupted"), ("commander", False, "interrupted")]
    assert left == [], "the stage's kernel, its command, or the command's child outlived the interrupt"
    assert (late.name, late.ok, late.error["evalue"]) == ("late", False, "interrupted")
    assert not (tmp_path / "late.txt").exists() and not (runs / "late.ipynb").exists(), "a job submitted after the interrupt ran"
    assert not (tmp_path / "sleeper.done").exists() and not (tmp_path / "commander.done").exists()

