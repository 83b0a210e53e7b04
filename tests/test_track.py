"""The run history (`.nb2pipe/runs.db`) as a user sees it: runs, show RUN, diff, tag, gate,
checkout --run, run --params-from, ci github; killed runs, failed runs, schema migrations.

Real kernels, no mocks. One small project is built and run twice per test worker:

    prepare --data.txt--> train (model.txt; metrics r2 = 1 - noise, mse = 2 * noise)

run 1 with the defaults (noise 0.1: r2 0.9, mse 0.2), run 2 with `-p noise=0.3` (r2 0.7, mse 0.6),
so run 1 is the better one. Each test works on a copy in tmp_path, its current directory.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import code, md, write_nb
from helpers import copy_project, main_quietly, new_events, run_dirs, stage_started, stage_status, summary
from nb2pipe import track

NB = "model.ipynb"
PIPE = "pipelines/model"
METRICS_FILE = f"{PIPE}/metrics/train.json"
OUTS = ["data.txt", "model.txt", METRICS_FILE]

PREPARE = "time.sleep(nap)\nwith open('data.txt', 'w') as data_out:\n    data_out.write(f'{seed}\\n')\n"
TRAIN = (
    "with open('data.txt') as data_in:\n"
    "    weight = int(data_in.read())\n"
    "with open('model.txt', 'w') as model_out:\n"
    "    model_out.write(f'weight={weight} noise={noise}\\n')\n"
)
METRICS = "r2 = 1.0 - noise\nmse = noise * 2\n"


def write_project(root: Path) -> Path:
    return write_nb(
        root / NB,
        code("import time", "setup"),
        code("seed = 3\nnoise = 0.1\nnap = 0", "parameters"),
        md("## Prepare"),
        code(PREPARE, "stage:prepare", "out:data.txt"),
        code(TRAIN, "stage:train", "in:data.txt", "out:model.txt"),
        code(METRICS, "metrics"),
    )


@dataclass
class Template:
    root: Path
    run1: str  # noise 0.1
    run2: str  # noise 0.3
    outs1: dict[str, bytes]  # the outputs run 1 wrote
    outs2: dict[str, bytes]
    lock1: dict  # nb2pipe.lock's stage entries after run 1


def _outs(root: Path) -> dict[str, bytes]:
    return {path: (root / path).read_bytes() for path in OUTS}


def _lock(root: Path) -> dict:
    return yaml.safe_load((root / PIPE / "nb2pipe.lock").read_text())["stages"]


@pytest.fixture(autouse=True)
def _no_mlflow(monkeypatch):
    """These runs are not mirrored into MLflow, whatever the developer's environment says."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> Template:
    root = tmp_path_factory.mktemp("track_template")
    write_project(root)
    uri = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        exit_code, _, err = main_quietly("run", NB, cwd=root)
        assert exit_code == 0, err
        outs1, lock1 = _outs(root), _lock(root)
        exit_code, _, err = main_quietly("run", PIPE, "-p", "noise=0.3", cwd=root)
        assert exit_code == 0, err
        outs2 = _outs(root)
        exit_code, out, err = main_quietly("runs", PIPE, "--json", cwd=root)
        assert exit_code == 0, err
    finally:
        if uri is not None:
            os.environ["MLFLOW_TRACKING_URI"] = uri
    run2, run1 = [r["id"] for r in json.loads(out)]
    assert outs1 != outs2
    return Template(root, run1, run2, outs1, outs2, lock1)


@pytest.fixture
def proj(template, tmp_path, monkeypatch) -> Template:
    """A copy of the twice-run project in tmp_path, which is the current directory."""
    copy_project(template.root, tmp_path, monkeypatch)
    return Template(tmp_path, template.run1, template.run2, template.outs1, template.outs2, template.lock1)


# --- helpers ---------------------------------------------------------------------------------


def runs_json(cli, *args) -> list[dict]:
    exit_code, out, err = cli("runs", PIPE, "--json", *args)
    assert exit_code == 0, err
    return json.loads(out)


