"""`nb2pipe debug`: a failed stage's run as a notebook that fails again the same way, with the
run's inputs; then `run --from` resumes. Real kernels and papermill."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import code, write_nb
from helpers import assert_one_line_error, summary

PIPE = "pipelines/nb"


@pytest.fixture
def failing(tmp_path, monkeypatch, cli):
    """`check` fails on its third cell, with a value loaded from `prepare` and a parameter."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.csv").write_text("1\n2\n3\n")
    write_nb(
        tmp_path / "nb.ipynb",
        code("limit = 2", "parameters"),
        code("values = [int(x) for x in open('data.csv').read().split()]", "stage:prepare", "in:data.csv"),
        code("total = sum(values)", "stage:check"),
        code("print('total', total)"),
        code("if total > limit:\n    raise ValueError(f'total {total} is over {limit}')"),
        code("print('after the failure')"),
    )
    exit_code, _out, err = cli("run", "nb.ipynb")
    assert exit_code == 1 and "ValueError: total 6 is over 2" in err
    return tmp_path


def papermill_in(folder: Path, notebook: Path) -> subprocess.CompletedProcess[str]:
    """papermill on the debug notebook, started in another folder, as a user would run it."""
    folder.mkdir(exist_ok=True)
    papermill = Path(sys.executable).parent / "papermill"
    return subprocess.run([str(papermill), str(notebook), "out.ipynb"], cwd=folder, capture_output=True, text=True, timeout=300)


def failing_cell(notebook: Path) -> int:
    """The 1-based position of the cell whose output is an error, in an executed notebook, not
    counting the banners papermill adds around a failure."""
    cells = [c for c in json.loads(notebook.read_text())["cells"] if "papermill-error-cell-tag" not in c["metadata"].get("tags", [])]
    return next(i for i, c in enumerate(cells, 1) if any(o.get("output_type") == "error" for o in c.get("outputs", [])))


def test_the_debug_notebook_fails_at_the_marked_cell_with_the_same_exception_from_any_folder(failing, cli):
    exit_code, out, _err = cli("debug", PIPE, "check")
    assert exit_code == 0
    notebook = failing / PIPE / "debug" / "check.ipynb"
    assert f"wrote {notebook}" in out and "(ValueError: total 6 is over 2)" in out
    cells = json.loads(notebook.read_text())["cells"]
    marked = [i for i, c in enumerate(cells, 1) if c["metadata"].get("nb2pipe", {}).get("debug", {}).get("failed")]
    assert f"failed at cell {marked[0]} " in out
    assert "raises-exception" not in json.dumps(cells)
    assert "print('after the failure')" in "".join(cells[-1]["source"])  # the cells after it are kept
    assert all(c.get("outputs", []) == [] for c in cells)

    ran = papermill_in(failing / "elsewhere", notebook)
    assert ran.returncode != 0 and "ValueError: total 6 is over 2" in ran.stderr
    assert failing_cell(failing / "elsewhere" / "out.ipynb") == marked[0]
    assert (failing / PIPE / "debug" / ".gitignore").read_text().splitlines()[-1] == "*"


def test_a_variable_that_changed_since_the_run_is_loaded_as_the_run_had_it(failing, cli):
    (failing / "data.csv").write_text("1\n1\n")  # prepare's values change, and check passes now
    assert summary(cli("run", "nb.ipynb")[1]) == "2 ran, 0 up to date, 0 restored from cache, 0 failed"
    exit_code, out, _err = cli("debug", PIPE, "check")  # the last failed run: the first one
    assert exit_code == 0
    assert "pipelines/nb/.nb2pipe/vars/prepare/values: changed since the run; the notebook loads the run's version" in out
    ran = papermill_in(failing / "elsewhere", failing / PIPE / "debug" / "check.ipynb")
    assert "ValueError: total 6 is over 2" in ran.stderr  # the run's values, not today's (total 2)


def test_an_input_file_that_changed_since_the_run_is_reported(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.csv").write_text("5\n")
    write_nb(tmp_path / "nb.ipynb", code("n = int(open('data.csv').read())\nassert n < 3, f'n is {n}'", "stage:read", "in:data.csv"))
    assert cli("run", "nb.ipynb")[0] == 1
    (tmp_path / "data.csv").write_text("1\n")
    exit_code, _out, err = cli("debug", PIPE, "read")
    assert exit_code == 0
    assert "warning: data.csv changed since the run; the notebook reads it as it is now" in err
    ran = papermill_in(tmp_path / "elsewhere", tmp_path / PIPE / "debug" / "read.ipynb")
    executed = json.loads((tmp_path / "elsewhere" / "out.ipynb").read_text())
    first = json.dumps(executed["cells"][0]["outputs"])
    assert "changed since the run, so not what it read: data.csv" in first
    assert ran.returncode == 0  # today's data.csv passes: the report says why it no longer fails


def test_an_edited_debug_notebook_is_not_overwritten_without_force(failing, cli):
    assert cli("debug", PIPE, "check")[0] == 0
    notebook = failing / PIPE / "debug" / "check.ipynb"
    edited = json.loads(notebook.read_text())
    edited["cells"][-1]["source"] = "print('my probe')"
    notebook.write_text(json.dumps(edited))
    exit_code, _out, err = cli("debug", PIPE, "check")
    assert_one_line_error((exit_code, "", err), "has edits of yours")
    assert "my probe" in notebook.read_text()
    assert cli("debug", PIPE, "check", "--force")[0] == 0
    assert "my probe" not in notebook.read_text()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["debug", PIPE, "chek"], "unknown stage 'chek'"),
        (["debug", PIPE, "check", "--run", "nope"], "no run or tag 'nope'"),
        (["debug", "pipelines/other", "check"], "no pipeline at 'pipelines/other'"),
    ],
)
def test_debug_mistakes_are_one_line(failing, cli, argv, expected):
    assert_one_line_error(cli(*argv), expected)


