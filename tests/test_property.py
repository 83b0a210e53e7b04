"""Property: whatever notebook or damaged pipeline file a user hands nb2pipe, the commands that
only read (export, show, status, explain, run --dry-run) never crash, never run notebook code,
and never write outside the pipeline folder.

Hypothesis generates notebooks (random cells, kinds, nb2pipe and Kale tags, structured metadata,
damaged fields, and code that would leave a sentinel file if it were ever executed) and damages
the files of a valid export (values replaced by random data, random bytes). Each example runs
the real CLI in-process and checks: no exception escapes `main` (no traceback), the exit code is
0, 1 or 2 (2 with exactly one `error: ...` line), the sentinel never appears, and every file
outside the pipeline folder is exactly as before.

CI runs a fixed, derandomized set of examples. Run longer locally with
`NB2PIPE_HYPOTHESIS_PROFILE=long pytest tests/test_property.py`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import code, notebook
from helpers import main_quietly

settings.register_profile(
    "ci", max_examples=80, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long", max_examples=2000, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = os.environ.get("NB2PIPE_HYPOTHESIS_PROFILE", "ci")

SENTINEL = "EXECUTED"
# Code that leaves the sentinel (in the project, or next to it) if anything ever runs it.
RUNS_CODE = [
    f"open({SENTINEL!r}, 'w').write('ran')",
    f"import pathlib\npathlib.Path('../{SENTINEL}').touch()",
    f"__import__('os').system('touch {SENTINEL}')",
    f"with open({SENTINEL!r}, 'a') as f:\n    f.write('ran')",
    f"!touch {SENTINEL}",
    f"%%bash\ntouch {SENTINEL}",
]
SOURCES = [
    *RUNS_CODE,
    "x = 1", "y = x + 1", "import pandas as pd", "def f(a):\n    return a * 2", "z = f(y)",
    "df = pd.read_csv('data/raw.csv')", "df.to_csv('data/clean.csv')", "open('log.txt', 'a').write('1')",
    "open('../outside.txt', 'w').write('1')", "open('/tmp/nb2pipe-abs.txt', 'w')", "exec('q = 1')",
    "from os import *", "print(x)", "%matplotlib inline", "def broken(:", "", "   ", "# just a comment",
    "a = 1\nb = 'two'\nc = [1, 2.5, None]", "a = 1+2j", "a = ...", "a = 1e999", "a = {1, 2}", "a = -x",
    "accuracy = 0.9\nloss = 0.1", "for i in range(3):\n    x += i", "[" * 200 + "]" * 200,
]
STAGE_NAMES = ["load", "train", "a", "b", "Bad Name", "../x", "", "x" * 70, "é"]
PATHS = ["data/raw.csv", "out.csv", "./", ".", "..", "../shared", "/tmp/x", "pipelines", "analysis.ipynb", "a\0b", ""]
TAGS = (
    [f"{prefix}{name}" for prefix in ("stage:", "step:", "block:", "after:", "prev:") for name in STAGE_NAMES]
    + [f"{prefix}{path}" for prefix in ("in:", "out:") for path in PATHS]
    + ["parameters", "pipeline-parameters", "injected-parameters", "setup", "imports", "functions", "skip",
       "metrics", "pipeline-metrics", "image:python:3.11", "limit:nvidia.com/gpu:1", "hide-input", ""]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def cells(draw) -> dict:
    kind = draw(st.sampled_from(["code", "code", "code", "markdown", "raw"]))
    source = draw(st.sampled_from(SOURCES) | st.text(max_size=40))
    if kind == "markdown":
        source = draw(st.sampled_from(["## Load", "# Title", "## Train a model", "text", source]))
    tags = draw(st.lists(st.sampled_from(TAGS), max_size=3))
    cell = code(source, *tags) if kind == "code" else {"cell_type": kind, "metadata": {"tags": tags}, "source": source}
    if draw(st.integers(0, 9)) == 0:
        cell["metadata"]["nb2pipe"] = draw(
            st.fixed_dictionaries({}, optional={
                "stage": st.sampled_from(STAGE_NAMES) | json_values,
                "outs": st.lists(st.sampled_from(PATHS)) | json_values,
                "deps": st.lists(st.sampled_from(PATHS)) | json_values,
                "after": st.lists(st.sampled_from(STAGE_NAMES)) | json_values,
            }) | json_values
        )
    if draw(st.integers(0, 14)) == 0:  # a damaged field
        field = draw(st.sampled_from(["metadata", "source", "cell_type", "tags"]))
        value = draw(json_values)
        if field == "tags":
            cell["metadata"]["tags"] = value
        else:
            cell[field] = value
    return cell


@st.composite
def notebooks(draw) -> dict:
    nb = notebook(*draw(st.lists(cells(), min_size=1, max_size=7)))
    if draw(st.integers(0, 14)) == 0:
        key = draw(st.sampled_from(["metadata", "nbformat", "nbformat_minor", "cells"]))
        nb[key] = draw(json_values)
    return nb


def snapshot(root: Path, pipeline: Path) -> dict[str, bytes | None]:
    """Every file and folder under `root` outside `pipeline`, with its content."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == pipeline or pipeline in here.parents:
            dirnames.clear()
            continue
        for name in dirnames:
            if here / name != pipeline and here / name not in pipeline.parents:  # export makes those
                found[str(here / name)] = None
        for name in filenames:
            path = here / name
            found[str(path)] = path.read_bytes() if path.is_file() else b"<special>"
    return found