def runs_table(cli, *args) -> list[dict[str, str]]:
    """`nb2pipe runs` as rows of {column title: cell}, cut at the header's column starts."""
    exit_code, out, err = cli("runs", PIPE, *args)
    assert exit_code == 0, err
    header, *lines = out.rstrip("\n").splitlines()
    titles = ["RUN", "WHEN", "STATUS", "COMMIT", "CHANGED PARAMS", "METRICS", "TIME"]
    starts = [header.index(t) for t in titles]
    assert starts == sorted(starts), header
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return [{t: line[a:b].strip() for t, (a, b) in zip(titles, bounds, strict=True)} for line in lines]


def show_lines(cli, ref: str) -> dict[str, str]:
    """`nb2pipe show PIPE RUN` as {field: value} for its two-column lines, plus 'run' and stages."""
    exit_code, out, err = cli("show", PIPE, ref)
    assert exit_code == 0, err
    lines = out.splitlines()
    fields = {"run": lines[0]}
    stages: dict[str, str] = {}
    in_stages = False
    for line in lines[1:]:
        if line.strip() == "stages":
            in_stages = True
        elif in_stages:
            name, _, rest = line.strip().partition(" ")
            stages[name] = rest.strip()
        else:
            key, _, value = line.strip().partition(" ")
            fields[key] = value.strip()
    fields["stages"] = stages  # type: ignore[assignment]
    return fields


def latest_id(cli) -> str:
    return runs_json(cli, "--limit", "1")[0]["id"]


def status_reasons(cli, *args) -> dict[str, list[str]]:
    return {name: s["reasons"] for name, s in stage_status(cli, PIPE, *args).items()}


# --- runs --------------------------------------------------------------------------------------


def test_runs_table_shows_id_status_changed_params_and_metrics(proj, cli):
    table = runs_table(cli)
    assert [row["RUN"] for row in table] == [proj.run2, proj.run1]  # newest first
    newest, oldest = table
    assert (newest["STATUS"], newest["COMMIT"], newest["CHANGED PARAMS"], newest["METRICS"]) == ("ok", "-", "noise=0.3", "mse=0.6, r2=0.7")
    assert (oldest["STATUS"], oldest["COMMIT"], oldest["CHANGED PARAMS"], oldest["METRICS"]) == ("ok", "-", "-", "mse=0.2, r2=0.9")
    for row in table:
        assert row["TIME"].endswith("s") and float(row["TIME"][:-1]) > 0
        time.strptime(row["WHEN"], "%Y-%m-%d %H:%M")
    assert [row["RUN"] for row in runs_table(cli, "--limit", "1")] == [proj.run2]


def test_runs_with_limit_still_compares_params_with_the_run_before(proj, cli):
    exit_code, _, err = cli("run", PIPE, "-p", "seed=4")
    assert exit_code == 0, err
    table = runs_table(cli, "--limit", "2")
    # the oldest run shown is compared with the run before it, not shown as unchanged
    assert [row["CHANGED PARAMS"] for row in table] == ["seed=4, noise=0.1", "noise=0.3"]


def test_runs_json_has_params_metrics_stages_and_locks(proj, cli):
    newest, oldest = runs_json(cli)
    assert (newest["id"], oldest["id"]) == (proj.run2, proj.run1)
    assert newest["params"] == {"seed": 3, "noise": 0.3, "nap": 0}
    assert oldest["params"] == {"seed": 3, "noise": 0.1, "nap": 0}
    assert newest["metrics"] == {"mse": 0.6, "r2": 0.7, "train.mse": 0.6, "train.r2": 0.7}
    assert oldest["metrics"] == {"mse": 0.2, "r2": 0.9, "train.mse": 0.2, "train.r2": 0.9}
    assert [(s["name"], s["outcome"]) for s in oldest["stages"]] == [("prepare", "ran"), ("train", "ran")]
    assert [(s["name"], s["outcome"]) for s in newest["stages"]] == [("prepare", "up to date"), ("train", "ran")]
    assert {s["name"]: s["lock"] for s in oldest["stages"]} == proj.lock1
    for run in (newest, oldest):
        assert run["status"] == "ok" and run["error"] is None
        assert run["git_commit"] is None and run["git_dirty"] is None
        assert run["finished"] >= run["started"] and run["duration"] > 0
        assert run["summary"].startswith(("2 ran", "1 ran"))
        assert run["tags"] == []
        assert all(s["fingerprint"] for s in run["stages"])
    assert newest["command"] == ["nb2pipe", "run", PIPE, "-p", "noise=0.3"]
    assert oldest["command"] == ["nb2pipe", "run", NB]
    train = newest["stages"][1]
    assert train["duration"] > 0 and (proj.root / PIPE / train["notebook"]).is_file()  # relative to the pipeline folder


