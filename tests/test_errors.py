"""Every user mistake: one line naming the thing and the fix, exit code 2, no traceback."""

from __future__ import annotations

import json

import pytest

from conftest import code, md, write_nb


def nb_file(tmp_path, *cells, **kw):
    return write_nb(tmp_path / "analysis.ipynb", *cells, **kw)


CASES = {
    "malformed json": (lambda p: (p / "analysis.ipynb").write_text('{"cells": [') and p / "analysis.ipynb", "is not valid JSON"),
    "json, not a notebook": (lambda p: (p / "analysis.ipynb").write_text('{"a": 1}') and p / "analysis.ipynb", "is JSON but not a Jupyter notebook"),
    "nbformat 3": (
        lambda p: (p / "analysis.ipynb").write_text(json.dumps({"nbformat": 3, "worksheets": [{"cells": []}], "metadata": {}}))
        and p / "analysis.ipynb",
        "nbformat 3, older than nb2pipe reads",
    ),
    "missing file": (lambda p: p / "nope.ipynb", "does not exist"),
    "no code cells": (lambda p: nb_file(p, md("# only text")), "has no code cells"),
    "bad stage name": (lambda p: nb_file(p, code("x = 1", "stage:../x")), "cell 1 ('x = 1'): bad stage name in tag 'stage:../x'"),
    "empty stage tag": (lambda p: nb_file(p, code("x = 1", "stage:")), "bad stage name in tag 'stage:'"),
    "cycle": (
        lambda p: nb_file(p, code("x = 1", "stage:a", "after:b"), code("y = 2", "stage:b", "after:a")),
        "cycle: a -> b -> a",
    ),
    "unknown after": (
        lambda p: nb_file(p, code("x = 1", "stage:train"), code("y = 2", "stage:test", "prev:trian")),
        "unknown stage 'trian'; did you mean 'train'?",
    ),
    "two parameters cells": (
        lambda p: nb_file(p, code("a = 1", "parameters"), code("b = 2", "parameters"), code("print(a)")),
        "two parameters cells: cell 1 and cell 2",
    ),
    "non-literal parameters": (
        lambda p: nb_file(p, code("a = 1\nb = len([1])", "parameters"), code("print(a)")),
        "line 2: 'b = len([1])' is not a literal assignment",
    ),
    "work above the first stage": (
        lambda p: nb_file(p, code("df = load()"), code("x = 1", "stage:a")),
        "cell 1 ('df = load()') is above the first stage",
    ),
    "same output twice": (
        lambda p: nb_file(p, code("x = 1", "stage:a", "out:data/x.csv"), code("y = 2", "stage:b", "out:data/x.csv")),
        "'data/x.csv' is declared as an output of both stage 'a' and stage 'b'",
    ),
    "empty out tag": (lambda p: nb_file(p, code("x = 1", "stage:a", "out:")), "tag 'out:' names no file"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_export_errors_are_one_clear_line(tmp_path, cli, case):
    make, expected = CASES[case]
    path = make(tmp_path)
    status, out, err = cli("export", path)
    assert status == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expected in err
    assert "Traceback" not in err + out
    assert not (tmp_path / "pipelines").exists(), "a failed export must write nothing"


def test_output_folder_that_would_overwrite_the_notebook(tmp_path, cli):
    path = nb_file(tmp_path, code("x = 1", "stage:stages"))
    status, _, err = cli("export", path, "-o", path)
    assert status == 2 and "would overwrite the notebook 'analysis.ipynb'" in err


def test_show_of_a_folder_without_a_pipeline(tmp_path, cli):
    status, _, err = cli("show", tmp_path)
    assert status == 2 and "nb2pipe.yaml' not found" in err


def test_malformed_pipeline_file(tmp_path, cli):
    (tmp_path / "nb2pipe.yaml").write_text("version: 1\nstages: [a\n")
    status, _, err = cli("show", tmp_path)
    assert status == 2 and "is not valid YAML at line" in err


def test_shell_string_cmd_is_refused(tmp_path, cli):
    (tmp_path / "nb2pipe.yaml").write_text("version: 1\nstages:\n  fetch:\n    cmd: python fetch.py && rm -rf /\n")
    status, _, err = cli("show", tmp_path)
    assert status == 2 and "cmd must be an argv list" in err


def test_debug_shows_the_traceback(tmp_path):
    from nb2pipe.cli import main
    from nb2pipe.errors import NotebookError

    with pytest.raises(NotebookError):
        main(["--debug", "export", str(tmp_path / "missing.ipynb")])
