"""What `nb2pipe runs`, `diff`, `show` and `explain` print, as a user reads it: no-op runs are
marked, diff labels its columns and lists each metric once, and `after` means the declared
`after:` edges everywhere (the edges from files are `upstream`).

Real kernels, no mocks. One project, run four times per test worker:

    prepare --data.txt--> train (metrics r2 = 1 - noise; a second stage `check` also reports r2)

1. `run NB`              every stage runs
2. `run PIPE`            nothing to do: every stage up to date (a no-op run)
3. `run PIPE -p noise=0.3`  train and check run
4. `run PIPE -p noise=0.1`  train and check are restored from the run cache (not a no-op: the
                            outputs change back)
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import code, write_nb
from nb2pipe.cli import main

NB = "model.ipynb"
PIPE = "pipelines/model"


def write_project(root: Path) -> Path:
    return write_nb(
        root / NB,
        code("seed = 3\nnoise = 0.1", "parameters"),
        code("with open('data.txt', 'w') as f:\n    f.write(str(seed))", "stage:prepare", "out:data.txt"),
        code("weight = int(open('data.txt').read())", "stage:train", "in:data.txt"),
        code("r2 = 1.0 - noise\nmse = noise * 2", "metrics"),
        code("r2 = 0.5 + noise", "stage:check", "after:train", "metrics"),
    )


def _quietly(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        exit_code = main(list(argv))
    return exit_code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def history(tmp_path_factory) -> tuple[Path, list[str]]:
    """The project after its four runs, and the run ids, oldest first."""
    root = tmp_path_factory.mktemp("history")
    write_project(root)
    cwd, uri = os.getcwd(), os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.chdir(root)
    try:
        for argv in (["run", NB], ["run", PIPE], ["run", PIPE, "-p", "noise=0.3"], ["run", PIPE, "-p", "noise=0.1"]):
            exit_code, _, err = _quietly(*argv)
            assert exit_code == 0, err
        exit_code, out, err = _quietly("runs", PIPE, "--json")
        assert exit_code == 0, err
    finally:
        os.chdir(cwd)
        if uri is not None:
            os.environ["MLFLOW_TRACKING_URI"] = uri
    runs = json.loads(out)
    outcomes = [sorted({s["outcome"] for s in run["stages"]}) for run in reversed(runs)]
    assert outcomes == [["ran"], ["up to date"], ["ran", "up to date"], ["restored", "up to date"]], outcomes
    return root, [run["id"] for run in reversed(runs)]


@pytest.fixture
def proj(history, tmp_path, monkeypatch) -> list[str]:
    shutil.copytree(history[0], tmp_path, dirs_exist_ok=True, symlinks=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return history[1]


def table(text: str, titles: list[str]) -> list[dict[str, str]]:
    """A table printed with left-aligned columns, as rows of {title: cell}."""
    header, *lines = text.rstrip("\n").splitlines()
    starts = [header.index(t) for t in titles]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return [{t: line[a:b].strip() for t, (a, b) in zip(titles, bounds, strict=True)} for line in lines]


# --- runs --------------------------------------------------------------------------------------


def test_runs_marks_a_run_that_did_nothing_and_no_other(proj, cli):
    first, noop, changed, restored = proj
    exit_code, out, err = cli("runs", PIPE)
    assert exit_code == 0, err
    rows = table(out, ["RUN", "WHEN", "STATUS", "COMMIT", "CHANGED PARAMS", "METRICS", "TIME"])
    assert [(r["RUN"], r["STATUS"]) for r in rows] == [
        (restored, "ok"),
        (changed, "ok"),
        (noop, "ok (no-op)"),
        (first, "ok"),
    ]


def test_a_failed_run_is_not_a_no_op(proj, cli):
    exit_code, _, _ = cli("run", PIPE, "-p", "noise=abc")  # train fails: 1.0 - 'abc'; nothing else ran
    assert exit_code == 1
    exit_code, out, _ = cli("runs", PIPE, "--limit", "1")
    assert table(out, ["RUN", "WHEN", "STATUS"])[0]["STATUS"].split()[0] == "failed"
    assert "no-op" not in out


def test_runs_json_is_complete_and_unchanged_by_the_mark(proj, cli):
    exit_code, out, err = cli("runs", PIPE, "--json")
    assert exit_code == 0, err
    runs = json.loads(out)
    assert [r["id"] for r in runs] == list(reversed(proj))
    assert [r["status"] for r in runs] == ["ok"] * 4
    assert all("no-op" not in json.dumps(r) for r in runs)


# --- diff --------------------------------------------------------------------------------------


def test_diff_labels_its_columns_with_the_runs_and_lists_each_metric_once(proj, cli):
    first, _, changed, _ = proj
    assert cli("tag", PIPE, first, "champion")[0] == 0
    exit_code, out, err = cli("diff", PIPE, "champion", changed)
    assert exit_code == 0, err
    header = out.splitlines()[0]
    assert f"{first} (champion)" in header and changed in header and header.rstrip().endswith("change")
    rows = {}
    for line in out.splitlines()[1:]:
        if line.startswith("  "):
            name, *cells = line.split()
            rows[name] = cells
    assert rows == {
        "noise": ["0.1", "0.3", "changed"],
        "seed": ["3", "3"],
        "check.r2": ["0.6", "0.8", "+0.2"],  # two stages report r2: each under its stage's name
        "mse": ["0.2", "0.6", "+0.4"],  # one stage reports mse: its plain name, once
        "train.r2": ["0.9", "0.7", "-0.2"],
    }
    # the numbers sit under the run that has them
    for line in out.splitlines()[1:]:
        if line.startswith("  mse"):
            assert line.index("0.2") < header.index(changed) <= line.index("0.6")


def test_diff_markdown_lists_each_metric_once(proj, cli):
    first, _, changed, _ = proj
    exit_code, out, err = cli("diff", PIPE, first, changed, "--md")
    assert exit_code == 0, err
    names = [line.split("`")[1] for line in out.splitlines()[2:]]
    assert names == ["noise", "seed", "check.r2", "mse", "train.r2"]
    assert out.splitlines()[0] == f"| | {first} | {changed} | change |"


# --- after: show and explain mean the same ------------------------------------------------------


def stage_fields(text: str) -> dict[str, dict[str, str]]:
    """`nb2pipe show` as {stage: {label: value}}."""
    stages: dict[str, dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        if line and not line.startswith(" ") and not line.startswith(("pipeline ", "edges:")):
            current = line.split()[0]
            stages[current] = {}
        elif current and line.startswith("    ") and ":" in line:
            label, _, value = line.strip().partition(":")
            stages[current][label] = value.strip()
        elif not line:
            current = None
    return stages


def test_after_is_the_declared_edges_in_show_and_explain_and_upstream_is_every_edge(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    write_project(tmp_path)
    assert cli("export", NB)[0] == 0
    exit_code, out, err = cli("show", PIPE)
    assert exit_code == 0, err
    shown = stage_fields(out)
    assert shown["prepare"].keys().isdisjoint({"after", "upstream"})
    assert shown["train"]["upstream"] == "prepare" and "after" not in shown["train"]  # a file, no after: tag
    assert shown["check"]["upstream"] == "train" and shown["check"]["after"] == "train"
    exit_code, out, err = cli("show", PIPE, "--json")
    described = {s["name"]: s for s in json.loads(out)["stages"]}
    assert {n: (s["after"], s["upstream"]) for n, s in described.items()} == {
        "prepare": ([], []), "train": ([], ["prepare"]), "check": (["train"], ["train"]),
    }
    exit_code, out, err = cli("explain", NB, "--json")
    assert exit_code == 0, err
    explained = {s["name"]: s["after"] for s in json.loads(out)["stages"]}
    assert explained == {name: s["after"] for name, s in described.items()}
    exit_code, out, err = cli("explain", NB)
    after_lines = [line.split() for line in out.splitlines() if line.strip().startswith("after")]
    assert after_lines == [["after", "train"]]