def test_runs_before_any_run_says_how_to_start(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    write_project(tmp_path)
    assert cli("export", NB)[0] == 0
    exit_code, out, _ = cli("runs", PIPE)
    assert (exit_code, out.strip()) == (0, f"no runs yet; start one with: nb2pipe run {PIPE}")
    assert runs_json(cli) == []


# --- show RUN ------------------------------------------------------------------------------------


def test_show_run_outside_git(proj, cli):
    shown = show_lines(cli, proj.run2)
    assert shown["run"] == f"run {proj.run2}"
    assert shown["status"] == "ok"
    assert shown["commit"] == "(not in a git repository)"
    assert shown["command"] == f"nb2pipe run {PIPE} -p noise=0.3"
    assert shown["params"] == "seed=3, noise=0.3, nap=0"
    assert shown["metrics"] == "mse=0.6, r2=0.7"
    assert shown["env"].startswith(f"Python {sys.version.split()[0]} on ")
    assert shown["stages"]["prepare"] == "up to date"
    assert shown["stages"]["train"].startswith("ran ") and shown["stages"]["train"].endswith("s")
    assert show_lines(cli, "latest~1")["run"] == f"run {proj.run1}"
    assert show_lines(cli, proj.run1[:-2])["run"] == f"run {proj.run1}"  # an unambiguous prefix


def test_show_run_json_has_the_environment(proj, cli):
    exit_code, out, err = cli("show", PIPE, "latest", "--json")
    assert exit_code == 0, err
    run = json.loads(out)
    assert run["id"] == proj.run2
    assert run["environment"]["python"] == sys.version.split()[0]
    assert "nb2pipe" in run["environment"]["distributions"]


def _git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "T",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True).stdout.strip()


def test_show_run_in_git_has_commit_and_dirty_flag(proj, cli):
    # .nb2pipe/ is the pipeline's private state: a user keeps it out of git
    (proj.root / ".gitignore").write_text(".nb2pipe/\n")
    _git(proj.root, "init", "-q")
    _git(proj.root, "add", "-A")
    _git(proj.root, "commit", "-q", "-m", "pipeline")
    head = _git(proj.root, "rev-parse", "HEAD")

    exit_code, _, err = cli("run", PIPE, "--stage", "train", "--force")
    assert exit_code == 0, err
    clean = latest_id(cli)
    assert show_lines(cli, clean)["commit"] == head
    assert runs_json(cli, "--limit", "1")[0]["git_dirty"] is False

    params = proj.root / PIPE / "params.yaml"
    params.write_text(params.read_text().replace("noise: 0.1", "noise: 0.2"))
    exit_code, _, err = cli("run", PIPE)
    assert exit_code == 0, err
    dirty = latest_id(cli)
    assert show_lines(cli, dirty)["commit"] == f"{head} (with uncommitted changes)"
    rows = {row["RUN"]: row for row in runs_table(cli)}
    assert rows[dirty]["COMMIT"] == head[:8] + "*"
    assert rows[clean]["COMMIT"] == head[:8]
    assert rows[dirty]["CHANGED PARAMS"] == "noise=0.2"
    assert rows[dirty]["METRICS"] == "mse=0.4, r2=0.8"


# --- diff ---------------------------------------------------------------------------------------


