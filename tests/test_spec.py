"""nb2pipe.spec: nb2pipe.yaml written and read back unchanged, and every check of a hand-edited
pipeline file or params file as the one line a user reads. (The same files damaged through the
CLI, with their exit codes, are tests/test_bad_input.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nb2pipe.errors import SpecError
from nb2pipe.model import Pipeline, Stage
from nb2pipe.spec import check_params, dump_yaml, effective_params, load_params, load_pipeline, parse_yaml, pipeline_to_dict


def full_pipeline(root: Path) -> Pipeline:
    """A pipeline using every key nb2pipe.yaml can hold."""
    return Pipeline(
        root=str(root),
        wdir="../..",
        params_file="params.yaml",
        source_notebook="../../analysis.ipynb",
        source_hash="blake3:" + "0" * 64,
        kernel="python3",
        stages=(
            Stage(name="fetch", cmd=("python", "tools/fetch.py", "--all"), outs=("data/raw.csv",)),
            Stage(
                name="prepare", script="stages/prepare.py", cells=(4, 5), deps=("data/raw.csv",), outs=("data/clean/",),
                params=("test_size", "seed"), after=("fetch",), saves=("df",), inferred=("data/clean/",),
                meta=(("image", ("python:3.11",)), ("limit", ("nvidia.com/gpu=1", "memory=2Gi"))),
            ),
            Stage(
                name="train", script="stages/train.py", cells=(7,), deps=("data/clean/",), outs=("models/m.pkl",),
                metrics=("pipelines/analysis/metrics/train.json",), params=("alpha",), loads=(("df", "prepare"),),
            ),
        ),
    )  # fmt: skip


def write_spec(folder: Path, data) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nb2pipe.yaml").write_text(data if isinstance(data, str) else dump_yaml(data))
    return folder


@pytest.fixture
def folder(tmp_path) -> Path:
    """A pipeline folder two levels below the project, as export makes it."""
    return tmp_path / "pipelines" / "analysis"


# --- the round trip ----------------------------------------------------------------------------


def test_what_is_written_loads_back_equal(folder):
    pipeline = full_pipeline(folder)
    write_spec(folder, pipeline_to_dict(pipeline))
    assert load_pipeline(folder) == pipeline
    assert load_pipeline(folder / "nb2pipe.yaml") == pipeline


def test_the_written_text_is_deterministic_in_reading_order_without_empty_lists(folder):
    text = dump_yaml(pipeline_to_dict(full_pipeline(folder)))
    assert text == dump_yaml(pipeline_to_dict(full_pipeline(folder)))
    assert [line.split(":")[0] for line in text.splitlines() if not line.startswith(" ")] == [
        "version", "source", "wdir", "params", "kernel", "stages"
    ]
    fetch = yaml.safe_load(text)["stages"]["fetch"]
    assert fetch == {"cmd": ["python", "tools/fetch.py", "--all"], "outs": ["data/raw.csv"]}
    assert "  fetch:\n    cmd: [python, tools/fetch.py, --all]\n    outs: [data/raw.csv]\n" in text


def test_a_minimal_hand_written_file_gets_the_defaults(folder):
    write_spec(folder, "version: 1\nstages:\n  one:\n    cmd: [python, -c, pass]\n")
    pipeline = load_pipeline(folder)
    assert (pipeline.wdir, pipeline.params_file, pipeline.source_notebook, pipeline.kernel) == (".", "params.yaml", None, None)
    assert pipeline.stages == (Stage(name="one", cmd=("python", "-c", "pass")),)


def test_numbers_in_a_command_are_arguments(folder):
    write_spec(folder, "version: 1\nstages:\n  one:\n    cmd: [sleep, 2, 0.5]\n")
    assert load_pipeline(folder).stages[0].cmd == ("sleep", "2", "0.5")


# --- every check, one line each ------------------------------------------------------------------

GOOD_STAGE = {"script": "stages/one.py"}

BAD_FILES = {
    "not a mapping": ("- a\n- b\n", "must be a mapping with 'version' and 'stages'"),
    "empty": ("", "must be a mapping with 'version' and 'stages'"),
    "a newer version": ({"version": 2, "stages": {"one": GOOD_STAGE}}, "version 2 is not supported; this nb2pipe reads version 1"),
    "no version": ({"stages": {"one": GOOD_STAGE}}, "version None is not supported"),
    "no stages": ({"version": 1}, "'stages' must be a mapping of stage names to their settings"),
    "no stage at all": ({"version": 1, "stages": {}}, "'stages' must be a mapping of stage names to their settings"),
    "stages a list": ({"version": 1, "stages": ["one"]}, "'stages' must be a mapping of stage names to their settings"),
    "source a list": (
        {"version": 1, "source": [1], "stages": {"one": GOOD_STAGE}},
        "'source' must be a mapping with 'notebook' and 'hash'",
    ),
    "unknown source key": (
        {"version": 1, "source": {"notebok": "a.ipynb"}, "stages": {"one": GOOD_STAGE}},
        "source: unknown key 'notebok'; did you mean 'notebook'?",
    ),
    "unknown key, nothing close": (
        {"version": 1, "zzz": 1, "stages": {"one": GOOD_STAGE}},
        "unknown key 'zzz'; known keys: version, source",
    ),
    "bad stage name": ({"version": 1, "stages": {"Train": GOOD_STAGE}}, "bad stage name 'Train'; a stage name is lowercase"),
    "a stage name that is a number": ({"version": 1, "stages": {5: GOOD_STAGE}}, "bad stage name 5;"),
    "a stage name with a trailing newline": ({"version": 1, "stages": {"one\n": GOOD_STAGE}}, "bad stage name 'one\\n';"),
    "neither script nor cmd": ({"version": 1, "stages": {"one": {"deps": ["a"]}}}, "stage 'one' needs exactly one of 'script' or 'cmd'"),
    "both script and cmd": (
        {"version": 1, "stages": {"one": {"script": "s.py", "cmd": ["python"]}}},
        "stage 'one' needs exactly one of 'script' or 'cmd'",
    ),
    "cmd a shell string": (
        {"version": 1, "stages": {"one": {"cmd": "python fetch.py && rm -rf /"}}},
        "stage 'one': cmd must be an argv list, e.g. [python, tools/fetch.py], not a shell string",
    ),
    "cmd empty": ({"version": 1, "stages": {"one": {"cmd": []}}}, "stage 'one': cmd must be a non-empty list of strings"),
    "cmd holding a mapping": (
        {"version": 1, "stages": {"one": {"cmd": ["python", {"a": 1}]}}},
        "stage 'one': cmd must be a non-empty list of strings",
    ),
    "cmd holding a boolean": (
        {"version": 1, "stages": {"one": {"cmd": ["python", True]}}},
        "stage 'one': cmd must be a non-empty list of strings",
    ),
    "deps a string": ({"version": 1, "stages": {"one": {**GOOD_STAGE, "deps": "a.csv"}}}, "stage 'one': 'deps' must be a list of strings"),
    "outs holding a number": (
        {"version": 1, "stages": {"one": {**GOOD_STAGE, "outs": [1]}}},
        "stage 'one': 'outs' must be a list of strings",
    ),
    "an empty metrics path": (
        {"version": 1, "stages": {"one": {**GOOD_STAGE, "metrics": [""]}}},
        "stage 'one': 'metrics' holds an empty path",
    ),
    "params a string": (
        {"version": 1, "stages": {"one": {**GOOD_STAGE, "params": "alpha"}}},
        "stage 'one': 'params' must be a list of strings",
    ),
    "a param that is a keyword": (
        {"version": 1, "stages": {"one": {**GOOD_STAGE, "params": ["class"]}}},
        "stage 'one': 'params' holds 'class', which is not a Python name",
    ),
    "after a string": ({"version": 1, "stages": {"one": {**GOOD_STAGE, "after": "two"}}}, "stage 'one': 'after' must be a list of strings"),
    "inferred a mapping": (
        {"version": 1, "stages": {"one": {**GOOD_STAGE, "inferred": {"a": 1}}}},
        "stage 'one': 'inferred' must be a list of strings",
    ),
    "meta a list": (
        {"version": 1, "stages": {"one": {**GOOD_STAGE, "meta": ["x"]}}},
        "stage 'one': 'meta' must map names to strings or lists of strings",
    ),
    "meta holding a boolean": (
        {"version": 1, "stages": {"one": {**GOOD_STAGE, "meta": {"cache": True}}}},
        "stage 'one': 'meta' must map names to strings",
    ),
    "cells of zero": (
        {"version": 1, "stages": {"one": {**GOOD_STAGE, "cells": [0]}}},
        "stage 'one': 'cells' must be a list of cell numbers (1, 2, ...); re-export",
    ),
    "an out outside the project": (
        {"version": 1, "wdir": "../..", "stages": {"one": {**GOOD_STAGE, "outs": ["../elsewhere.csv"]}}},
        "stage 'one': output '../elsewhere.csv'",
    ),
    "an absolute metrics file": (
        {"version": 1, "wdir": "../..", "stages": {"one": {**GOOD_STAGE, "metrics": ["/tmp/m.json"]}}},
        "stage 'one': output '/tmp/m.json'",
    ),
    "the pipeline folder as an out": (
        {"version": 1, "wdir": "../..", "stages": {"one": {**GOOD_STAGE, "outs": ["pipelines/analysis"]}}},
        "stage 'one': output 'pipelines/analysis'",
    ),
    "the notebook as an out": (
        {
            "version": 1, "wdir": "../..", "source": {"notebook": "../../analysis.ipynb"},
            "stages": {"one": {**GOOD_STAGE, "outs": ["analysis.ipynb"]}},
        },
        "stage 'one': output 'analysis.ipynb'",
    ),
    "invalid YAML": ("version: 1\nstages: [\n", "is not valid YAML at line 3"),
    "a tab for indentation": ("version: 1\nstages:\n\tone: {}\n", "is not valid YAML at line 3"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_a_bad_pipeline_file_is_one_line_naming_the_file(folder, case):
    data, expected = BAD_FILES[case]
    write_spec(folder, data)
    with pytest.raises(SpecError) as caught:
        load_pipeline(folder)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"'{folder / 'nb2pipe.yaml'}'"), message
    assert expected in message, message


def test_outputs_outside_the_project_say_where_the_project_is(folder):
    write_spec(folder, {"version": 1, "wdir": "../..", "stages": {"one": {**GOOD_STAGE, "outs": ["../x.csv"]}}})
    with pytest.raises(SpecError, match="nb2pipe writes and restores outputs only inside the project") as caught:
        load_pipeline(folder)
    assert f"'{folder.parent.parent}': fix the path" in str(caught.value)


@pytest.mark.parametrize(
    "given, hint",
    [("analysis.ipynb", "export the notebook first: nb2pipe export"), ("somewhere", "pass a folder written by `nb2pipe export`")],
)
def test_no_pipeline_there_says_what_to_do(tmp_path, given, hint):
    with pytest.raises(SpecError) as caught:
        load_pipeline(tmp_path / given)
    assert str(caught.value) == f"no pipeline at '{tmp_path / given}' ('nb2pipe.yaml' not found); " + (
        f"{hint} '{tmp_path / given}'" if given.endswith(".ipynb") else hint
    )


def test_an_alias_bomb_is_refused_before_it_expands():
    bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10)
    )
    with pytest.raises(SpecError, match=r"^'x.yaml' expands to more than 1,000,000 values \(YAML aliases\); fix it$"):
        parse_yaml(bomb, "'x.yaml'", "fix it")


def test_yaml_is_read_safely_never_building_objects():
    with pytest.raises(SpecError, match="is not valid YAML"):
        parse_yaml("!!python/object/apply:os.system ['echo hacked']\n", "'x.yaml'", "fix it")


# --- params.yaml and parameter overrides ---------------------------------------------------------


@pytest.fixture
def with_params(folder) -> Pipeline:
    write_spec(folder, {"version": 1, "stages": {"one": GOOD_STAGE}})
    (folder / "params.yaml").write_text("alpha: 0.5\nseed: 3\nlabel: x\n")
    return load_pipeline(folder)


def test_params_load_in_file_order_and_overrides_win(with_params):
    assert list(load_params(with_params).items()) == [("alpha", 0.5), ("seed", 3), ("label", "x")]
    assert effective_params(with_params, {"seed": 4}) == {"alpha": 0.5, "seed": 4, "label": "x"}


def test_no_params_file_is_no_params(folder):
    write_spec(folder, {"version": 1, "stages": {"one": GOOD_STAGE}})
    assert load_params(load_pipeline(folder)) == {}


@pytest.mark.parametrize(
    "override, message",
    [
        ("alpah", "unknown parameter 'alpah'; did you mean 'alpha'?"),
        ("zzz", "unknown parameter 'zzz'; known parameters: alpha, seed, label"),
    ],
)
def test_an_unknown_override_names_it_and_the_close_or_known_ones(with_params, override, message):
    with pytest.raises(SpecError) as caught:
        effective_params(with_params, {override: 1})
    assert str(caught.value) == message


def test_an_override_when_there_are_no_params_says_so(folder):
    write_spec(folder, {"version": 1, "stages": {"one": GOOD_STAGE}})
    with pytest.raises(SpecError, match=r"^unknown parameter 'x'; known parameters: none$"):
        effective_params(load_pipeline(folder), {"x": 1})


@pytest.mark.parametrize(
    "data, message",
    [
        ([1, 2], "'p.yaml' must be a mapping of parameter names to values"),
        ("text", "'p.yaml' must be a mapping of parameter names to values"),
        ({1: 2}, "'p.yaml': parameter name 1 is not a string; quote it or rename it"),
        ({None: 2}, "'p.yaml': parameter name None is not a string; quote it or rename it"),
    ],
)
def test_params_that_are_not_a_mapping_of_names(data, message):
    with pytest.raises(SpecError) as caught:
        check_params(data, "'p.yaml'")
    assert str(caught.value) == message


def test_an_empty_params_file_is_no_params():
    assert check_params(None, "'p.yaml'") == {}
