"""`nb2pipe sweep ... --export airflow|kubeflow|dvc`, each run with the real tool over a 2-trial sweep.

The tiny pipeline of test_exports.py, swept over `left_offset=1,2`: `make` and `right` read no swept
parameter (shared: run once, in the workspace); `left` and `combine` run per trial, each trial in
its own folder (Airflow, Kubeflow) or DVC experiment. Marked `exports`; a test whose tool is not
importable is skipped and says what to install.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from test_exports import DAGBAG_LOAD, PIPELINE, _json, require_git, run, tool_env, write_notebook

from conftest import code, write_nb  # at import: tests/ui/ has a conftest of its own, loaded later
from helpers import wait_until
from nb2pipe.cli import main

pytestmark = pytest.mark.exports

SWEEP = ["-p", "left_offset=1,2"]
TOTALS = {1: 315, 2: 318}  # right sums to 306 in both; left is [1, 3, 5] or [2, 4, 6]
# scale=3 in every trial: the shared `make` must run with it (params.yaml says 2)
SWEEP_SCALE_3 = [*SWEEP, "-p", "scale=3"]
TOTALS_SCALE_3 = {1: 321, 2: 324}  # right sums to 309; left is [1, 4, 7] or [2, 5, 8]
SHARED, MAPPED = ["make", "right"], ["left", "combine"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    """tiny.ipynb, exported; the current directory is the project."""
    from nb2pipe.export import export_notebook

    monkeypatch.chdir(tmp_path)
    export_notebook(write_notebook(tmp_path / "tiny.ipynb"))
    return tmp_path


def sweep_export(capsys, *args: str, sweep: list[str] = SWEEP) -> str:
    """`nb2pipe sweep pipelines/tiny -p left_offset=1,2 --export ...`: the sweep id it printed."""
    code = main(["sweep", str(PIPELINE), *sweep, *args])
    _, err = capsys.readouterr()
    assert code == 0, err
    (sweep_id,) = re.findall(r"sweep (sweep-[0-9a-f]{12}): 2 trials", err)
    return sweep_id


def trial_folder(project: Path, engine: str, sweep_id: str, number: int) -> Path:
    return project / PIPELINE / f".nb2pipe/{engine}-trials/{sweep_id}/trial-{number}" / PIPELINE


def assert_trials_ran_apart(project: Path, engine: str, sweep_id: str) -> None:
    """SWEEP_SCALE_3 ran: each trial's metrics and executed notebooks in its own folder; the shared
    stages ran once, with scale=3, in the workspace, and in no trial."""
    runs = project / PIPELINE / f".nb2pipe/{engine}-runs"
    assert sorted(p.stem for p in runs.glob("*.ipynb")) == sorted(SHARED)
    assert _json(project / "out/right.json") == [100, 103, 106]
    assert not (project / "out/left.json").exists(), "a trial wrote into the workspace"
    for number, total in TOTALS_SCALE_3.items():
        folder = trial_folder(project, engine, sweep_id, number)
        assert _json(folder / "metrics/combine.json") == {"total": total}
        assert _json(folder.parent.parent / "out/left.json") == [b + number for b in (0, 3, 6)]
        assert sorted(p.stem for p in (folder / f".nb2pipe/{engine}-runs").glob("*.ipynb")) == sorted(MAPPED)


# --- Airflow ---------------------------------------------------------------------------------------

_DAGBAG = DAGBAG_LOAD + """dag = bag.dags.get("tiny_sweep")
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "tasks": {t.task_id: [type(t).__name__, sorted(t.upstream_task_ids)] for t in dag.tasks} if dag else None,
}))
"""


# what Airflow's UI shows for each mapped instance of a stage, by map index
_MAP_LABELS = """
import json
from airflow.models import TaskInstance
from airflow.utils.session import create_session
with create_session() as session:
    rows = session.query(TaskInstance).filter(TaskInstance.dag_id == "tiny_sweep", TaskInstance.map_index >= 0).all()
    labels = {}
    for ti in sorted(rows, key=lambda ti: (ti.task_id, ti.map_index)):
        labels.setdefault(ti.task_id, []).append(ti.rendered_map_index)