def test_diff_text(proj, cli):
    exit_code, out, err = cli("diff", PIPE, "latest~1", "latest")
    assert exit_code == 0, err
    header, *lines = out.splitlines()
    rows = {}
    for line in lines:
        if line.startswith("  "):
            name, *rest = line.split()
            rows[name] = rest
    assert header.split() == [proj.run1, proj.run2, "change"]  # the columns are labelled
    assert lines[0] == "params" and "metrics" in lines
    assert rows == {  # each metric once: train is the only stage reporting mse and r2
        "nap": ["0", "0"],
        "noise": ["0.1", "0.3", "changed"],
        "seed": ["3", "3"],
        "mse": ["0.2", "0.6", "+0.4"],
        "r2": ["0.9", "0.7", "-0.2"],
    }


def test_diff_md_and_json(proj, cli):
    exit_code, out, err = cli("diff", PIPE, proj.run1, proj.run2, "--md")
    assert exit_code == 0, err
    assert out.splitlines() == [
        f"| | {proj.run1} | {proj.run2} | change |",
        "|---|---|---|---|",
        "| param `nap` | 0 | 0 |  |",
        "| param `noise` | 0.1 | 0.3 | changed |",
        "| param `seed` | 3 | 3 |  |",
        "| metric `mse` | 0.2 | 0.6 | +0.4 |",
        "| metric `r2` | 0.9 | 0.7 | -0.2 |",
    ]
    exit_code, out, err = cli("diff", PIPE, proj.run1, proj.run2, "--json")
    assert exit_code == 0, err
    result = json.loads(out)
    assert (result["a"], result["b"]) == (proj.run1, proj.run2)
    params = {r["name"]: r for r in result["params"]}
    assert params["noise"] == {"name": "noise", "a": 0.1, "b": 0.3, "changed": True}
    assert params["seed"] == {"name": "seed", "a": 3, "b": 3, "changed": False}
    metrics = {r["name"]: r for r in result["metrics"]}
    assert (metrics["r2"]["a"], metrics["r2"]["b"], metrics["r2"]["changed"]) == (0.9, 0.7, True)
    assert metrics["r2"]["change"] == pytest.approx(-0.2)
    assert metrics["mse"]["change"] == pytest.approx(0.4)


# --- tag -----------------------------------------------------------------------------------------


def test_tag_names_a_run_everywhere(proj, cli):
    exit_code, out, err = cli("tag", PIPE, "latest~1", "champion")
    assert (exit_code, out.strip()) == (0, f"tagged run {proj.run1} as 'champion'"), err
    assert [row["RUN"] for row in runs_table(cli)] == [proj.run2, f"{proj.run1} (champion)"]
    assert show_lines(cli, "champion")["run"] == f"run {proj.run1}  tags: champion"
    assert runs_json(cli)[1]["tags"] == ["champion"]
    # a tag moves when given again
    exit_code, out, _ = cli("tag", PIPE, "latest", "champion")
    assert out.strip() == f"tagged run {proj.run2} as 'champion'"
    assert [row["RUN"] for row in runs_table(cli)] == [f"{proj.run2} (champion)", proj.run1]


@pytest.mark.parametrize("name", ["latest", "latest~2", "two words", ""])
def test_tag_refuses_names_that_would_be_ambiguous(proj, cli, name):
    exit_code, _out, err = cli("tag", PIPE, "latest", name)
    assert exit_code == 2
    assert err.startswith("error: bad tag name") and err.count("\n") == 1


# --- gate ----------------------------------------------------------------------------------------


def test_gate_better_exits_0(proj, cli):
    # run 1 (r2 0.9, mse 0.2) judged against run 2 (r2 0.7, mse 0.6)
    assert cli("tag", PIPE, proj.run2, "production")[0] == 0
    exit_code, out, err = cli(
        "gate", PIPE, "--metric", "r2:max", "--metric", "mse:min", "--baseline", "production", "--candidate", proj.run1
    )
    assert exit_code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"candidate {proj.run1} vs baseline {proj.run2} (margin 0)"
    assert lines[1].split() == ["pass", "r2:", "0.9", "(baseline", "0.7,", "needs", "≥", "0.7)"]
    assert lines[2].split() == ["pass", "mse:", "0.2", "(baseline", "0.6,", "needs", "≤", "0.6)"]
    assert lines[-1] == "better: deploy"


