"""`nb2pipe sweep`'s grammar and plan (no kernels): -p lists, ranges and JSON lists, the grid,
--random, --params-file, unknown names, which stages are shared, and `--dry-run`'s output."""

from __future__ import annotations

import json

import pytest

from conftest import code, write_nb
from nb2pipe.errors import SpecError
from nb2pipe.sweep import build_trials, grid, parse_axis, sample

LOAD = "data = list(range(size))"
TRAIN = "model = sum(data) * alpha + depth"
EVALUATE = "score = model / 2"


@pytest.mark.parametrize(
    ("pair", "values"),
    [
        ("n=50,100,200", [50, 100, 200]),
        ("flag=True,False,None", [True, False, None]),
        ("name=a,b c, 1.5", ["a", "b c", 1.5]),
        ("alpha=range(0.1, 0.5, 0.1)", [0.1, 0.2, 0.3, 0.4]),
        ("alpha=range(0.1, 1.0, 0.3)", [0.1, 0.4, 0.7]),
        ("n=range(0, 10, 3)", [0, 3, 6, 9]),
        ("n=range(5, 0, -2)", [5, 3, 1]),
        ("lr=range(0.001, 0.004, 0.001)", [0.001, 0.002, 0.003]),
        ('cols=[["a", "b"], ["a"], "x,y"]', [["a", "b"], ["a"], "x,y"]),
        ("one=7", [7]),
    ],
)
def test_each_axis_form_gives_its_values_typed_as_p_types_them(pair, values):
    name, got = parse_axis(pair)
    assert name == pair.partition("=")[0]
    assert got == values
    assert [type(v) for v in got] == [type(v) for v in values]


@pytest.mark.parametrize(
    ("pair", "words"),
    [
        ("alpha", ["'alpha'", "-p name=v1,v2"]),
        ("alpha=range(1, 0, 0.1)", ["alpha", "gives no values", "above the start"]),
        ("alpha=range(0, 1, -0.1)", ["alpha", "gives no values", "below the start"]),
        ("alpha=range(0, 1, 0)", ["alpha", "the step is 0"]),
        ("alpha=range(0, 1)", ["alpha", "start, stop and step"]),
        ("alpha=range(a, 1, 0.1)", ["alpha", "must be numbers"]),
        ("alpha=[1, 2", ["alpha", "not a JSON list"]),
        ("alpha=[]", ["alpha", "one value or more"]),
        ("alpha=1,2,1", ["alpha", "given twice"]),
    ],
)
def test_a_bad_axis_is_one_error_naming_the_parameter_and_the_fix(pair, words):
    with pytest.raises(SpecError) as caught:
        parse_axis(pair)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_several_axes_make_the_grid_first_axis_slowest():
    assert grid({"a": [1, 2], "b": ["x", "y", "z"]}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"},
        {"a": 2, "b": "x"}, {"a": 2, "b": "y"}, {"a": 2, "b": "z"},
    ]  # fmt: skip


def test_random_samples_without_replacement_the_same_for_the_same_seed():
    trials = grid({"a": list(range(10)), "b": list(range(10))})
    first = sample(trials, 20, seed=3)
    assert first == sample(trials, 20, seed=3)
    assert first != sample(trials, 20, seed=4)
    assert len({json.dumps(t, sort_keys=True) for t in first}) == 20, "no trial drawn twice"
    assert first == sorted(first, key=trials.index), "kept in grid order"
    assert len(sample(trials, 100, seed=0)) == 100
    with pytest.raises(SpecError, match=r"--random 101 asks for more trials than the grid has \(100\)"):
        sample(trials, 101, seed=0)
    with pytest.raises(SpecError, match="--random 0"):
        sample(trials, 0, seed=0)


def test_params_file_holds_a_grid_or_a_list_of_trials(tmp_path):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text("grid:\n  alpha: [0.1, 0.2]\n  depth: [3, 5]\n")
    assert build_trials(["size=4"], grid_file) == [
        {"alpha": 0.1, "depth": 3, "size": 4}, {"alpha": 0.1, "depth": 5, "size": 4},
        {"alpha": 0.2, "depth": 3, "size": 4}, {"alpha": 0.2, "depth": 5, "size": 4},
    ]  # fmt: skip
    listed = tmp_path / "trials.yaml"
    listed.write_text("trials:\n  - {alpha: 0.1}\n  - {alpha: 0.5, depth: 9}\n")
    assert build_trials([], listed) == [{"alpha": 0.1}, {"alpha": 0.5, "depth": 9}]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("alpha: [1, 2]\n", ["one key, grid or trials"]),
        ("grid: [1, 2]\n", ["grid must map parameter names"]),
        ("grid:\n  alpha: 3\n", ["'alpha'", "list of values"]),
        ("trials: {alpha: 1}\n", ["trials must be a list"]),
        ("grid: {alpha: [1, 2\n", ["not valid YAML"]),
        ("!!python/object:os.system {}\n", ["not valid YAML"]),
    ],
)
def test_a_bad_params_file_is_one_error_naming_it(tmp_path, text, words):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        build_trials([], path)
    message = str(caught.value)
    assert "sweep.yaml" in message and "\n" not in message
    for word in words:
        assert word in message


