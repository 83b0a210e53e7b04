"""`nb2pipe sweep ... --export airflow|kubeflow|dvc` without the engines: its error lines, the files
it writes, and trial values carried as data (the real tools run them in tests/exports/).

A user's mistake is one `error:` line naming the thing and the fix, exit status 2, no traceback,
nothing written. A trial value that would be code if pasted into a generated file (quotes,
`'); import os; os.system(...) #`, newlines, `${...}`) reaches it as data only.
"""

from __future__ import annotations

import ast
import json
import shlex
from pathlib import Path

import pytest

from conftest import code, write_nb
from nb2pipe.exporters.sweep_dvc import hydra_value

ATTACK = "'); import os; os.system('touch pwned') #"
NASTY = [ATTACK, "two\nlines", 'a"""b\\', "${oc.env:HOME}", "it's"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    """nb.ipynb: `load` reads `label`, `train` reads `label` and `depth`; the current directory is the project."""
    monkeypatch.chdir(tmp_path)
    write_nb(
        tmp_path / "nb.ipynb",
        code("label = 'a'\ndepth = 1", "parameters"),
        code("data = [1, len(label)]", "stage:load"),
        code("score = len(label) + depth + sum(data)", "stage:train"),
    )
    return tmp_path


def _error_line(cli, *argv: str) -> str:
    status, out, err = cli("sweep", *argv)
    assert status == 2, (out, err)
    assert out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["-p", "depth=1,2", "--export", "argo"], ["unknown export target 'argo'", "airflow, kubeflow, dvc"]),
        (["-p", "depth=1,2", "--export", "airflw"], ["unknown export target 'airflw'", "did you mean 'airflow'?"]),
        (["-p", "depth=2", "--export", "dvc"], ["varies no parameter", "-p name=v1,v2"]),
        (["-p", "depth", "--export", "dvc"], ["bad parameter 'depth'", "-p name=v1,v2"]),
        (["-p", "depht=1,2", "--export", "dvc"], ["unknown parameter 'depht'", "did you mean 'depth'?"]),
        (["-p", "depth=range(0, 1)", "--export", "airflow"], ["depth", "start, stop and step"]),
        (["-p", "depth=1,2", "--export", "dvc", "--dry-run"], ["--export runs nothing", "drop --dry-run"]),
    ],
)
def test_a_mistake_is_one_error_line_naming_it_and_the_fix(project: Path, cli, argv, words):
    line = _error_line(cli, "nb.ipynb", *argv)
    for word in words:
        assert word in line, line
    assert not (project / "dags").exists() and not (project / "dvc").exists()


def test_a_folder_that_is_no_pipeline_is_named(project: Path, cli):
    line = _error_line(cli, "nowhere", "-p", "depth=1,2", "--export", "dvc")
    assert "'nowhere' is not a pipeline folder or a notebook" in line


def test_export_plans_like_the_sweep_and_runs_nothing(project: Path, cli):
    status, out, err = cli("sweep", "nb.ipynb", "-p", "depth=1,2,3", "--export", "airflow")
    assert status == 0, err
    assert out.splitlines() == ["wrote dags/nb_sweep.py"]
    status, plan, _ = cli("sweep", "pipelines/nb", "-p", "depth=1,2,3", "--dry-run", "--json")
    sweep_id = json.loads(plan)["sweep"]
    assert f"sweep {sweep_id}: 3 trials for airflow; shared stages (run once): load" in err
    text = (project / "dags/nb_sweep.py").read_text(encoding="utf-8")
    assert f"SWEEP = {sweep_id!r}" in text
    assert "'load': PythonOperator(task_id='load'" in text
    mapped = "PythonOperator.partial(task_id='train', python_callable=run_trial_stage, map_index_template=TRIAL_LABEL)"
    assert f"'train': {mapped}.expand(" in text
    assert not (project / "pipelines/nb/.nb2pipe/runs.db").exists() and not list(project.rglob("*-runs"))


def test_a_foreign_file_is_not_overwritten_without_force(project: Path, cli):
    (project / "dvc").mkdir()
    (project / "dvc/nb-sweep.sh").write_text("echo mine\n")
    line = _error_line(cli, "nb.ipynb", "-p", "depth=1,2", "--export", "dvc")
    assert "was not written by nb2pipe" in line and "--force" in line
    assert cli("sweep", "nb.ipynb", "-p", "depth=1,2", "--export", "dvc", "--force")[0] == 0
    assert "dvc exp run --queue" in (project / "dvc/nb-sweep.sh").read_text()


def _nasty_sweep(project: Path) -> Path:
    values = project / "values.yaml"
    values.write_text(json.dumps({"grid": {"label": NASTY}}))
    return values


