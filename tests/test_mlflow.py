"""The MLflow bridge: with MLFLOW_TRACKING_URI set, `nb2pipe run` mirrors each run into MLflow.

Real runs (`python -m nb2pipe run` in a subprocess, real kernels) into a SQLite tracking store in
tmp_path, read back with MlflowClient. The tests marked `mlflow` need the optional extra
`nb2pipe[mlflow]` (CI runs them in .venv-mlflow) and skip where mlflow is not importable; the
tests of what happens without MLflow run everywhere.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import code, md, write_nb
from helpers import new_events, wait_until
from nb2pipe.mlflow_bridge import absolute_uri

NB = "nb.ipynb"
PIPE = "pipelines/nb"

PREPARE = (
    "import mlflow, time\n"
    "mlflow.log_metric('inside', 1.0)\n"
    "time.sleep(nap)\n"
    "with open('data.txt', 'w') as data_out:\n"
    "    data_out.write(f'{seed}\\n')\n"
)
TRAIN = (
    "with open('data.txt') as data_in:\n"
    "    weight = int(data_in.read())\n"
    "with open('model.txt', 'w') as model_out:\n"
    "    model_out.write(f'weight={weight} noise={noise}\\n')\n"
)


def write_project(root: Path) -> None:
    write_nb(
        root / NB,
        code("seed = 3\nnoise = 0.1\nnap = 0", "parameters"),
        md("## Prepare"),
        code(PREPARE, "stage:prepare", "out:data.txt"),
        code(TRAIN, "stage:train", "in:data.txt", "out:model.txt"),
        code("r2 = 1.0 - noise\nmse = noise * 2", "metrics"),
    )


def nb2pipe(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "nb2pipe", *args], cwd=root, env=environ, capture_output=True, text=True, timeout=600)


def git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "T",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True).stdout.strip()


# --- with MLflow -----------------------------------------------------------------------------------


@pytest.mark.mlflow
@pytest.mark.slow
def test_a_run_is_mirrored_into_mlflow(tmp_path):
    pytest.importorskip("mlflow", reason="MLflow is the optional extra nb2pipe[mlflow]; not installed here")
    from mlflow import MlflowClient

    write_project(tmp_path)
    (tmp_path / ".gitignore").write_text(".nb2pipe/\nmlflow.db\nmlruns/\nmlartifacts/\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "project")
    head = git(tmp_path, "rev-parse", "HEAD")
    uri = "sqlite:///mlflow.db"  # relative, as a user would write it; stage kernels run elsewhere

    result = nb2pipe(tmp_path, "run", NB, MLFLOW_TRACKING_URI=uri)
    assert result.returncode == 0, result.stderr
    failed = nb2pipe(tmp_path, "run", PIPE, "-p", "noise=oops", MLFLOW_TRACKING_URI=uri)
    assert failed.returncode == 1, failed.stderr
    assert "warning" not in result.stderr + failed.stderr
    history = json.loads(nb2pipe(tmp_path, "runs", PIPE, "--json").stdout)
    (second, first) = history

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("nb2pipe-nb")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = {r.data.tags["nb2pipe.run_id"]: r for r in runs if "mlflow.parentRunId" not in r.data.tags}
    assert set(parents) == {first["id"], second["id"]}

    # the first run: a parent with the params, metrics and git commit, a nested run per stage
    parent = parents[first["id"]]
    assert parent.info.run_name == first["id"]
    assert parent.info.status == "FINISHED"
    assert parent.data.params == {"seed": "3", "noise": "0.1", "nap": "0"}
    assert parent.data.metrics == {"r2": 0.9, "mse": 0.2, "train.r2": 0.9, "train.mse": 0.2}
    assert parent.data.tags["mlflow.source.git.commit"] == head
    assert parent.data.tags["nb2pipe.git_dirty"] == "false"
    assert parent.data.tags["nb2pipe.status"] == "ok"
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["nb2pipe.lock"]

    nested = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert set(nested) == {"prepare", "train"}
    fingerprints = {s["name"]: s["fingerprint"] for s in first["stages"]}
    for name, run in nested.items():
        assert run.info.status == "FINISHED"
        assert run.data.tags["nb2pipe.run_id"] == first["id"]
        assert run.data.tags["nb2pipe.fingerprint"] == fingerprints[name]
        assert run.data.tags["mlflow.source.git.commit"] == head
        assert run.data.metrics["nb2pipe.duration_s"] > 0
    prepare, train = nested["prepare"], nested["train"]
    assert prepare.data.metrics["inside"] == 1.0  # logged by the notebook's own code
    assert "inside" not in train.data.metrics and "inside" not in parent.data.metrics
    assert prepare.data.params == {"seed": "3", "nap": "0"}
    assert train.data.params == {"noise": "0.1"}
    assert (train.data.metrics["r2"], train.data.metrics["mse"]) == (0.9, 0.2)
    assert [a.path for a in client.list_artifacts(prepare.info.run_id)] == ["prepare.ipynb"]
    assert [a.path for a in client.list_artifacts(train.info.run_id)] == ["metrics", "train.ipynb"]
    assert [a.path for a in client.list_artifacts(train.info.run_id, "metrics")] == ["metrics/train.json"]
    local = client.download_artifacts(train.info.run_id, "metrics/train.json", str(tmp_path / "download"))
    assert json.loads(Path(local).read_text()) == {"mse": 0.2, "r2": 0.9}

    # the failed run: prepare was up to date (no nested run), train failed
    parent = parents[second["id"]]
    assert parent.info.status == "FAILED"
    assert parent.data.params["noise"] == "oops"
    nested = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert set(nested) == {"train"}
    assert nested["train"].info.status == "FAILED"
    assert "TypeError" in nested["train"].data.tags["nb2pipe.error"]
    assert [a.path for a in client.list_artifacts(nested["train"].info.run_id)] == ["train.ipynb"]


@pytest.mark.mlflow
@pytest.mark.slow
def test_a_run_stopped_with_sigterm_is_killed_in_mlflow(tmp_path):
    pytest.importorskip("mlflow", reason="MLflow is the optional extra nb2pipe[mlflow]; not installed here")
    from mlflow import MlflowClient

    write_project(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = subprocess.Popen([sys.executable, "-m", "nb2pipe", "run", NB, "-p", "nap=120"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # a "cell" event: the stage is executing, so its nested run exists (not just its stage_started line)
        wait_until(
            lambda: any(e["event"] == "cell" for e in new_events(tmp_path / PIPE, set())),
            "the stage starts executing", timeout=180, proc=proc, seen=lambda: new_events(tmp_path / PIPE, set()),
        )  # fmt: skip
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("nb2pipe-nb").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    (prepare,) = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert (prepare.info.run_name, prepare.data.tags["mlflow.parentRunId"]) == ("prepare", parent.info.run_id)
    assert (parent.info.status, prepare.info.status, parent.data.tags["nb2pipe.status"]) == ("KILLED", "KILLED", "interrupted")


@pytest.mark.mlflow
def test_an_unreachable_tracking_store_is_a_one_line_error_before_anything_runs(tmp_path, monkeypatch, cli):
    pytest.importorskip("mlflow", reason="MLflow is the optional extra nb2pipe[mlflow]; not installed here")
    monkeypatch.chdir(tmp_path)
    write_project(tmp_path)
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'afile' / 'no.db'}")
    exit_code, _out, err = cli("run", NB)
    assert exit_code == 2
    assert err.splitlines()[-1].startswith("error: cannot reach MLflow at sqlite:///")
    assert not (tmp_path / "data.txt").exists()


# --- without MLflow --------------------------------------------------------------------------------


def test_without_mlflow_installed_the_cli_says_how_to_install_it(tmp_path):
    # a package named mlflow that fails to import stands in for an environment without MLflow
    (tmp_path / "hide" / "mlflow").mkdir(parents=True)
    (tmp_path / "hide" / "mlflow" / "__init__.py").write_text("raise ImportError(\"No module named 'mlflow'\")\n")
    project = tmp_path / "project"
    project.mkdir()
    write_project(project)
    result = nb2pipe(project, "run", NB, MLFLOW_TRACKING_URI="sqlite:///mlflow.db", PYTHONPATH=str(tmp_path / "hide"))
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: MLFLOW_TRACKING_URI is set but MLflow is not installed; "
        "install it with: pip install 'nb2pipe[mlflow]' (or unset MLFLOW_TRACKING_URI)"
    ]
    assert "Traceback" not in result.stderr
    assert not (project / "data.txt").exists()  # nothing ran


def test_without_mlflow_installed_nothing_runs_in_process_either(tmp_path, monkeypatch, cli):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    monkeypatch.chdir(tmp_path)
    write_project(tmp_path)
    exit_code, _, err = cli("run", NB)
    assert exit_code == 2
    assert err.splitlines()[-1] == (
        "error: MLFLOW_TRACKING_URI is set but MLflow is not installed; "
        "install it with: pip install 'nb2pipe[mlflow]' (or unset MLFLOW_TRACKING_URI)"
    )
    assert not (tmp_path / "data.txt").exists()
    assert cli("runs", PIPE)[1].startswith("no runs yet")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sqlite:///mlflow.db", "sqlite:////work/p/mlflow.db"),
        ("sqlite:////abs/mlflow.db", "sqlite:////abs/mlflow.db"),
        ("mlruns", "/work/p/mlruns"),
        ("/abs/mlruns", "/abs/mlruns"),
        ("file:///abs/mlruns", "file:///abs/mlruns"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("databricks", "databricks"),
        ("databricks-uc", "databricks-uc"),
    ],
)
def test_absolute_uri(uri, expected):
    assert absolute_uri(uri, cwd="/work/p") == expected