print(json.dumps(labels))
"""


def test_airflow_maps_the_swept_stages_over_the_trials_and_runs_the_shared_ones_once(project: Path, capsys, tmp_path_factory):
    pytest.importorskip("airflow.sdk", reason="Airflow 3 is not installed: pip install 'nb2pipe[airflow]'")
    sweep_id = sweep_export(capsys, "--export", "airflow", sweep=SWEEP_SCALE_3)
    home = tmp_path_factory.mktemp("airflow-home")
    env = tool_env(
        AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False", AIRFLOW__CORE__DAGS_FOLDER=str(project / "dags"),
        AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
    )  # fmt: skip
    loaded = json.loads(run([sys.executable, "-c", _DAGBAG, str(project / "dags")], project, env).stdout.splitlines()[-1])
    assert loaded["errors"] == {}
    assert loaded["tasks"] == {
        "make": ["PythonOperator", []],
        "right": ["PythonOperator", ["make"]],
        "left": ["MappedOperator", ["make"]],
        "combine": ["MappedOperator", ["left", "right"]],
    }

    run([sys.executable, "-m", "airflow", "db", "migrate"], project, env)
    run([sys.executable, "-m", "airflow", "dags", "test", "tiny_sweep"], project, env)
    assert_trials_ran_apart(project, "airflow", sweep_id)
    labels = json.loads(run([sys.executable, "-c", _MAP_LABELS], project, env).stdout.splitlines()[-1])
    assert labels == {stage: [f"trial {n}" for n in sorted(TOTALS_SCALE_3)] for stage in MAPPED}


# --- Kubeflow --------------------------------------------------------------------------------------

_KFP_LOCAL = """
import sys
import kfp.components, kfp.local
kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2])
kfp.components.load_component_from_file(sys.argv[1])()
"""


def test_kubeflow_loops_over_the_trials_with_the_shared_stages_outside(project: Path, capsys, tmp_path_factory):
    pytest.importorskip("kfp", reason="the kfp SDK is not installed: pip install 'nb2pipe[kubeflow]'")
    sweep_id = sweep_export(capsys, "--export", "kubeflow", "--jobs", "2", sweep=SWEEP_SCALE_3)
    path = project / "kubeflow/tiny-sweep.yaml"
    spec, *_ = yaml.safe_load_all(path.read_text(encoding="utf-8"))
    tasks = spec["root"]["dag"]["tasks"]
    (loop,) = [name for name in tasks if name.startswith("for-loop")]
    assert sorted(tasks) == sorted([*SHARED, loop])
    iterator = tasks[loop]["parameterIterator"]
    items = [json.loads(item) for item in json.loads(iterator["items"]["raw"])]
    assert items == [{"trial": n, "values": {"left_offset": n, "scale": 3}} for n in (1, 2)]
    assert tasks[loop]["iteratorPolicy"] == {"parallelismLimit": 2}
    inner = spec["components"][tasks[loop]["componentRef"]["name"]]["dag"]["tasks"]
    assert sorted(inner) == sorted(MAPPED)
    assert inner["combine"]["dependentTasks"] == ["left"]  # `right` is outside: the loop waits for it
    assert sorted(tasks[loop].get("dependentTasks", [])) == SHARED

    root = tmp_path_factory.mktemp("kfp-root")
    run([sys.executable, "-c", _KFP_LOCAL, str(path), str(root)], project, tool_env(), timeout=900)
    assert_trials_ran_apart(project, "kubeflow", sweep_id)


# --- DVC -------------------------------------------------------------------------------------------


def _queue_done(project: Path, env: dict) -> str | None:
    status = run(["dvc", "queue", "status"], project, env).stdout
    return None if re.search(r"\b(Queued|Running)\b", status) else status


def test_dvc_queues_one_experiment_per_trial_and_shares_the_rest_through_the_run_cache(project: Path, capsys):
    pytest.importorskip("dvc", reason="DVC is not installed: pip install 'nb2pipe[dvc]'")
    require_git()
    env = tool_env()
    sweep_export(capsys, "--export", "dvc", "--jobs", "2")
    script = (project / "dvc/tiny-sweep.sh").read_text(encoding="utf-8")
    assert "dvc repro pipelines/tiny/dvc.yaml:make pipelines/tiny/dvc.yaml:right\n" in script
    assert script.count("dvc exp run --queue pipelines/tiny/dvc.yaml -S pipelines/tiny/params.yaml:left_offset=") == 2
    assert script.endswith("dvc queue start -j 2\n")

    run(["git", "init", "-q"], project, env)
    run(["dvc", "init", "-q"], project, env)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-qm", "pipeline"], project, env)
    try:
        out = run(["sh", "dvc/tiny-sweep.sh"], project, env, timeout=900).stdout
        assert set(re.findall(r"Running stage '(?:[^']*:)?([\w-]+)'", out)) == set(SHARED)  # once, before the queue
        status = wait_until(lambda: _queue_done(project, env), "the DVC queue ran both trials", timeout=900,
                            seen=lambda: run(["dvc", "queue", "status"], project, env).stdout, interval=1)  # fmt: skip
    finally:
        run(["dvc", "queue", "stop", "--kill"], project, env)
    assert len(re.findall(r"\bSuccess\b", status)) == 2, status
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project, env).stdout)
    got = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for revision in exp["revs"]:
                data = revision["data"]
                params = data["params"]["pipelines/tiny/params.yaml"]["data"]
                got[params["left_offset"]] = data["metrics"]["pipelines/tiny/metrics/combine.json"]["data"]["total"]
    assert got == TOTALS
    for name in re.findall(r"^\S+\s+(\S+)\s+.*Success", status, re.M):
        log = run(["dvc", "queue", "logs", name], project, env).stdout
        assert not re.search(r"Running stage '[^']*:(make|right)'", log), f"experiment {name} reran a shared stage:\n{log}"


# --- trial values are data, as each tool reads them -----------------------------------------------

ATTACK = "'); import os; os.system('touch pwned') #"
NASTY = [ATTACK, "two\nlines", 'a"""b\\', "${oc.env:HOME}", "it's", "a,b=c:d"]