def test_gate_not_better_exits_1(proj, cli):
    # the latest run (run 2) is worse than run 1
    exit_code, out, _ = cli("gate", PIPE, "--metric", "r2:max", "--baseline", "latest~1")
    assert exit_code == 1
    assert out.splitlines()[1].split()[:3] == ["FAIL", "r2:", "0.7"]
    assert out.splitlines()[-1] == "not better: keep the baseline"
    # better on one metric is not enough
    exit_code, _, _ = cli("gate", PIPE, "--metric", "r2:max", "--metric", "mse:max", "--baseline", "latest~1")
    assert exit_code == 1


def test_gate_margin(proj, cli):
    args = ("gate", PIPE, "--metric", "r2:max", "--baseline", "latest", "--candidate", "latest~1")
    assert cli(*args, "--margin", "0.1")[0] == 0  # 0.9 ≥ 0.7 + 0.1
    exit_code, out, _ = cli(*args, "--margin", "0.25")  # 0.9 < 0.7 + 0.25
    assert exit_code == 1
    assert "needs ≥ 0.95" in out
    exit_code, out, _ = cli(
        "gate", PIPE, "--metric", "mse:min", "--baseline", "latest", "--candidate", "latest~1", "--margin", "0.5", "--json"
    )
    assert exit_code == 1
    result = json.loads(out)
    assert result["exit"] == 1 and result["candidate"] == proj.run1 and result["baseline"] == proj.run2
    assert result["checks"] == [{"metric": "mse", "goal": "min", "baseline": 0.6, "candidate": 0.2, "passed": False}]


def test_gate_missing_metric_exits_2(proj, cli):
    exit_code, out, _ = cli("gate", PIPE, "--metric", "auc:max", "--metric", "r2:max", "--baseline", "latest~1")
    assert exit_code == 2
    assert "missing  auc: the baseline run has no such metric" in out
    assert out.splitlines()[-1] == "cannot judge: a metric is missing"


def test_gate_bad_metric_spec_is_a_usage_error(proj, cli):
    exit_code, _, err = cli("gate", PIPE, "--metric", "r2", "--baseline", "latest~1")
    assert exit_code == 2 and "write NAME:max or NAME:min" in err


# --- checkout --run ------------------------------------------------------------------------------


def test_checkout_run_restores_that_runs_outputs_and_lock(proj, cli):
    assert _outs(proj.root) == proj.outs2
    exit_code, out, err = cli("checkout", PIPE, "--run", proj.run1)
    assert exit_code == 0, err
    assert out.strip() == f"outputs rolled back to run {proj.run1}: 3 restored"
    assert _outs(proj.root) == proj.outs1  # byte-identical
    assert _lock(proj.root) == proj.lock1
    # run 1 used params.yaml's values and the code is unchanged: everything is up to date
    assert status_reasons(cli) == {"prepare": [], "train": []}
    exit_code, out, err = cli("run", PIPE)
    assert summary(out) == "0 ran, 2 up to date, 0 restored from cache, 0 failed", err

    # and forward again to run 2, which had noise 0.3
    exit_code, _, err = cli("checkout", PIPE, "--run", "latest~1")  # run 2 (the no-op run above is latest)
    assert exit_code == 0, err
    assert _outs(proj.root) == proj.outs2
    assert status_reasons(cli) == {"prepare": [], "train": ["param changed: noise 0.3 → 0.1"]}
    assert status_reasons(cli, "-p", "noise=0.3") == {"prepare": [], "train": []}


def test_checkout_run_after_a_failed_run_leaves_the_stages_up_to_date(proj, cli):
    exit_code, _, _ = cli("run", PIPE, "-p", "noise=oops")
    assert exit_code == 1
    assert status_reasons(cli)["train"][0].startswith("last run failed")
    exit_code, _, err = cli("checkout", PIPE, "--run", proj.run1)
    assert exit_code == 0, err
    assert _outs(proj.root) == proj.outs1
    assert status_reasons(cli) == {"prepare": [], "train": []}