def test_airflow_dag_holds_nasty_trial_values_as_data(project: Path, cli):
    status, _, err = cli("sweep", "nb.ipynb", "--params-file", _nasty_sweep(project), "--export", "airflow")
    assert status == 0, err
    tree = ast.parse((project / "dags/nb_sweep.py").read_text(encoding="utf-8"))
    calls = {ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    assert not {c for c in calls if "system" in c or c == "__import__"}, calls
    (trials,) = [n.value for n in tree.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "TRIALS"]
    assert isinstance(trials, ast.Call) and isinstance(trials.args[0], ast.Constant)
    assert json.loads(trials.args[0].value) == [{"label": value} for value in NASTY]
    assert not list(project.rglob("pwned"))


def test_dvc_script_holds_nasty_trial_values_as_single_shell_words(project: Path, cli):
    status, _, err = cli("sweep", "nb.ipynb", "--params-file", _nasty_sweep(project), "--export", "dvc")
    assert status == 0, err
    text = (project / "dvc/nb-sweep.sh").read_text(encoding="utf-8")
    words = _shell_words(text)
    sets = [words[i + 1] for i, word in enumerate(words) if word == "-S"]
    assert sets == [f"pipelines/nb/params.yaml:label={hydra_value(value)}" for value in NASTY]
    assert words.count("dvc") == len(NASTY) + 1  # one dvc exp run per trial, dvc queue start
    assert "\ndvc repro" not in text  # both stages read label: nothing is shared


def _shell_words(script: str) -> list[str]:
    """The words of a shell script as sh splits them: comments dropped, quotes removed."""
    lexer = shlex.shlex(script, posix=True)
    lexer.whitespace_split = True
    return list(lexer)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, "1"), (0.5, "0.5"), (True, "true"), (None, "null"), (float("inf"), "inf"),
        ("it's", r"'it\'s'"), ("end\\", "'end\\\\'"), ("${x}", r"'\${x}'"), ([1, "a"], "[1,'a']"), ({"k": 2}, "{k:2}"),
    ],
)  # fmt: skip
def test_hydra_value_writes_the_override_dvc_parses(value, expected):
    assert hydra_value(value) == expected


def test_a_kubeflow_option_is_refused_for_another_engine(project: Path, cli):
    line = _error_line(cli, "nb.ipynb", "-p", "depth=1,2", "--export", "airflow", "--image", "python:3.12")
    assert "option 'image' does not apply to --export airflow" in line


def test_a_value_every_trial_sets_alike_reaches_the_shared_stages(project: Path, cli):
    """`-p label=b` beside `-p depth=1,2`: `load` is shared, and runs with label=b, not params.yaml's 'a'."""
    for engine in ("airflow", "dvc"):
        status, _, err = cli("sweep", "nb.ipynb", "-p", "depth=1,2", "-p", "label=b", "--export", engine)
        assert status == 0, err
        assert "shared stages (run once): load" in err
    tree = ast.parse((project / "dags/nb_sweep.py").read_text(encoding="utf-8"))
    (common,) = [n.value for n in tree.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "COMMON"]
    assert isinstance(common, ast.Call) and json.loads(common.args[0].value) == {"label": "b"}
    assert "{**dict(params), **COMMON}" in ast.unparse(tree)
    script = (project / "dvc/nb-sweep.sh").read_text(encoding="utf-8")
    assert "\ndvc repro" not in script  # params.yaml holds label='a': the experiments run load, with label=b
    assert _shell_words(script).count("pipelines/nb/params.yaml:label='b'") == 2


def test_output_folder_moves_the_engine_files_and_they_still_find_the_pipeline(project: Path, cli):
    assert cli("sweep", "nb.ipynb", "-p", "depth=1,2", "--export", "airflow", "-o", "build/engines")[0] == 0
    dag = project / "build/engines/dags/nb_sweep.py"
    tree = ast.parse(dag.read_text(encoding="utf-8"))
    (pipeline,) = [n.value for n in tree.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "PIPELINE"]
    assert isinstance(pipeline, ast.BinOp) and isinstance(pipeline.right, ast.Constant)
    assert (dag.parent / pipeline.right.value).resolve() == (project / "pipelines/nb").resolve()
    assert cli("sweep", "nb.ipynb", "-p", "depth=1,2", "--export", "dvc", "-o", "build/engines")[0] == 0
    assert (project / "pipelines/nb/dvc.yaml").is_file()  # where DVC looks for it, whatever -o says
    script = (project / "build/engines/dvc/nb-sweep.sh").read_text(encoding="utf-8")
    assert 'cd "$(dirname "$0")"/../../..\n' in script  # build/engines/dvc -> the notebook's folder
