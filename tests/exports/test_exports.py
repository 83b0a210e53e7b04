"""`nb2pipe export --to dvc|airflow|kubeflow`, each checked against the real tool (DESIGN §7).

Every test is marked `exports`; a test whose tool is not importable is skipped and says what to
install. They run the stages for real (papermill kernels), so they take a few minutes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from nb2pipe.errors import OverwriteError, SpecError
from nb2pipe.exporters import EXPORTERS, export_to, render

pytestmark = pytest.mark.exports

PIPELINE = Path("pipelines/tiny")

# scale -> make; left_offset -> left; right_offset -> right; combine reads no parameter.
# `left` takes the variable `base` from `make` (handed through .nb2pipe/vars), `right` reads the
# file make wrote. `right` carries Kale's step settings for the Kubeflow export.
CELLS = [
    ("markdown", "# Tiny pipeline for the export tests", []),
    ("code", "import json\nimport os", ["imports"]),
    ("code", "scale = 2\nleft_offset = 10\nright_offset = 100", ["pipeline-parameters"]),
    (
        "code",
        "base = [i * scale for i in range(3)]\nos.makedirs('data', exist_ok=True)\n"
        "with open('data/base.json', 'w') as f:\n    json.dump(base, f)",
        ["step:make", "out:data/base.json"],
    ),
    (
        "code",
        "left = [b + left_offset for b in base]\nos.makedirs('out', exist_ok=True)\n"
        "with open('out/left.json', 'w') as f:\n    json.dump(left, f)",
        ["step:left", "prev:make", "out:out/left.json"],
    ),
    (
        "code",
        "with open('data/base.json') as f:\n    right = [b + right_offset for b in json.load(f)]\n"
        "os.makedirs('out', exist_ok=True)\nwith open('out/right.json', 'w') as f:\n    json.dump(right, f)",
        [
            "step:right", "prev:make", "in:data/base.json", "out:out/right.json",
            "image:python:3.12-slim", "limit:cpu:2", "limit:memory:1Gi", "limit:nvidia.com/gpu:1",
            "label:team:ml", "annotation:nb2pipe.io/owner:tests",
        ],
    ),
    (
        "code",
        "with open('out/left.json') as f:\n    left = json.load(f)\nwith open('out/right.json') as f:\n    right = json.load(f)",
        ["step:combine", "prev:left", "prev:right", "in:out/left.json", "in:out/right.json"],
    ),
    ("code", "total = sum(left) + sum(right)", ["pipeline-metrics"]),
]
STAGES = ["make", "left", "right", "combine"]


def write_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, source, tags in CELLS:
        cell = nbformat.v4.new_markdown_cell(source) if kind == "markdown" else nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder holding tiny.ipynb and its exported pipeline folder pipelines/tiny/."""
    from nb2pipe.export import export_notebook

    notebook = write_notebook(tmp_path / "tiny.ipynb")
    export_notebook(notebook)
    return tmp_path