def test_a_stage_that_never_ran_has_nothing_to_debug(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    write_nb(tmp_path / "nb.ipynb", code("x = 1", "stage:a"), code("y = x", "stage:b"))
    assert cli("export", "nb.ipynb")[0] == 0
    assert_one_line_error(cli("debug", PIPE, "a"), "stage 'a' has no run with an executed notebook")


def test_after_the_fix_resume_runs_the_failed_stage_and_what_follows_only(failing, cli):
    notebook = json.loads((failing / "nb.ipynb").read_text())
    notebook["cells"][0]["source"] = "limit = 10"
    (failing / "nb.ipynb").write_text(json.dumps(notebook))
    exit_code, out, err = cli("run", "nb.ipynb", "--from", "check")
    assert exit_code == 0, err
    assert summary(out) == "1 ran, 1 up to date, 0 restored from cache, 0 failed"  # prepare reused, and said so
    assert "ran check" in err and "ran prepare" not in err


def test_apply_copies_the_fixed_cell_back_into_the_notebook_then_resume_passes(failing, cli):
    assert cli("debug", PIPE, "check")[0] == 0
    notebook = failing / PIPE / "debug" / "check.ipynb"
    debug = json.loads(notebook.read_text())
    fixed = next(c for c in debug["cells"] if "raise ValueError" in "".join(c["source"]))
    fixed["source"] = "if total > limit * 10:\n    raise ValueError('far over')"
    notebook.write_text(json.dumps(debug))
    exit_code, out, _err = cli("debug", PIPE, "check", "--apply")
    assert (exit_code, out.strip()) == (0, "copied into the notebook: cell 5")
    cells = json.loads((failing / "nb.ipynb").read_text())["cells"]
    assert "".join(cells[4]["source"]) == "if total > limit * 10:\n    raise ValueError('far over')"
    assert "".join(cells[3]["source"]) == "print('total', total)"  # the others as they were
    assert cli("debug", PIPE, "check", "--apply")[1].strip() == "nothing to copy: no cell of the debug notebook was edited"
    exit_code, out, err = cli("run", "nb.ipynb", "--from", "check")
    assert exit_code == 0, err


def test_apply_refuses_when_the_notebook_cell_changed_meanwhile(failing, cli):
    assert cli("debug", PIPE, "check")[0] == 0
    notebook = failing / PIPE / "debug" / "check.ipynb"
    debug = json.loads(notebook.read_text())
    next(c for c in debug["cells"] if "raise ValueError" in "".join(c["source"]))["source"] = "pass"
    notebook.write_text(json.dumps(debug))
    source = json.loads((failing / "nb.ipynb").read_text())
    source["cells"][4]["source"] = "print('edited in the notebook too')"
    (failing / "nb.ipynb").write_text(json.dumps(source))
    before = (failing / "nb.ipynb").read_bytes()
    assert_one_line_error(cli("debug", PIPE, "check", "--apply"), "cell 5 of", "changed since the debug notebook was written")
    assert (failing / "nb.ipynb").read_bytes() == before


def test_apply_finds_the_cell_by_its_id_after_cells_were_added_above_it(failing, cli):
    source = json.loads((failing / "nb.ipynb").read_text())
    for i, cell in enumerate(source["cells"]):
        cell["id"] = f"cell-{i}"
    source["nbformat_minor"] = 5
    (failing / "nb.ipynb").write_text(json.dumps(source))
    assert cli("debug", PIPE, "check")[0] == 0
    notebook = failing / PIPE / "debug" / "check.ipynb"
    debug = json.loads(notebook.read_text())
    next(c for c in debug["cells"] if "raise ValueError" in "".join(c["source"]))["source"] = "pass  # fixed"
    notebook.write_text(json.dumps(debug))
    source["cells"].insert(0, {"cell_type": "markdown", "id": "intro", "metadata": {}, "source": "# added above"})
    (failing / "nb.ipynb").write_text(json.dumps(source))
    exit_code, out, _err = cli("debug", PIPE, "check", "--apply")
    assert (exit_code, out.strip()) == (0, "copied into the notebook: cell 6")
    cells = json.loads((failing / "nb.ipynb").read_text())["cells"]
    assert (cells[5]["id"], "".join(cells[5]["source"])) == ("cell-4", "pass  # fixed")


def test_a_gitignore_of_the_users_in_the_debug_folder_is_left_as_it_is(failing, cli):
    ignore = failing / PIPE / "debug" / ".gitignore"
    ignore.parent.mkdir()
    ignore.write_text("# mine\n*.ipynb\n")
    assert cli("debug", PIPE, "check")[0] == 0
    assert ignore.read_text() == "# mine\n*.ipynb\n"
