"""Per-stage settings in the exports (issue 17), checked with the real tools: Airflow's DagBag and
`dags test`, the compiled Kubeflow spec (and kfp's local runner), `dvc repro`. A secret's value
reaches no exported file. Every test is marked `exports`; a test whose tool is not importable is
skipped and says what to install."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import yaml
from test_exports import DAGBAG_LOAD, require_git, run, tool_env

from conftest import code, write_nb
from nb2pipe.export import export_notebook
from nb2pipe.exporters import export_to

pytestmark = pytest.mark.exports

PIPELINE = Path("pipelines/settings")
SECRET = "s3cr3t-5b1f0c9e7d2a4c88"
# `flaky` fails on its first try (its marker's path is built, so inference does not make it an
# out) and writes what its environment gave it on the next: MODE, and the secret's hash.
FLAKY = (
    "marker = os.path.join('out', 'flaky' + '.tried')\nos.makedirs('out', exist_ok=True)\n"
    "if not os.path.exists(marker):\n    open(marker, 'w').close()\n    raise RuntimeError('first try fails')\n"
    "token = os.environ.get('API_TOKEN', '')\n"
    "got = {'mode': os.environ.get('MODE'), 'token': hashlib.sha256(token.encode()).hexdigest()}\n"
    "with open('out/flaky.json', 'w') as f:\n    json.dump(got, f)\n"
)
FLAKY_TAGS = ("stage:flaky", "retries:1", "timeout:10m", "memory:1GiB", "env:MODE=fast", "secret:API_TOKEN", "out:out/flaky.json")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """settings.ipynb: `flaky` (settings above), `fragile` (allow-failure, always fails) and its
    dependant `after_fragile`, and `report`, which reads what flaky wrote."""
    write_nb(
        tmp_path / "settings.ipynb",
        code("import hashlib\nimport json\nimport os", "setup"),
        code("scale = 2", "parameters"),
        code(FLAKY, *FLAKY_TAGS),
        code("raise ValueError('fragile fails')", "stage:fragile", "allow-failure", "out:out/fragile.txt"),
        code("open('out/after.txt', 'w').write(open('out/fragile.txt').read())",
             "stage:after_fragile", "in:out/fragile.txt", "out:out/after.txt"),
        code("open('out/report.txt', 'w').write(str(scale))", "stage:report", "in:out/flaky.json", "out:out/report.txt"),
    )  # fmt: skip
    export_notebook(tmp_path / "settings.ipynb")
    return tmp_path


def _flaky_ran_with_its_environment(project: Path) -> None:
    got = json.loads((project / "out/flaky.json").read_text())
    assert got == {"mode": "fast", "token": hashlib.sha256(SECRET.encode()).hexdigest()}


# --- secrets ----------------------------------------------------------------------------------


def test_a_secrets_value_reaches_no_exported_file(project: Path, monkeypatch) -> None:
    pytest.importorskip("kfp.kubernetes", reason="kfp-kubernetes is not installed: pip install 'nb2pipe[kubeflow]'")
    monkeypatch.setenv("API_TOKEN", SECRET)
    (project / ".env").write_text(f"API_TOKEN={SECRET}\n")
    written = [path for target in ("dvc", "airflow", "kubeflow") for path in export_to(target, project / PIPELINE)]
    assert len(written) == 3
    for path in [*written, *(project / PIPELINE).rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert all(b"API_TOKEN" in path.read_bytes() for path in written[1:])  # Airflow and Kubeflow look the value up by name


# --- Airflow --------------------------------------------------------------------------------------

_DAGBAG = DAGBAG_LOAD + """dag = bag.dags["settings"]
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "tasks": {t.task_id: {
        "timeout": t.execution_timeout.total_seconds() if t.execution_timeout else None,
        "retries": t.retries, "retry_delay": t.retry_delay.total_seconds(), "op_kwargs": t.op_kwargs,
    } for t in dag.tasks},
}))
"""


def _airflow_env(project: Path, home: Path, **extra: str) -> dict[str, str]:
    return tool_env(
        AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False", AIRFLOW__CORE__DAGS_FOLDER=str(project / "dags"),
        AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING", **extra,
    )  # fmt: skip


def test_airflow_tasks_carry_timeout_retries_env_and_a_secret_from_a_variable(project: Path, tmp_path_factory) -> None:
    pytest.importorskip("airflow.sdk", reason="Airflow 3 is not installed: pip install 'nb2pipe[airflow]'")
    warnings: list[str] = []
    (path,) = export_to("airflow", project / PIPELINE, warn=warnings.append)
    assert SECRET not in path.read_text()
    assert warnings == [
        "--to airflow cannot express memory (stage 'flaky'): Airflow's local executors limit no task's memory; "
        "nb2pipe stops the stage's kernel above it"
    ]
    env = _airflow_env(project, tmp_path_factory.mktemp("airflow-home"), AIRFLOW_VAR_API_TOKEN=SECRET)
    loaded = json.loads(run([sys.executable, "-c", _DAGBAG, str(project / "dags")], project, env).stdout.splitlines()[-1])
    assert loaded["errors"] == {}
    flaky = loaded["tasks"]["flaky"]
    assert (flaky["timeout"], flaky["retries"], flaky["retry_delay"]) == (600, 1, 0)
    assert flaky["op_kwargs"] == {"stage": "flaky", "env": {"MODE": "fast"}, "secrets": ["API_TOKEN"]}
    assert loaded["tasks"]["fragile"]["op_kwargs"] == {"stage": "fragile", "allow_failure": True}
    assert loaded["tasks"]["report"] == {"timeout": None, "retries": 0, "retry_delay": 300, "op_kwargs": {"stage": "report"}}

    run([sys.executable, "-m", "airflow", "db", "migrate"], project, env)
    result = run([sys.executable, "-m", "airflow", "dags", "test", "settings"], project, env)
    _flaky_ran_with_its_environment(project)  # its second try, with MODE and the Variable's value
    assert (project / "out/report.txt").read_text() == "2"
    assert not (project / "out/after.txt").exists()  # skipped: fragile failed
    states = _task_states(env, project)
    assert states == {"flaky": "success", "report": "success", "fragile": "skipped", "after_fragile": "skipped"}, result.stdout
    assert _dag_run_state(env, project) == "success"


_STATES = """
import json, sys
from airflow.models import DagRun
from airflow.utils.session import create_session
with create_session() as session:
    (dag_run,) = session.query(DagRun).filter(DagRun.dag_id == "settings").all()
    print(json.dumps({"run": str(dag_run.state), "tasks": {t.task_id: str(t.state) for t in dag_run.get_task_instances(session=session)}}))