def test_checkout_run_when_the_code_changed_since(proj, cli):
    nb = json.loads((proj.root / NB).read_text())
    nb["cells"][4]["source"] = TRAIN.replace("weight=", "w=")
    (proj.root / NB).write_text(json.dumps(nb))
    assert cli("export", NB)[0] == 0
    exit_code, _, err = cli("checkout", PIPE, "--run", proj.run1)
    assert exit_code == 0, err
    assert _outs(proj.root) == proj.outs1
    assert status_reasons(cli) == {"prepare": [], "train": ["code changed"]}


def test_checkout_run_with_an_output_gone_from_the_cache_touches_nothing(proj, cli):
    from nb2pipe.run.cache import OutputCache

    cache = OutputCache(proj.root / PIPE / ".nb2pipe")
    cache._object(proj.lock1["train"]["outs"]["model.txt"]).unlink()
    lock_before = (proj.root / PIPE / "nb2pipe.lock").read_bytes()
    exit_code, _, err = cli("checkout", PIPE, "--run", proj.run1)
    assert exit_code == 2
    assert err.startswith(f"error: 'model.txt' of run {proj.run1} is no longer in the output cache")
    assert _outs(proj.root) == proj.outs2  # not half rolled back
    assert (proj.root / PIPE / "nb2pipe.lock").read_bytes() == lock_before


# --- run --params-from ---------------------------------------------------------------------------


def test_run_params_from_reproduces_that_runs_lock_entries(proj, cli):
    # run 1's params: the run cache has train for them, so nothing needs to execute
    exit_code, out, err = cli("run", PIPE, "--params-from", proj.run1)
    assert exit_code == 0, err
    assert summary(out) == "0 ran, 1 up to date, 1 restored from cache, 0 failed"
    assert _lock(proj.root) == proj.lock1 and _outs(proj.root) == proj.outs1
    # executed for real: the same param values and the same out hashes
    exit_code, out, err = cli("run", PIPE, "--params-from", proj.run1, "--force")
    assert exit_code == 0, err
    assert summary(out) == "2 ran, 0 up to date, 0 restored from cache, 0 failed"
    newest, *_ = runs_json(cli)
    old = next(r for r in runs_json(cli) if r["id"] == proj.run1)
    assert newest["params"] == old["params"]
    assert {s["name"]: s["lock"] for s in newest["stages"]} == proj.lock1
    assert {s["name"]: s["fingerprint"] for s in newest["stages"]} == {s["name"]: s["fingerprint"] for s in old["stages"]}
    assert _lock(proj.root) == proj.lock1 and _outs(proj.root) == proj.outs1
    assert newest["metrics"] == old["metrics"]


def test_run_params_from_with_p_overrides_one_value(proj, cli):
    exit_code, out, err = cli("run", PIPE, "--params-from", "latest", "--dry-run", "-p", "seed=5")
    assert exit_code == 0, err
    assert "param changed: seed 3 → 5" in err + out
    assert "param changed: noise" not in err + out  # noise 0.3 from the latest run, as the lock has


# --- failed and killed runs -------------------------------------------------------------------------


def test_a_failing_run_is_recorded_as_failed_with_its_error(proj, cli):
    exit_code, _, err = cli("run", PIPE, "-p", "noise=oops")
    assert exit_code == 1
    assert "TypeError" in err
    failed = runs_table(cli)[0]
    assert (failed["STATUS"], failed["CHANGED PARAMS"], failed["METRICS"]) == ("failed", "noise=oops", "-")
    run = runs_json(cli)[0]
    assert run["status"] == "failed"
    assert "stage 'train' failed" in run["error"] and "TypeError" in run["error"]
    stages = {s["name"]: s for s in run["stages"]}
    assert stages["prepare"]["outcome"] == "up to date"
    assert stages["train"]["outcome"] == "failed"
    assert stages["train"]["error"].startswith("stage 'train' failed in model.ipynb cell 6 (")
    assert "stages/train.py): TypeError" in stages["train"]["error"]
    assert stages["train"]["notebook"].endswith("train.ipynb")
    shown = show_lines(cli, "latest")
    assert shown["status"].startswith("failed: stage 'train' failed") and "TypeError" in shown["status"]
    assert shown["stages"]["train"].startswith("failed")
    # a failed run has no metrics to judge
    assert cli("gate", PIPE, "--metric", "r2:max", "--baseline", "latest~1")[0] == 2


