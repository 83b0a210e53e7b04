"""The Lab's history and parameters form through the REST API (jp_fetch): the runs with what
each changed, the diff of two runs (what `nb2pipe diff --json` prints), and the parameters with
their types in the status payload."""

from __future__ import annotations

import json

from conftest import code, write_nb
from helpers import expect_error, fetch_json, run_cli, wait_job
from test_server import jp_server_config  # noqa: F401  (fixture)

NOTEBOOK = "work/typed.ipynb"


def typed_notebook(root):
    return write_nb(
        root / "work" / "typed.ipynb",
        code("n = 3\nrate = 0.5\nname = 'x'\nverbose = False\nsizes = [1, 2]", "parameters"),
        code("open('a.txt', 'w').write(str(n * rate))", "stage:make", "out:a.txt"),
        code("score = float(open('a.txt').read())", "stage:score", "in:a.txt", "metrics"),
    )


async def run(jp_fetch, **params) -> dict:
    code_, job = await fetch_json(jp_fetch, "runs", method="POST", body=json.dumps({"path": NOTEBOOK, "params": params}))
    assert code_ == 202, job
    job = await wait_job(jp_fetch, job["id"])
    assert job["status"] == "ok", job
    return job


async def test_status_lists_the_parameters_with_their_types_defaults_and_stages(jp_fetch, jp_root_dir):
    typed_notebook(jp_root_dir)
    await jp_fetch("nb2pipe", "export", method="POST", body=json.dumps({"path": NOTEBOOK}))
    _, status = await fetch_json(jp_fetch, "status", params={"path": NOTEBOOK})
    assert status["parameters"] == [
        {"name": "n", "type": "int", "default": 3, "stages": ["make"]},
        {"name": "rate", "type": "float", "default": 0.5, "stages": ["make"]},
        {"name": "name", "type": "str", "default": "x", "stages": []},
        {"name": "verbose", "type": "bool", "default": False, "stages": []},
        {"name": "sizes", "type": "list", "default": [1, 2], "stages": []},
    ]


async def test_history_marks_changed_params_and_no_ops_and_the_diff_shows_what_changed(jp_fetch, jp_root_dir):
    typed_notebook(jp_root_dir)
    first = await run(jp_fetch)
    second = await run(jp_fetch, n=5, rate=0.25)  # typed values: an int and a float
    third = await run(jp_fetch, n=5, rate=0.25)  # nothing to do
    _, history = await fetch_json(jp_fetch, "runs", params={"path": NOTEBOOK, "limit": "2"})
    runs = history["runs"]
    assert [r["id"] for r in runs] == [third["run"], second["run"]]
    assert (runs[0]["no_op"], runs[0]["changed_params"]) == (True, {})
    assert (runs[1]["no_op"], runs[1]["changed_params"]) == (False, {"n": 5, "rate": 0.25})  # against the run before, not shown
    assert runs[1]["params"]["rate"] == 0.25 and runs[1]["params"]["n"] == 5
    executed = {s["name"]: s["executed"] for s in runs[1]["stages"]}
    assert executed == {name: f"work/pipelines/typed/runs/{second['run']}/{name}.ipynb" for name in ("make", "score")}
    assert all((jp_root_dir / path).is_file() for path in executed.values())

    _, diff = await fetch_json(jp_fetch, "diff", params={"path": NOTEBOOK, "a": first["run"], "b": second["run"]})
    assert (diff["a"], diff["b"]) == (first["run"], second["run"])
    params = {row["name"]: row for row in diff["params"]}
    assert params["n"] == {"name": "n", "a": 3, "b": 5, "changed": True}
    assert params["name"]["changed"] is False
    metrics = {row["name"]: row for row in diff["metrics"]}
    assert (metrics["score"]["a"], metrics["score"]["b"], metrics["score"]["change"]) == (1.5, 1.25, -0.25)
    outputs = {row["name"]: row["changed"] for row in diff["outputs"]}
    assert outputs == {"a.txt": True, "pipelines/typed/metrics/score.json": True}  # paths from the working folder