def tool_env(**extra: str) -> dict[str, str]:
    """The environment for the engines: this Python's bin first on PATH (DVC runs `python`),
    no analytics, nothing from the user's configuration."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="nb2pipe", GIT_AUTHOR_EMAIL="nb2pipe@example.invalid",
        GIT_COMMITTER_NAME="nb2pipe", GIT_COMMITTER_EMAIL="nb2pipe@example.invalid",
        GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1",
    )
    env.update(extra)
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited with {result.returncode}\n--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}"
        )
    return result


def require_git() -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed (DVC's params tracking needs a git repository)")


def _set_param(project: Path, name: str, value: object) -> None:
    path = project / PIPELINE / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params[name] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def _json(path: Path):
    return json.loads(path.read_text())


# --- the registry --------------------------------------------------------------------------------


def test_unknown_target_names_the_known_ones(project: Path) -> None:
    with pytest.raises(SpecError, match="unknown export target 'argo'; known targets: dvc, airflow, kubeflow"):
        export_to("argo", project / PIPELINE)
    assert list(EXPORTERS) == ["dvc", "airflow", "kubeflow"]


def test_an_option_the_target_does_not_take_is_refused(project: Path) -> None:
    with pytest.raises(SpecError, match="option 'image' does not apply to --to dvc"):
        export_to("dvc", project / PIPELINE, image="python:3.12")
    export_to("dvc", project / PIPELINE, image=None)  # None means "not given"


@pytest.mark.parametrize("target", ["dvc", "airflow"])
def test_renderers_are_deterministic_and_refuse_foreign_files(project: Path, target: str) -> None:
    _, first = render(target, project / PIPELINE)
    _, second = render(target, project / PIPELINE)
    assert first == second
    (rel,) = first
    written = export_to(target, project / PIPELINE)
    assert written == [project / rel]
    assert (project / rel).read_text() == first[rel]
    (project / rel).write_text("# the user's own file\n")
    with pytest.raises(OverwriteError, match="not written by nb2pipe"):
        export_to(target, project / PIPELINE)
    export_to(target, project / PIPELINE, force=True)
    assert (project / rel).read_text() == first[rel]


# --- DVC -------------------------------------------------------------------------------------------


def _dvc_repro(project: Path, env: dict) -> tuple[set[str], set[str]]:
    out = run(["dvc", "repro", str(PIPELINE / "dvc.yaml")], project, env).stdout
    ran = set(re.findall(r"Running stage '(?:[^']*:)?([\w-]+)'", out))
    skipped = set(re.findall(r"Stage '(?:[^']*:)?([\w-]+)' (?:didn't change|is cached)", out))
    return ran, skipped


def test_dvc_repro_runs_the_pipeline_and_reruns_only_what_a_param_change_touches(project: Path) -> None:
    pytest.importorskip("dvc", reason="DVC is not installed: pip install 'nb2pipe[dvc]'")
    require_git()
    env = tool_env()
    (path,) = export_to("dvc", project / PIPELINE)
    assert path == project / PIPELINE / "dvc.yaml"
    spec = yaml.safe_load(path.read_text())["stages"]
    assert list(spec) == STAGES
    assert spec["right"]["params"] == [{"pipelines/tiny/params.yaml": ["right_offset"]}]
    assert spec["combine"]["metrics"] == [{"pipelines/tiny/metrics/combine.json": {"cache": False}}]
    assert "pipelines/tiny/.nb2pipe/vars/make/base" in spec["left"]["deps"]

    run(["git", "init", "-q"], project, env)
    run(["dvc", "init", "-q"], project, env)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-qm", "pipeline"], project, env)

    ran, _ = _dvc_repro(project, env)
    assert ran == set(STAGES)
    assert _json(project / "out/right.json") == [100, 102, 104]
    assert _json(project / PIPELINE / "metrics/combine.json") == {"total": 342}
    assert json.loads(run(["dvc", "status", "--json"], project, env).stdout) == {}
    assert (project / PIPELINE / ".nb2pipe/dvc-runs/right.ipynb").is_file()

    ran, skipped = _dvc_repro(project, env)  # nothing changed: nothing runs
    assert ran == set() and skipped == set(STAGES)

    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-qm", "ran"], project, env)
    _set_param(project, "right_offset", 1000)
    diff = json.loads(run(["dvc", "params", "diff", "--json"], project, env).stdout)
    change = diff["pipelines/tiny/params.yaml"]["right_offset"]
    assert (change["old"], change["new"]) == (100, 1000)
    ran, skipped = _dvc_repro(project, env)
    assert ran == {"right", "combine"}  # right reads it; combine reads right's output
    assert {"make", "left"} <= skipped
    assert _json(project / "out/right.json") == [1000, 1002, 1004]
    assert json.loads(run(["dvc", "status", "--json"], project, env).stdout) == {}


# --- Airflow ---------------------------------------------------------------------------------------

# a script's start that loads the DAG folder given as its argument into `bag`
DAGBAG_LOAD = """
import json, sys
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow before 3.1
    from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])  # examples are off: AIRFLOW__CORE__LOAD_EXAMPLES=False