def test_a_failing_run_names_the_failing_cell(proj, cli):
    exit_code, _, err = cli("run", PIPE, "-p", "noise=oops")
    assert exit_code == 1
    assert "stage 'train' failed in model.ipynb cell 6 (" in err and "stages/train.py): TypeError" in err
    assert "model.ipynb cell 6" in runs_json(cli)[0]["error"]


@pytest.mark.slow
def test_a_run_killed_with_kill_9_shows_as_interrupted(proj, cli, runs):
    pipeline = proj.root / PIPE
    before = run_dirs(pipeline)
    proc = runs.start(proj.root, PIPE, "-p", "nap=120")
    runs.wait_until(proc, lambda: stage_started(pipeline, before), "the stage starts", seen=lambda: new_events(pipeline, before))
    running = runs_json(cli)[0]
    assert running["status"] == "running" and running["finished"] is None
    assert runs_table(cli)[0]["STATUS"] == "running"
    proc.send_signal(signal.SIGKILL)  # the runner only: its kernels notice, and `runs` kills what is left
    proc.wait(timeout=30)
    killed = runs_table(cli)[0]
    assert killed["STATUS"] == "interrupted" and killed["CHANGED PARAMS"] == "noise=0.1, nap=120"
    assert [r["status"] for r in runs_json(cli)] == ["interrupted", "ok", "ok"]
    assert show_lines(cli, "latest")["status"] == "interrupted: the run was killed"
    # the next run recovers and is recorded as usual; the killed one stays interrupted
    exit_code, _out, err = cli("run", PIPE)
    assert exit_code == 0, err
    assert [r["status"] for r in runs_json(cli)] == ["ok", "interrupted", "ok", "ok"]
    assert _outs(proj.root)["data.txt"] == proj.outs1["data.txt"]


# --- the database's schema -----------------------------------------------------------------------


def _exported(tmp_path: Path, cli) -> Path:
    write_project(tmp_path)
    assert cli("export", NB)[0] == 0
    return tmp_path / PIPE / ".nb2pipe" / "runs.db"