def test_build_trials_refuses_a_parameter_given_twice_and_no_values_at_all(tmp_path):
    with pytest.raises(SpecError, match="parameter 'a' is given twice"):
        build_trials(["a=1,2", "a=3"])
    with pytest.raises(SpecError, match="a sweep needs values to try"):
        build_trials([])
    listed = tmp_path / "trials.yaml"
    listed.write_text("trials:\n  - {a: 1}\n")
    with pytest.raises(SpecError, match="drop the -p options"):
        build_trials(["b=1,2"], listed)


@pytest.fixture
def pipeline(tmp_path, monkeypatch, cli):
    """load (reads size) -> train (reads alpha, depth) -> evaluate, exported, never run."""
    monkeypatch.chdir(tmp_path)
    write_nb(
        tmp_path / "nb.ipynb",
        code("size = 4\nalpha = 0.5\ndepth = 3", "parameters"),
        code(LOAD, "stage:load"),
        code(TRAIN, "stage:train"),
        code(EVALUATE, "stage:evaluate", "metrics"),
    )
    assert cli("export", "nb.ipynb")[0] == 0
    return tmp_path / "pipelines" / "nb"


def test_dry_run_prints_the_trials_and_the_runs_each_stage_needs(pipeline, cli):
    status, out, err = cli("sweep", "pipelines/nb", "-p", "alpha=0.1,0.2,0.3", "-p", "depth=3,5", "--dry-run")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("sweep sweep-") and lines[0].endswith(": 6 trials")
    assert lines[1:7] == [
        "  trial 1: alpha=0.1, depth=3", "  trial 2: alpha=0.1, depth=5", "  trial 3: alpha=0.2, depth=3",
        "  trial 4: alpha=0.2, depth=5", "  trial 5: alpha=0.3, depth=3", "  trial 6: alpha=0.3, depth=5",
    ]  # fmt: skip
    assert lines[7:] == [
        "stages:",
        "  load: 1 run, shared by 6 trials",
        "  train: 6 runs (reads alpha, depth)",
        "  evaluate: 6 runs (reads alpha, depth)",  # through train
    ]
    assert not (pipeline / "runs").exists() and not (pipeline / "nb2pipe.lock").exists(), "a dry run runs nothing"


def test_dry_run_counts_distinct_runs_and_its_id_names_the_trial_set(pipeline, cli):
    _, out, _ = cli("sweep", "pipelines/nb", "-p", "size=2,4", "-p", "alpha=0.1,0.2", "--json", "--dry-run")
    plan = json.loads(out)
    assert [(s["name"], s["runs"], s["shared"]) for s in plan["stages"]] == [
        ("load", 2, False), ("train", 4, False), ("evaluate", 4, False),
    ]  # fmt: skip
    _, again, _ = cli("sweep", "pipelines/nb", "-p", "alpha=0.1,0.2", "-p", "size=2,4", "--json", "--dry-run")
    assert json.loads(again)["sweep"] == plan["sweep"], "the same trial set in another order is the same sweep"
    _, other, _ = cli("sweep", "pipelines/nb", "-p", "alpha=0.1,0.3", "-p", "size=2,4", "--json", "--dry-run")
    assert json.loads(other)["sweep"] != plan["sweep"]
    _, fixed, _ = cli("sweep", "pipelines/nb", "-p", "alpha=0.1,0.2", "-p", "size=9", "--json", "--dry-run")
    assert json.loads(fixed)["swept"] == ["alpha"], "a parameter set to one value is not swept: load is shared"
    assert json.loads(fixed)["stages"][0]["shared"] is True


def test_dry_run_of_a_random_search_lists_the_sampled_trials_and_imports_nothing_heavy(pipeline, cli):
    import subprocess
    import sys

    from helpers import subprocess_env
    from test_layout import STATUS_PROBE

    _, out, _ = cli("sweep", "pipelines/nb", "-p", "alpha=range(0.1, 1.0, 0.1)", "--random", "4", "--seed", "7", "--dry-run", "--json")
    expected = sample(grid({"alpha": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]}), 4, seed=7)
    assert json.loads(out)["trials"] == expected
    forms = [["sweep", "pipelines/nb", "-p", "alpha=0.1,0.2", "--dry-run"], ["sweep", "nb.ipynb", "-p", "size=1,2", "--dry-run"]]
    probe = subprocess.run(
        [sys.executable, "-c", STATUS_PROBE, json.dumps(forms)], env=subprocess_env(), capture_output=True, text=True
    )
    assert json.loads(probe.stdout.splitlines()[-1]) == {"codes": [0, 0], "heavy": []}, probe.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "alpah=0.1,0.2"], "error: unknown parameter 'alpah'; did you mean 'alpha'?"),
        (["-p", "alpha=range(1, 0, 0.1)"], "error: -p alpha=range(1, 0, 0.1) gives no values"),
        (["-p", "alpha=0.1,0.2", "--random", "3"], "error: --random 3 asks for more trials than the grid has (2)"),
        (["-p", "alpha=0.1", "--jobs", "0"], "error: --jobs 0 is not a number of trials"),
    ],
)
def test_a_users_mistake_is_one_error_line_and_exit_2(pipeline, cli, args, message):
    status, out, err = cli("sweep", "pipelines/nb", *args, "--dry-run")
    assert status == 2
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err
    assert out == ""