@pytest.fixture
def nasty(tmp_path: Path, monkeypatch) -> Path:
    """nb.ipynb with a string parameter `label`, exported, and values.yaml sweeping it over NASTY."""
    from nb2pipe.export import export_notebook

    monkeypatch.chdir(tmp_path)
    cells = [code("label = 'a'", "parameters"), code("data = 1", "stage:load"), code("print(label)", "stage:use")]
    export_notebook(write_nb(tmp_path / "nb.ipynb", *cells))
    (tmp_path / "values.yaml").write_text(json.dumps({"grid": {"label": NASTY}}))
    return tmp_path


def _export_nasty(engine: str) -> None:
    assert main(["sweep", "pipelines/nb", "--params-file", "values.yaml", "--export", engine]) == 0


def test_airflow_reads_nasty_trial_values_as_data(nasty: Path, tmp_path_factory):
    pytest.importorskip("airflow.sdk", reason="Airflow 3 is not installed: pip install 'nb2pipe[airflow]'")
    _export_nasty("airflow")
    probe = _DAGBAG.replace('"tiny_sweep"', '"nb_sweep"') + "import importlib.util as u\n" + (
        "spec = u.spec_from_file_location('dag', sys.argv[1] + '/nb_sweep.py'); m = u.module_from_spec(spec)\n"
        "spec.loader.exec_module(m); print(json.dumps(m.TRIALS))\n"
    )
    env = tool_env(AIRFLOW_HOME=str(tmp_path_factory.mktemp("airflow-home")), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    lines = run([sys.executable, "-c", probe, str(nasty / "dags")], nasty, env).stdout.splitlines()
    assert json.loads(lines[-2])["errors"] == {}
    assert json.loads(lines[-1]) == [{"label": value} for value in NASTY]
    assert not list(nasty.rglob("pwned"))


def test_dvc_parses_each_set_param_back_to_the_trial_value(nasty: Path, tmp_path: Path):
    pytest.importorskip("dvc", reason="DVC is not installed: pip install 'nb2pipe[dvc]'")
    import shlex

    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import apply_overrides

    _export_nasty("dvc")
    lexer = shlex.shlex((nasty / "dvc/nb-sweep.sh").read_text(encoding="utf-8"), posix=True)  # as sh splits it
    lexer.whitespace_split = True
    words = list(lexer)
    got = []
    for word in (words[i + 1] for i, w in enumerate(words) if w == "-S"):
        ((path, overrides),) = to_path_overrides([word]).items()  # as `dvc exp run -S` splits it
        assert path == "pipelines/nb/params.yaml"
        params = tmp_path / "params.yaml"
        params.write_text((nasty / path).read_text())
        apply_overrides(params, overrides)
        got.append(yaml.safe_load(params.read_text())["label"])
    assert got == NASTY


def test_kubeflow_carries_nasty_trial_values_as_loop_items(nasty: Path):
    pytest.importorskip("kfp", reason="the kfp SDK is not installed: pip install 'nb2pipe[kubeflow]'")
    _export_nasty("kubeflow")
    spec, *_ = yaml.safe_load_all((nasty / "kubeflow/nb-sweep.yaml").read_text(encoding="utf-8"))
    (loop,) = [task for name, task in spec["root"]["dag"]["tasks"].items() if name.startswith("for-loop")]
    items = [json.loads(item) for item in json.loads(loop["parameterIterator"]["items"]["raw"])]
    assert [item["values"]["label"] for item in items] == NASTY
    assert not list(nasty.rglob("pwned"))
