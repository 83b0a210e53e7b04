"""`nb2pipe verify NOTEBOOK`: the notebook top to bottom against its pipeline, on real kernels.

What a user notices: the exit status (0 equal, 1 not, 2 bad input), one line per difference naming
the stage and the cell, the summary line, the JSON for CI, and a workspace left as it was.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import code, md, write_nb
from helpers import (
    assert_one_line_error,
    kernel_processes,
    nb2pipe_command,
    output_or_stacks,
    run_cli,
    signal_another_thread,
    stacks_env,
    survivors,
    wait_until,
)
from nb2pipe.api.compare import Comparison, PipelineRun, PlainRun, compare, short_diff

pytestmark = pytest.mark.slow

SUMMARY_RE = r"^verified: \d+ cells?, \d+ files? equal; \d+ not comparable"


def equal_project(root: Path) -> Path:
    """Two heading stages that hand a variable and a file on, a cell whose output is random, a
    `skip` cell that would fail, and an input file the notebook reads."""
    (root / "raw.csv").write_text("1\n2\n3\n")
    return write_nb(
        root / "nb.ipynb",
        code("scale = 2", "parameters"),
        md("## Load"),
        code("with open('raw.csv') as f:\n    numbers = [int(line) for line in f]\nprint(numbers)"),
        code("import random\nrandom.random()"),
        code("raise RuntimeError('not for the pipeline')", "skip"),
        md("## Scale"),
        code("scaled = [n * scale for n in numbers]\nwith open('scaled.txt', 'w') as f:\n    f.write(str(scaled))\nscaled"),
    )


def tree(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under `root` (hidden folders too): its mtime and its bytes."""
    found = {}
    for base, _dirs, names in os.walk(root):
        for name in names:
            path = Path(base, name)
            found[path.relative_to(root).as_posix()] = (path.stat().st_mtime_ns, path.read_bytes())
    return found