"""

_DAGBAG = DAGBAG_LOAD + """dag = bag.dags.get("tiny")
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "tasks": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks} if dag else None,
    "params": {k: dag.params[k] for k in dag.params} if dag else None,
}))
"""


def test_airflow_dag_loads_and_dags_test_runs_with_a_conf_override(project: Path, tmp_path_factory) -> None:
    pytest.importorskip("airflow.sdk", reason="Airflow 3 is not installed: pip install 'nb2pipe[airflow]'")
    home = tmp_path_factory.mktemp("airflow-home")
    (path,) = export_to("airflow", project / PIPELINE)
    assert path == project / "dags/tiny.py"
    env = tool_env(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(project / "dags"),
        AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
    )

    loaded = json.loads(run([sys.executable, "-c", _DAGBAG, str(project / "dags")], project, env).stdout.splitlines()[-1])
    assert loaded["errors"] == {}
    assert loaded["tasks"] == {"make": [], "left": ["make"], "right": ["make"], "combine": ["left", "right"]}
    assert loaded["params"] == {"scale": 2, "left_offset": 10, "right_offset": 100}

    run([sys.executable, "-m", "airflow", "db", "migrate"], project, env)
    run([sys.executable, "-m", "airflow", "dags", "test", "tiny", "--conf", json.dumps({"left_offset": 5})], project, env)
    assert _json(project / "out/left.json") == [5, 7, 9]  # the override reached the stage
    assert _json(project / "out/right.json") == [100, 102, 104]  # the rest kept params.yaml's values
    assert _json(project / PIPELINE / "metrics/combine.json") == {"total": 327}
    assert (project / PIPELINE / ".nb2pipe/airflow-runs/combine.ipynb").is_file()


# --- Kubeflow --------------------------------------------------------------------------------------

_KFP_LOCAL = """
import sys
import kfp.components, kfp.local
kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2])
pipeline = kfp.components.load_component_from_file(sys.argv[1])
pipeline(left_offset=1)
"""


def test_kubeflow_compiles_applies_kale_settings_and_runs_locally(project: Path, tmp_path_factory) -> None:
    pytest.importorskip("kfp", reason="the kfp SDK is not installed: pip install 'nb2pipe[kubeflow]'")
    pytest.importorskip("kfp.kubernetes", reason="kfp-kubernetes is not installed: pip install 'nb2pipe[kubeflow]'")
    (path,) = export_to("kubeflow", project / PIPELINE, image="python:3.11-slim")
    assert path == project / "kubeflow/tiny.yaml"
    assert render("kubeflow", project / PIPELINE, image="python:3.11-slim")[1] == {"kubeflow/tiny.yaml": path.read_text()}

    docs = list(yaml.safe_load_all(path.read_text()))
    spec = docs[0]
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert set(inputs) == {"nb2pipe_pipeline", "scale", "left_offset", "right_offset"}
    assert inputs["nb2pipe_pipeline"]["defaultValue"] == "pipelines/tiny"
    executors = spec["deploymentSpec"]["executors"]
    assert executors["exec-make"]["container"]["image"] == "python:3.11-slim"
    right = executors["exec-right"]["container"]
    assert right["image"] == "python:3.12-slim"
    resources = right["resources"]
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert str(resources["accelerator"]["resourceCount"]) == "1"
    assert resources["resourceCpuLimit"] == "2"
    assert resources["resourceMemoryLimit"] == "1Gi"
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["combine"]["dependentTasks"] == ["left", "right"]
    assert all(t["cachingOptions"] == {} or t["cachingOptions"].get("enableCache") is not True for t in tasks.values())
    platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-right"]
    assert platform["podMetadata"]["labels"] == {"team": "ml"}
    assert platform["podMetadata"]["annotations"] == {"nb2pipe.io/owner": "tests"}

    root = tmp_path_factory.mktemp("kfp-root")
    run([sys.executable, "-c", _KFP_LOCAL, str(path), str(root)], project, tool_env(), timeout=900)
    assert _json(project / "out/left.json") == [1, 3, 5]  # the pipeline input reached the stage
    assert _json(project / PIPELINE / "metrics/combine.json") == {"total": 315}
    assert (project / PIPELINE / ".nb2pipe/kubeflow-runs/combine.ipynb").is_file()


def test_kubeflow_pvc_option_mounts_the_volume_in_every_step(project: Path) -> None:
    pytest.importorskip("kfp.kubernetes", reason="kfp-kubernetes is not installed: pip install 'nb2pipe[kubeflow]'")
    _, files = render("kubeflow", project / PIPELINE, pvc="notebooks", mount_path="/data")
    spec, platform = yaml.safe_load_all(files["kubeflow/tiny.yaml"])
    assert spec["root"]["inputDefinitions"]["parameters"]["nb2pipe_pipeline"]["defaultValue"] == "/data/pipelines/tiny"
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for stage in STAGES:
        (mount,) = executors[f"exec-{stage}"]["pvcMount"]
        assert mount["mountPath"] == "/data"
        assert mount.get("pvcName") == "notebooks" or mount["pvcNameParameter"]["runtimeValue"]["constant"] == "notebooks"


def test_kubeflow_without_kfp_says_what_to_install(project: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "kfp", None)  # `import kfp` now raises ImportError
    with pytest.raises(SpecError, match=re.escape("pip install 'nb2pipe[kubeflow]'")):
        render("kubeflow", project / PIPELINE)


def test_the_stage_command_refuses_an_unknown_parameter(project: Path) -> None:
    from nb2pipe.run.single import main

    assert main([str(project / PIPELINE), "left", "--params-json", '{"left_ofset": 1}']) == 2