def check_commands(root: Path, commands: list[list]) -> None:
    project = root / "project"
    pipeline = project / "pipelines" / "analysis"
    before = snapshot(root, pipeline)
    cwd = os.getcwd()
    os.chdir(project)
    try:
        for argv in commands:
            status, out, err = main_quietly(*argv)
            assert status in (0, 1, 2), (argv, status, err)
            assert "Traceback" not in out + err, err
            if status == 2:
                assert err.startswith("error: ") and err.count("\n") == 1, (argv, err)
    finally:
        os.chdir(cwd)
    assert not (project / SENTINEL).exists() and not (root / SENTINEL).exists(), "notebook code was executed"
    assert snapshot(root, pipeline) == before, "something outside the pipeline folder was written"


READ_ONLY_COMMANDS = [
    ["export", "analysis.ipynb"],
    ["explain", "analysis.ipynb"],
    ["show", "pipelines/analysis"],
    ["show", "pipelines/analysis", "--json"],
    ["status", "pipelines/analysis"],
    ["run", "pipelines/analysis", "--dry-run"],
]


@settings(settings.get_profile(PROFILE))
@given(nb=notebooks())
def test_any_notebook_never_crashes_runs_code_or_writes_outside(nb):
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        (root / "project").mkdir()
        (root / "project" / "analysis.ipynb").write_text(json.dumps(nb))
        check_commands(root, READ_ONLY_COMMANDS)


VALID = notebook(
    code("alpha = 0.5\nname = 'x'", "parameters"),
    code("import json", "setup"),
    code("data = [1, 2, 3]\nopen('data/raw.csv', 'w').write('1')", "stage:load", "out:data/raw.csv"),
    code("model = sum(data) * alpha", "stage:train"),
    code("accuracy = model / 10", "metrics"),
    code(RUNS_CODE[0], "stage:report", "after:train"),
)


def _locations(data, prefix=()):
    """Every (path of keys) inside nested YAML data, the root included."""
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _locations(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _locations(value, (*prefix, i))


def _replace(data, where, value):
    if not where:
        return value
    target = data
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    return data


@st.composite
def damage(draw, text: str) -> bytes:
    how = draw(st.sampled_from(["replace", "replace", "replace", "delete", "bytes", "truncate"]))
    if how == "bytes":
        return draw(st.binary(max_size=200))
    if how == "truncate":
        return text.encode()[: draw(st.integers(0, len(text)))]
    data = yaml.safe_load(text)
    locations = list(_locations(data))
    where = draw(st.sampled_from(locations))
    if how == "delete" and where:
        parent = data
        for key in where[:-1]:
            parent = parent[key]
        del parent[where[-1]]
    else:
        data = _replace(data, where, draw(json_values))
    return yaml.safe_dump(data, allow_unicode=True).encode()


@settings(settings.get_profile(PROFILE))
@given(data=st.data(), name=st.sampled_from(["nb2pipe.yaml", "params.yaml"]))
def test_any_damaged_pipeline_file_never_crashes_runs_code_or_writes_outside(data, name):
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        project = root / "project"
        (project / "data").mkdir(parents=True)
        (project / "analysis.ipynb").write_text(json.dumps(VALID))
        cwd = os.getcwd()
        os.chdir(project)
        try:
            assert main_quietly("export", "analysis.ipynb")[0] == 0
        finally:
            os.chdir(cwd)
        target = project / "pipelines" / "analysis" / name
        target.write_bytes(data.draw(damage(target.read_text()), label=f"damaged {name}"))
        check_commands(root, READ_ONLY_COMMANDS)