def test_a_version_1_database_is_migrated_in_place(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    path = _exported(tmp_path, cli)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    for statement in track.MIGRATIONS[1]:
        db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    started = time.time() - 60
    db.execute(
        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ("20240101-000000-abcd", started, started + 5, "ok", 12345, json.dumps(["nb2pipe", "run", PIPE]),
         "0123456789abcdef", 0, json.dumps({"noise": 0.1}), None, "2 ran"),
    )
    db.execute("INSERT INTO stages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               ("20240101-000000-abcd", "train", "ran", 1.5, "fp", "{}", json.dumps({"r2": 0.9}), None, None))
    db.commit()
    db.close()

    from nb2pipe.spec import load_pipeline

    store = track.RunStore(load_pipeline(tmp_path / PIPE))
    (run,) = store.runs()
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == track.SCHEMA_VERSION == 4
    assert (run["id"], run["status"], run["git_commit"], run["git_dirty"], run["params"]) == (
        "20240101-000000-abcd", "ok", "0123456789abcdef", False, {"noise": 0.1})
    assert run["metrics"] == {"r2": 0.9, "train.r2": 0.9}
    assert run["environment"] is None
    assert (run["sweep"], run["trial"], run["stages"][0]["from_run"], run["stages"][0]["tries"]) == (None, None, None, [])
    assert store.tag("20240101", "champion") == "20240101-000000-abcd"
    assert store.resolve("champion") == "20240101-000000-abcd"
    store.close()
    # and through the CLI
    assert runs_table(cli)[0]["RUN"] == "20240101-000000-abcd (champion)"
    assert show_lines(cli, "champion")["commit"] == "0123456789abcdef"


def test_a_database_newer_than_supported_is_a_one_line_error(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    path = _exported(tmp_path, cli)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {track.SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    exit_code, out, err = cli("runs", PIPE)
    assert exit_code == 2 and out == ""
    newer = track.SCHEMA_VERSION + 1
    assert err == f"error: runs.db has schema version {newer}, newer than this nb2pipe ({track.SCHEMA_VERSION}); upgrade nb2pipe\n"


# --- unknown refs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ("show", PIPE, "nope"),
        ("diff", PIPE, "nope", "latest"),
        ("tag", PIPE, "nope", "champion"),
        ("gate", PIPE, "--metric", "r2:max", "--baseline", "nope"),
        ("checkout", PIPE, "--run", "nope"),
        ("run", PIPE, "--params-from", "nope"),
    ],
    ids=["show", "diff", "tag", "gate", "checkout", "run"],
)
def test_unknown_run_ref_is_exit_2(proj, cli, argv):
    exit_code, _out, err = cli(*argv)
    assert exit_code == 2
    assert err == "error: no run or tag 'nope' in this pipeline's history; see nb2pipe runs\n"


@pytest.mark.parametrize("ref", ["latest~5", "latest~x"])
def test_latest_beyond_history_is_exit_2(proj, cli, ref):
    exit_code, _, err = cli("show", PIPE, ref)
    assert exit_code == 2
    assert err == f"error: no run '{ref}' in this pipeline's history; see nb2pipe runs\n"


# --- ci github -----------------------------------------------------------------------------------------


def _steps(path: Path) -> dict[str, dict]:
    workflow = yaml.safe_load(path.read_text())
    (job,) = workflow["jobs"].values()
    return {step.get("name") or step["uses"]: step for step in job["steps"]}


def test_ci_github_writes_a_workflow_that_runs_gates_and_uploads(proj, cli):
    exit_code, out, err = cli("ci", "github", PIPE, "--metric", "r2:max", "--metric", "mse:min")
    assert exit_code == 0, err
    path = proj.root / ".github" / "workflows" / "nb2pipe.yml"
    assert out.strip() == "wrote .github/workflows/nb2pipe.yml"
    steps = _steps(path)
    assert steps["Run the pipeline"]["run"] == f"nb2pipe run {PIPE}"
    gate = steps["Gate against the champion"]["run"]
    assert f"nb2pipe gate {PIPE} --metric r2:max --metric mse:min --baseline champion" in gate
    upload = steps["Keep the executed notebooks"]
    assert upload["uses"].startswith("actions/upload-artifact@") and upload["with"]["path"] == f"{PIPE}/runs/"
    assert steps["Bring back the run history and output cache"]["with"]["path"] == f"{PIPE}/.nb2pipe"
    # an existing workflow is not overwritten without --force
    exit_code, _, err = cli("ci", "github", PIPE, "--metric", "r2:max")
    assert exit_code == 2 and "--force" in err
    assert cli("ci", "github", PIPE, "--metric", "r2:max", "--force")[0] == 0
    assert "--metric mse:min" not in path.read_text()


def test_ci_github_for_a_notebook_in_a_subfolder(proj, cli):
    exit_code, _, err = cli("ci", "github", "work/model.ipynb", "--metric", "r2:max", "--output", "wf.yml")
    assert exit_code == 0, err
    steps = _steps(proj.root / "wf.yml")
    assert steps["Run the pipeline"]["run"] == "nb2pipe run work/model.ipynb"
    assert f"nb2pipe gate work/{PIPE} --metric r2:max" in steps["Gate against the champion"]["run"]


def test_ci_github_for_a_notebook_in_the_current_folder(proj, cli):
    exit_code, _, err = cli("ci", "github", NB, "--metric", "r2:max", "--output", "wf.yml")
    assert exit_code == 0, err
    steps = _steps(proj.root / "wf.yml")
    assert f"nb2pipe gate {PIPE} --metric r2:max" in steps["Gate against the champion"]["run"]
