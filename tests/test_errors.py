"""Every user mistake: one line naming the thing and the fix, exit code 2, no traceback."""

from __future__ import annotations

import json

import pytest

from conftest import code, md, write_nb
from nb2pipe.errors import SpecError


def nb_file(tmp_path, *cells, **kw):
    return write_nb(tmp_path / "analysis.ipynb", *cells, **kw)


CASES = {
    "malformed json": (lambda p: (p / "analysis.ipynb").write_text('{"cells": [') and p / "analysis.ipynb", "is not valid JSON"),
    "json, not a notebook": (
        lambda p: (p / "analysis.ipynb").write_text('{"a": 1}') and p / "analysis.ipynb",
        "is JSON but not a Jupyter notebook",
    ),
    "nbformat 3": (
        lambda p: (
            (p / "analysis.ipynb").write_text(json.dumps({"nbformat": 3, "worksheets": [{"cells": []}], "metadata": {}}))
            and p / "analysis.ipynb"
        ),
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


# --- an unknown name gets its close match, whatever its case ------------------------------------


@pytest.fixture
def exported(tmp_path, cli, monkeypatch):
    """An exported pipeline (nothing run): parameter `alpha`, stages `train` and `report`."""
    monkeypatch.chdir(tmp_path)
    write_nb(
        tmp_path / "nb.ipynb",
        code("alpha = 0.5", "parameters"),
        code("x = alpha * 2", "stage:train"),
        code("print(x)", "stage:report"),
    )
    status, _, err = cli("export", "nb.ipynb")
    assert status == 0, err
    return tmp_path / "pipelines" / "nb"


def one_error(cli, *argv) -> str:
    status, out, err = cli(*argv)
    assert status == 2, out + err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("status", "{pipe}", "-p", "ALPHA=1"), "unknown parameter 'ALPHA'; did you mean 'alpha'?"),
        (("run", "{pipe}", "--dry-run", "--stage", "TRAIN"), "unknown stage 'TRAIN'; did you mean 'train'?"),
        (("run", "{pipe}", "--dry-run", "--from", "REPORT"), "unknown stage 'REPORT'; did you mean 'report'?"),
        (("run", "{pipe}", "--dry-run", "--stage", "zzz"), "unknown stage 'zzz'; known stages: train, report"),
    ],
    ids=["parameter", "stage", "from-stage", "nothing-close"],
)
def test_an_unknown_name_gets_the_known_name_it_differs_from_only_in_case(exported, cli, argv, expected):
    assert expected in one_error(cli, *(a.format(pipe=exported) for a in argv))


def test_an_unknown_key_of_the_pipeline_file_gets_its_close_match_whatever_its_case(exported, cli):
    spec = exported / "nb2pipe.yaml"
    spec.write_text(spec.read_text().replace("\nwdir:", "\nWDIR:"))
    assert "unknown key 'WDIR'; did you mean 'wdir'?" in one_error(cli, "status", str(exported))


def test_an_unknown_export_target_gets_its_close_match(exported):
    from nb2pipe.exporters import export_to

    with pytest.raises(SpecError, match="unknown export target 'DVC'; did you mean 'dvc'\\?"):
        export_to("DVC", exported)


# --- a parameter that params.yaml lacks: the same line wherever it is noticed -------------------


def test_a_parameter_params_yaml_lacks_is_the_same_line_naming_the_stage_everywhere(exported, cli):
    """status, run, the DVC, Airflow and Kubeflow exports and the stage runner they call all say
    which stage reads which parameter that which file does not set, and what to do."""
    import subprocess
    import sys

    from nb2pipe.exporters import export_to

    status, _, err = cli("run", str(exported))  # status checks the params of stages that ran
    assert status == 0, err
    params = exported / "params.yaml"
    params.write_text("beta: 1\n")  # the user dropped alpha by hand
    expected = (
        f"error: stage 'train' reads parameter 'alpha', which '{params}' does not set; "
        "add it there, or re-export the notebook"
    )
    assert one_error(cli, "status", str(exported)) == expected
    assert one_error(cli, "run", str(exported)) == expected
    for target in ("dvc", "airflow", "kubeflow"):
        with pytest.raises(SpecError) as raised:
            export_to(target, exported)
        assert f"error: {raised.value}" == expected, target
    proc = subprocess.run(
        [sys.executable, "-m", "nb2pipe.run.single", str(exported), "train"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.strip() == expected, proc.stderr
    assert not (exported / "dvc.yaml").exists() and params.read_text() == "beta: 1\n"