async def test_the_diff_route_gives_the_same_data_as_the_command_line(jp_fetch, jp_root_dir, capsys):
    from nb2pipe.cli import main

    typed_notebook(jp_root_dir)
    await run(jp_fetch)
    await run(jp_fetch, n=4)
    _, diff = await fetch_json(jp_fetch, "diff", params={"path": NOTEBOOK, "a": "latest~1", "b": "latest"})
    capsys.readouterr()
    assert main(["diff", str(jp_root_dir / "work/pipelines/typed"), "latest~1", "latest", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == diff


async def test_an_unknown_run_is_404_naming_it_and_missing_runs_are_400(jp_fetch, jp_root_dir):
    typed_notebook(jp_root_dir)
    await run(jp_fetch)
    body = await expect_error(jp_fetch, 404, "diff", params={"path": NOTEBOOK, "a": "nope", "b": "latest"})
    assert body["message"] == "no run or tag 'nope' in this pipeline's history; see nb2pipe runs"
    body = await expect_error(jp_fetch, 400, "diff", params={"path": NOTEBOOK, "a": "latest"})
    assert "give the two runs to compare" in body["message"]


async def test_the_diff_of_a_notebook_never_exported_is_404(jp_fetch, jp_root_dir):
    typed_notebook(jp_root_dir)
    body = await expect_error(jp_fetch, 404, "diff", params={"path": NOTEBOOK, "a": "latest~1", "b": "latest"})
    assert body["message"] == "no pipeline at 'work/pipelines/typed'; export its notebook and run it first"


async def test_a_whole_number_for_a_float_parameter_runs_as_a_float(jp_fetch, jp_root_dir):
    """A browser's JSON writes 2.0 as 2: the run gets 2.0 where params.yaml has a float, and an
    int stays an int where it has an int."""
    typed_notebook(jp_root_dir)
    job = await run(jp_fetch, rate=2, n=4)
    _, history = await fetch_json(jp_fetch, "runs", params={"path": NOTEBOOK, "limit": "1"})
    params = history["runs"][0]["params"]
    assert history["runs"][0]["id"] == job["run"]
    assert (params["rate"], type(params["rate"]), params["n"], type(params["n"])) == (2.0, float, 4, int)
    assert (jp_root_dir / "work" / "a.txt").read_text() == "8.0"


def sweep_notebook(root):
    """A shared stage (`prep` reads no parameter) and a trial stage (`score` reads `n`)."""
    return write_nb(
        root / "work" / "swept.ipynb",
        code("n = 1", "parameters"),
        code("open('base.txt', 'w').write('10')", "stage:prep", "out:base.txt"),
        code("score = float(open('base.txt').read()) * n", "stage:score", "in:base.txt", "metrics"),
    )


async def test_the_history_gives_each_runs_sweep_and_trial_and_how_many_trials_its_sweep_has(jp_fetch, jp_root_dir):
    sweep_notebook(jp_root_dir)
    code_, out, err = run_cli("sweep", "work/swept.ipynb", "-p", "n=1,2,3", cwd=jp_root_dir)
    assert code_ == 0, (out, err)
    _, history = await fetch_json(jp_fetch, "runs", params={"path": "work/swept.ipynb", "limit": "10"})
    runs = history["runs"]
    sweep_ids = {run["sweep"] for run in runs}
    assert len(sweep_ids) == 1 and None not in sweep_ids, runs
    (sweep_id,) = sweep_ids
    trials = [run["trial"] for run in runs if run["trial"] is not None]
    assert sorted(trial["n"] for trial in trials) == [1, 2, 3]
    assert len(runs) == 4  # the run of the shared stage `prep` is the sweep's, not a trial
    assert history["sweep_trials"] == {sweep_id: 3}

    # cut by `limit`: the sweep's trial count still says how many there are in all
    _, newest = await fetch_json(jp_fetch, "runs", params={"path": "work/swept.ipynb", "limit": "2"})
    assert [run["sweep"] for run in newest["runs"]] == [sweep_id, sweep_id]
    assert newest["sweep_trials"] == {sweep_id: 3}


async def test_a_history_without_sweeps_counts_no_trials(jp_fetch, jp_root_dir):
    typed_notebook(jp_root_dir)
    await run(jp_fetch)
    _, history = await fetch_json(jp_fetch, "runs", params={"path": NOTEBOOK})
    assert history["sweep_trials"] == {}
    assert (history["runs"][0]["sweep"], history["runs"][0]["trial"]) == (None, None)
