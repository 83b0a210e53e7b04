"""Names from a notebook reach DVC, Airflow and Kubeflow files as data, checked with the real tools.

The pipeline folder's name below would, pasted into Python source, close a docstring and run
`Path("pwned").touch()`; the parameters are named like the modules a generated program imports.
Every test is marked `exports`; a test whose tool is not importable is skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import code, write_nb
from nb2pipe.export import export_notebook
from nb2pipe.exporters import export_to

pytestmark = pytest.mark.exports

EVIL = 'x"""+__import__("pathlib").Path("pwned").touch()+"""'
AMBIGUOUS = ["1e3", "0o17", "0x1F", "yes", "on", "~", ".inf", "1_000", "null", "2001-12-14"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    """A notebook whose stages `class` and `use` write what they were given; exported to a
    pipeline folder named EVIL. The current directory is the project."""
    monkeypatch.chdir(tmp_path)
    assignments = "\n".join(f"s{i} = {v!r}" for i, v in enumerate(AMBIGUOUS))
    notebook = write_nb(
        tmp_path / "nb.ipynb",
        code("import json as j", "setup"),
        code(f"sys = 2\njson = 'a\"b'\n{assignments}", "parameters"),
        code("got = [sys, json]\nwith open('class.json', 'w') as f:\n    j.dump(got, f)", "stage:class", "out:class.json"),
        code(
            f"with open('use.json', 'w') as f:\n    j.dump([{', '.join(f's{i}' for i in range(len(AMBIGUOUS)))}], f)",
            "stage:use", "prev:class", "out:use.json",
        ),
    )
    export_notebook(notebook, tmp_path / "pipelines" / EVIL)
    return tmp_path


def _no_code_ran(project: Path) -> None:
    assert not list(project.rglob("pwned")), "export ran code taken from a name"


def test_kubeflow_export_runs_no_generated_code_and_the_pipeline_still_runs(project: Path, tmp_path_factory) -> None:
    pytest.importorskip("kfp", reason="the kfp SDK is not installed: pip install 'nb2pipe[kubeflow]'")
    (path,) = export_to("kubeflow", project / "pipelines" / EVIL)
    _no_code_ran(project)
    spec, *_ = yaml.safe_load_all(path.read_text(encoding="utf-8"))
    assert spec["pipelineInfo"]["description"] == f"nb2pipe pipeline {EVIL}"
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["nb2pipe_pipeline"]["defaultValue"] == f"pipelines/{EVIL}"
    assert inputs["json"]["defaultValue"] == 'a"b' and inputs["s0"]["defaultValue"] == "1e3"
    assert spec["root"]["dag"]["tasks"]["use"]["dependentTasks"] == ["class"]

    runner = (
        "import sys, kfp.components, kfp.local\n"
        "kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2])\n"
        "kfp.components.load_component_from_file(sys.argv[1])(sys=5)\n"
    )
    root = tmp_path_factory.mktemp("kfp-root")
    result = subprocess.run([sys.executable, "-c", runner, str(path), str(root)], cwd=project, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert json.loads((project / "class.json").read_text()) == [5, 'a"b']  # inputs named sys and json arrived
    assert json.loads((project / "use.json").read_text()) == AMBIGUOUS
    _no_code_ran(project)


def test_dvc_reads_params_and_stages_as_nb2pipe_wrote_them(project: Path) -> None:
    pytest.importorskip("dvc", reason="DVC is not installed: pip install 'nb2pipe[dvc]'")
    from dvc.utils.serialize import parse_yaml

    folder = project / "pipelines" / EVIL
    (path,) = export_to("dvc", folder)
    for file in (folder / "params.yaml", path):
        text = file.read_text(encoding="utf-8")
        assert parse_yaml(text, str(file)) == yaml.safe_load(text), f"DVC reads {file.name} differently"
    params = parse_yaml((folder / "params.yaml").read_text(encoding="utf-8"), "params.yaml")
    assert [params[f"s{i}"] for i in range(len(AMBIGUOUS))] == AMBIGUOUS
    stages = parse_yaml(path.read_text(encoding="utf-8"), "dvc.yaml")["stages"]
    assert list(stages) == ["class", "use"]
    assert stages["use"]["params"] == [{f"pipelines/{EVIL}/params.yaml": [f"s{i}" for i in range(len(AMBIGUOUS))]}]


def test_airflow_loads_the_dag_of_a_nastily_named_pipeline(project: Path, tmp_path_factory) -> None:
    pytest.importorskip("airflow.sdk", reason="Airflow 3 is not installed: pip install 'nb2pipe[airflow]'")
    (path,) = export_to("airflow", project / "pipelines" / EVIL)
    probe = (
        "import json, sys\n"
        "try:\n    from airflow.dag_processing.dagbag import DagBag\n"
        "except ImportError:\n    from airflow.models.dagbag import DagBag\n"
        "bag = DagBag(dag_folder=sys.argv[1])  # examples are off: AIRFLOW__CORE__LOAD_EXAMPLES=False\n"
        "print(json.dumps({'errors': {k: str(v) for k, v in bag.import_errors.items()},\n"
        "                  'dags': {d: sorted(t.task_id for t in bag.dags[d].tasks) for d in bag.dags},\n"
        "                  'params': {d: {k: bag.dags[d].params[k] for k in bag.dags[d].params} for d in bag.dags}}))\n"
    )
    home = tmp_path_factory.mktemp("airflow-home")
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    result = subprocess.run(
        [sys.executable, "-c", probe, str(path.parent)], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    loaded = json.loads(result.stdout.splitlines()[-1])
    assert loaded["errors"] == {}
    (dag_id,) = loaded["dags"]
    assert loaded["dags"][dag_id] == ["class", "use"]
    assert loaded["params"][dag_id]["json"] == 'a"b' and loaded["params"][dag_id]["s0"] == "1e3"
    _no_code_ran(project)