"""


def _states(env: dict[str, str], project: Path) -> dict:
    return json.loads(run([sys.executable, "-c", _STATES], project, env).stdout.splitlines()[-1])


def _task_states(env: dict[str, str], project: Path) -> dict[str, str]:
    return _states(env, project)["tasks"]


def _dag_run_state(env: dict[str, str], project: Path) -> str:
    return _states(env, project)["run"]


# --- Kubeflow -------------------------------------------------------------------------------------


def test_kubeflow_spec_carries_memory_retries_timeout_env_and_the_secret_as_env(project: Path) -> None:
    pytest.importorskip("kfp.kubernetes", reason="kfp-kubernetes is not installed: pip install 'nb2pipe[kubeflow]'")
    warnings: list[str] = []
    (path,) = export_to("kubeflow", project / PIPELINE, warn=warnings.append)
    assert warnings == []
    spec, platform = yaml.safe_load_all(path.read_text())
    flaky = spec["deploymentSpec"]["executors"]["exec-flaky"]["container"]
    assert flaky["resources"]["resourceMemoryLimit"] == "1Gi"
    assert flaky["env"] == [{"name": "MODE", "value": "fast"}]
    assert '"--no-retries"' in flaky["command"][-1]  # kfp retries the step
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["flaky"]["retryPolicy"]["maxRetryCount"] == 1 and tasks["flaky"]["retryPolicy"]["backoffDuration"] == "0s"
    assert "retryPolicy" not in tasks["report"]
    kubernetes = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert kubernetes["exec-flaky"]["activeDeadlineSeconds"] in ("600", 600)
    (secret,) = kubernetes["exec-flaky"]["secretAsEnv"]
    assert secret["secretName"] == "nb2pipe-settings"
    assert secret["keyToEnv"] == [{"secretKey": "API_TOKEN", "envVar": "API_TOKEN"}]
    # allow-failure: fragile returns its status, and after_fragile takes it
    assert tasks["after-fragile"]["inputs"]["parameters"]["nb2pipe_after_fragile"]["taskOutputParameter"]["producerTask"] == "fragile"
    assert "nb2pipe_after_fragile" not in tasks["report"]["inputs"]["parameters"]


_KFP_LOCAL = """
import sys
import kfp.components, kfp.local
kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2])
kfp.components.load_component_from_file(sys.argv[1])()
print("pipeline succeeded")
"""


def test_kubeflow_runs_past_an_allowed_failure_skips_what_comes_after_it_and_sets_env(tmp_path: Path, tmp_path_factory) -> None:
    pytest.importorskip("kfp", reason="the kfp SDK is not installed: pip install 'nb2pipe[kubeflow]'")
    write_nb(
        tmp_path / "allowed.ipynb",
        code("raise ValueError('fragile fails')", "stage:fragile", "allow-failure"),
        code("open('after.txt', 'w').write('ran')", "stage:after_fragile", "after:fragile"),
        code("open('then.txt', 'w').write('ran')", "stage:then", "after:after_fragile"),
        code("import os\nopen('other.txt', 'w').write(os.environ['MODE'])", "stage:other", "env:MODE=fast"),
    )
    export_notebook(tmp_path / "allowed.ipynb")
    (path,) = export_to("kubeflow", tmp_path / "pipelines/allowed")
    root = tmp_path_factory.mktemp("kfp-root")
    result = run([sys.executable, "-c", _KFP_LOCAL, str(path), str(root)], tmp_path, tool_env(), timeout=900)
    assert "pipeline succeeded" in result.stdout
    assert (tmp_path / "other.txt").read_text() == "fast"  # the step's env: value
    assert not (tmp_path / "after.txt").exists() and not (tmp_path / "then.txt").exists()
    said = result.stdout + result.stderr
    assert "stage 'fragile' failed and allows failure: the stages after it are skipped" in said
    assert "stage 'after_fragile' skipped: stage 'fragile' before it failed" in said
    assert "stage 'then' skipped: stage 'after_fragile' before it was skipped" in said


# --- DVC -----------------------------------------------------------------------------------------


def test_dvc_warns_what_it_cannot_express_tracks_env_values_and_repro_retries(project: Path, monkeypatch) -> None:
    pytest.importorskip("dvc", reason="DVC is not installed: pip install 'nb2pipe[dvc]'")
    require_git()
    warnings: list[str] = []
    (path,) = export_to("dvc", project / PIPELINE, warn=warnings.append)
    assert warnings == [
        "--to dvc cannot express allow-failure (stage 'fragile'): dvc repro stops at a failed stage, and reruns a stage "
        "when its files, params or command change, not when the packages it imports or the caller's environment do"
    ]
    spec = yaml.safe_load(path.read_text())["stages"]
    assert spec["flaky"]["params"] == [{"pipelines/settings/nb2pipe.yaml": ["stages.flaky.settings.env"]}]
    assert "--no-retries" not in spec["flaky"]["cmd"]  # the stage command retries it
    assert SECRET not in path.read_text()

    env = tool_env(API_TOKEN=SECRET)
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "pipeline"]):
        run(command, project, env)
    result = run(["dvc", "repro", "pipelines/settings/dvc.yaml:report"], project, env)
    assert "stage 'flaky' failed (try 1 of 2); trying again in a fresh kernel" in result.stderr + result.stdout
    got = json.loads((project / "out/flaky.json").read_text())
    assert got["token"] == hashlib.sha256(SECRET.encode()).hexdigest()  # from the caller's environment
    assert (project / "out/report.txt").read_text() == "2"
    assert json.loads(run(["dvc", "status", "--json", "--with-deps", "pipelines/settings/dvc.yaml:report"], project, env).stdout) == {}

    nb = project / "settings.ipynb"  # the env: value changes in the notebook: dvc status sees it
    nb.write_text(nb.read_text().replace("env:MODE=fast", "env:MODE=slow"))
    export_notebook(nb)
    export_to("dvc", project / PIPELINE)
    status = json.loads(run(["dvc", "status", "--json", "--with-deps", "pipelines/settings/dvc.yaml:report"], project, env).stdout)
    assert set(status) == {"pipelines/settings/dvc.yaml:flaky"}, status
    assert "stages.flaky.settings.env" in json.dumps(status["pipelines/settings/dvc.yaml:flaky"])