def test_an_equivalent_notebook_verifies_and_the_workspace_is_untouched(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    equal_project(tmp_path)
    exit_code, _out, err = cli("run", "nb.ipynb")  # a lock, a run history, outputs: all must stay as they are
    assert exit_code == 0, err
    assert (tmp_path / "pipelines/nb/nb2pipe.lock").is_file() and (tmp_path / "pipelines/nb/.nb2pipe/runs.db").is_file()
    before = tree(tmp_path)

    exit_code, out, err = cli("verify", "nb.ipynb")

    assert exit_code == 0, out + err
    lines = out.splitlines()
    assert lines[-1] == "verified: 2 cells, 1 file equal; 1 not comparable", out
    assert lines[:-1] == ["not comparable: cell 4: its output differs between runs of the notebook"]
    assert tree(tmp_path) == before, "verify wrote into the workspace"


def test_the_json_for_ci(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    equal_project(tmp_path)
    exit_code, out, err = cli("verify", "nb.ipynb", "--json")
    assert exit_code == 0, out + err
    report = json.loads(out)
    assert report["equal"] is True and report["exit"] == 0
    assert report["summary"] == "verified: 2 cells, 1 file equal; 1 not comparable"
    assert report["compared"] == {"cells": 2, "files": 1} == report["equal_count"]
    assert report["differences"] == [] and report["not_comparable"] == ["cell 4: its output differs between runs of the notebook"]
    assert report["plain_runs"] == 2
    assert not (tmp_path / "scaled.txt").exists()


def test_a_parameter_reaches_both_runs(tmp_path, monkeypatch, cli):
    """Without the value, the notebook fails on its own (exit 2); had it reached only one run, they would differ (exit 1)."""
    monkeypatch.chdir(tmp_path)
    write_nb(tmp_path / "nb.ipynb", code("scale = 2", "parameters"), md("## Check"), code("assert scale == 5, 'no -p'\nprint(scale * 2)"))
    exit_code, out, err = cli("verify", "nb.ipynb", "-p", "scale=5", "--jobs", "1")
    assert exit_code == 0, out + err
    assert out == "verified: 1 cell, 0 files equal; 0 not comparable\n"


def differing_project(root: Path) -> Path:
    """A notebook whose pipeline truly differs: each stage runs in a process of its own, so the
    process id stage a saw is not stage b's (the notebook runs in one process)."""
    return write_nb(
        root / "nb.ipynb",
        md("## First"),
        code("import os\nfirst_pid = os.getpid()\nprint('started')"),
        md("## Second"),
        code("same = os.getpid() == first_pid\nprint('one process:', same)"),
        code("with open('same.txt', 'w') as f:\n    f.write(str(same))"),
    )


def test_a_pipeline_that_differs_fails_naming_the_stage_and_the_cell(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    differing_project(tmp_path)
    exit_code, out, err = cli("verify", "nb.ipynb")
    assert exit_code == 1, out + err
    lines = out.splitlines()
    assert lines[:2] == [
        "differs: stage 'second', cell 4: line 1: the notebook printed 'one process: True', the pipeline 'one process: False'",
        "differs: file 'same.txt': the pipeline wrote other bytes (5 bytes; the notebook 4)",
    ], out
    assert lines[-1] == "verified: 2 cells, 0 files equal; 0 not comparable; 2 differ"

    exit_code, out, _err = cli("verify", "nb.ipynb", "--json")
    report = json.loads(out)
    assert exit_code == 1 and report["exit"] == 1 and report["equal"] is False
    cell, file = report["differences"]
    assert (cell["kind"], cell["cell"], cell["stage"]) == ("cell", 4, "second")
    assert "-one process: True" in cell["diff"] and "+one process: False" in cell["diff"]
    assert (file["kind"], file["file"]) == ("file", "same.txt")
    assert report["plain_runs"] == 4, "a difference is checked against more plain runs before it is reported"


def test_a_stage_that_fails_only_in_the_pipeline_is_a_difference(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    write_nb(
        tmp_path / "nb.ipynb",
        md("## First"),
        code("import os\nfirst_pid = os.getpid()\nprint('started')"),
        md("## Second"),
        code("assert os.getpid() == first_pid, 'not the same process'\nprint('same process')"),
    )
    exit_code, out, err = cli("verify", "nb.ipynb")
    assert exit_code == 1, out + err
    lines = out.splitlines()
    assert len(lines) == 2, out
    assert lines[0] == "differs: stage 'second' failed in cell 4: AssertionError: not the same process"
    assert lines[1] == "verified: 0 cells, 0 files equal; 0 not comparable; 1 differ; nothing compared, so equivalence is not shown"


def test_a_notebook_whose_only_output_varies_is_not_shown_equal(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    write_nb(tmp_path / "nb.ipynb", code("import uuid\nprint(uuid.uuid4())"))
    exit_code, out, err = cli("verify", "nb.ipynb")
    assert exit_code == 1, out + err
    assert out.splitlines() == [
        "not comparable: cell 1: its output differs between runs of the notebook",
        "verified: 0 cells, 0 files equal; 1 not comparable; nothing compared, so equivalence is not shown",
    ]


# --- bad input: exit 2, one line, nothing run ------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "argv", "expected"),
    [
        (None, ["verify", "missing.ipynb"], ["'missing.ipynb' does not exist"]),
        ("notes.txt", ["verify", "notes.txt"], ["'notes.txt' is not a notebook", ".ipynb"]),
        ("broken.ipynb", ["verify", "broken.ipynb"], ["broken.ipynb"]),
        ("nb.ipynb", ["verify", "nb.ipynb", "-p", "scale"], ["bad parameter 'scale'", "-p name=value"]),
        ("nb.ipynb", ["verify", "nb.ipynb", "--jobs", "0"], ["--jobs 0", "1 or more"]),
        ("nb.ipynb", ["verify", "nb.ipynb", "--kernel", "no-such-kernel"], ["kernel 'no-such-kernel' is not installed"]),
    ],
    ids=["missing", "not a notebook", "not JSON", "bad -p", "bad --jobs", "unknown kernel"],
)
def test_bad_input_is_one_error_line_and_exit_2(tmp_path, make, argv, expected):
    if make == "nb.ipynb":
        equal_project(tmp_path)
    elif make:
        (tmp_path / make).write_text("not a notebook {")
    result = run_cli(*argv, cwd=tmp_path)
    assert_one_line_error(result, *expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({make, "raw.csv"} - {None} if make == "nb.ipynb" else {make} - {None})


def test_a_notebook_nb2pipe_refuses_is_one_error_line(tmp_path):
    write_nb(tmp_path / "nb.ipynb", code("n = len('abc')", "parameters"), code("print(n)"))
    assert_one_line_error(run_cli("verify", "nb.ipynb", cwd=tmp_path), "is not a literal assignment")


def test_a_notebook_that_fails_on_its_own_is_bad_input_naming_the_cell(tmp_path):
    write_nb(tmp_path / "nb.ipynb", md("## A"), code("print('fine')"), code("1 / 0"))
    status, out, err = run_cli("verify", "nb.ipynb", cwd=tmp_path)
    assert status == 2 and out == "", err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err
    assert "cell 3 raised ZeroDivisionError" in errors[0] and "fix the notebook" in errors[0]


# --- the comparison itself -------------------------------------------------------------------------


def test_what_only_some_plain_runs_wrote_or_printed_is_not_comparable(tmp_path):
    (tmp_path / "x").write_text("1")
    (tmp_path / "y").write_text("2")
    runs = [PlainRun({1: ("a", ()), 2: ("b", ())}, {"x": tmp_path / "x"}), PlainRun({1: ("a", ()), 2: ("c", ())}, {})]
    result = compare(runs, PipelineRun({1: ("a", "s"), 2: ("zzz", "s")}, {"x": tmp_path / "y"}))
    assert result.not_comparable == [
        "cell 2: its output differs between runs of the notebook",
        "file x: written by only some runs of the notebook",
    ]
    assert (result.cells, result.cells_equal, result.files, result.differences) == (1, 1, 0, [])


def test_a_notebook_file_compares_without_its_timings(tmp_path):
    def executed(name: str, start: str) -> Path:
        nb = {"cells": [{"id": name, "metadata": {"papermill": {"start_time": start, "duration": 1.0}}}], "metadata": {}}
        (tmp_path / name).write_text(json.dumps(nb))
        return tmp_path / name

    runs = [PlainRun({}, {"o.ipynb": executed("a.ipynb", "1")}), PlainRun({}, {"o.ipynb": executed("b.ipynb", "2")})]
    result = compare(runs, PipelineRun({}, {"o.ipynb": executed("c.ipynb", "3")}))
    assert (result.files, result.files_equal, result.not_comparable, result.differences) == (1, 1, [], [])


@pytest.mark.parametrize(
    ("expected", "actual", "line"),
    [
        ("a\nb", "a\nc", "line 2: the notebook printed 'b', the pipeline 'c'"),
        ("a", "a\nmore", "line 2: the notebook printed nothing, the pipeline 'more'"),
        ("x" * 100, "y", "line 1: the notebook printed '" + "x" * 59 + "…', the pipeline 'y'"),
    ],
)
def test_a_difference_is_one_short_line(expected, actual, line):
    assert short_diff(expected, actual) == line


def test_a_comparison_of_nothing_is_not_equal():
    from nb2pipe.api.verification import VerifyReport

    report = VerifyReport("nb.ipynb", Comparison(), 2)
    assert (report.equal, report.exit_code) == (False, 1)


def test_a_kernel_that_does_not_start_for_the_pipeline_is_an_error_not_a_difference(tmp_path, monkeypatch, cli):
    """Nothing ran, so nothing can be said about the pipeline: exit 2 and one line, not "differs"."""
    from helpers import wait_until_gone
    from test_kernels import install_kernel, starts

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("NB2PIPE_KERNEL_START_TIMEOUT", "2")
    state = install_kernel(tmp_path / "jupyter", "late", "late", fails=-2)  # the plain run's kernel starts; later ones do not
    write_nb(tmp_path / "nb.ipynb", md("## One"), code("print(1)"))
    exit_code, out, err = cli("verify", "nb.ipynb", "--kernel", "late")
    assert exit_code == 2, out + err
    assert "Traceback" not in err and "differs" not in out + err, out + err
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    assert line.startswith("error: cannot verify: stage 'one': could not start kernel 'late': it did not answer within 2 s"), line
    wait_until_gone(starts(state), "the kernels started for verify end")


@pytest.mark.parametrize(
    "install",
    ["%pip install --no-index pip", "!pip install --no-index pip\nimport json"],
    ids=["magic-cell", "shell-line-beside-code"],
)
def test_an_install_cell_is_not_comparable_rather_than_a_difference(tmp_path, monkeypatch, cli, install):
    """The notebook prints what pip says; the pipeline installs nothing (export leaves install lines
    out and warns): not a difference, and not shown equal either."""
    monkeypatch.chdir(tmp_path)
    write_nb(tmp_path / "nb.ipynb", code(install), md("## Load"), code("print(sum([1, 2]))"))
    exit_code, out, err = cli("verify", "nb.ipynb", "--jobs", "1")
    assert exit_code == 0, out + err
    lines = out.splitlines()
    assert "not comparable: cell 1: installs packages, which the pipeline leaves to its environment" in lines, out
    assert lines[-1] == "verified: 1 cell, 0 files equal; 1 not comparable", out


# --- stopping it ---------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["SIGINT, ignored by inheritance", "SIGTERM", "SIGINT to a thread other than the main one"])
def test_an_interrupted_verify_stops_at_once_and_leaves_no_copy_or_kernel(tmp_path, how):
    """Ctrl-C or SIGTERM, however `nb2pipe verify` was started (a CI job in the background
    inherits SIGINT ignored) and whichever thread the OS hands the signal to."""
    temp, started, stacks = tmp_path / "tmp", tmp_path / "started", tmp_path / "stacks.txt"
    temp.mkdir()
    endless = f"import time\nopen({str(started)!r}, 'w').close()\nwhile True:\n    time.sleep(0.1)"
    write_nb(tmp_path / "nb.ipynb", md("## Load"), code("x = 1"), md("## Wait"), code(endless))
    proc = subprocess.Popen(
        nb2pipe_command("verify", "nb.ipynb"), cwd=tmp_path, env=stacks_env(stacks, TMPDIR=str(temp)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, start_new_session=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if "ignored" in how else None,
    )  # fmt: skip
    kernels: dict[int, float] = {}
    try:
        wait_until(started.exists, "the notebook's endless cell runs", timeout=300, proc=proc)
        kernels = kernel_processes(proc.pid)
        if "thread" in how:
            signal_another_thread(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM if how == "SIGTERM" else signal.SIGINT)
        _, err = output_or_stacks(proc, stacks, timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, err
    assert err.splitlines()[-1] == "interrupted"
    assert kernels and survivors(kernels, timeout=30) == [], "the notebook's kernel outlived the verify"
    assert not list(temp.glob("nb2pipe-verify-*")), "the copies verify ran in are removed"
