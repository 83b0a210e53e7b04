"""Per-stage settings as the user writes them (tags, cell metadata, notebook defaults) and as
nb2pipe.yaml records them; what the runner does with them is tested with the runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import code, notebook, write_nb
from helpers import assert_one_line_error
from nb2pipe import model as m
from nb2pipe.settings import effective, format_duration, format_size, parse_duration, parse_size
from nb2pipe.spec import load_pipeline, safe_load


def _export(cli, nb: Path) -> dict:
    status, _, err = cli("export", nb)
    assert status == 0, err
    return safe_load((nb.parent / "pipelines" / nb.stem / m.PIPELINE_FILE).read_text())


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("90", 90), ("1.5h", 5400), ("45s", 45), ("2 m", 120)]
)
def test_durations_take_seconds_minutes_and_hours(text, seconds):
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [("4GiB", 4 * 2**30), ("4Gi", 4 * 2**30), ("512MiB", 512 * 2**20), ("2G", 2 * 10**9), ("300M", 3 * 10**8), ("1024", 1024)],
)
def test_sizes_take_binary_and_kubernetes_units(text, size):
    assert parse_size(text) == size
    assert parse_size(format_size(size)) == size


def test_settings_from_tags_on_any_cell_land_in_nb2pipe_yaml(cli, tmp_path):
    nb = write_nb(
        tmp_path / "a.ipynb",
        code("x = 1\n", "stage:load", "timeout:30m", "env:MODE=fast", "secret:API_TOKEN"),
        code("y = x\n", "retries:2", "allow-failure", "memory:1GiB"),
        code("z = 3\n", "stage:train", "cell-timeout:5m", "kernel:python3", "track-env", "env:HOME"),
    )
    stages = _export(cli, nb)["stages"]
    assert stages["load"]["settings"] == {
        "timeout": "30m", "retries": 2, "memory": "1GiB", "allow-failure": True, "env": {"MODE": "fast"}, "secret": ["API_TOKEN"],
    }  # fmt: skip
    assert stages["train"]["settings"] == {"cell-timeout": "5m", "kernel": "python3", "env": {"HOME": None}, "track-env": True}


def test_a_stage_without_settings_writes_none(cli, tmp_path):
    nb = write_nb(tmp_path / "a.ipynb", code("x = 1\n", "stage:load"))
    data = _export(cli, nb)
    assert "settings" not in data["stages"]["load"] and "defaults" not in data


def test_cell_metadata_wins_over_the_same_cells_tags(cli, tmp_path):
    nb = write_nb(
        tmp_path / "a.ipynb",
        code("x = 1\n", "stage:load", "timeout:30m", "env:A=tag", nb2pipe={"timeout": "2h", "env": {"A": "meta", "B": None}}),
    )
    assert _export(cli, nb)["stages"]["load"]["settings"] == {"timeout": "2h", "env": {"A": "meta", "B": None}}


@pytest.mark.parametrize(
    ("first", "second", "named"),
    [("timeout:30m", "timeout:1h", "timeout"), ("retries:1", "retries:2", "retries"), ("env:A=1", "env:A=2", "env:A"),
     ("kernel:python3", "kernel:ir", "kernel")],
)  # fmt: skip
def test_the_same_setting_with_two_values_names_both_cells(cli, tmp_path, first, second, named):
    nb = write_nb(tmp_path / "a.ipynb", code("x = 1\n", "stage:load", first), code("y = 2\n", second))
    assert_one_line_error(cli("export", nb), "stage 'load'", "cell 1 ", "cell 2 ", named, "keep one of them")


def test_the_same_value_twice_is_no_conflict(cli, tmp_path):
    nb = write_nb(tmp_path / "a.ipynb", code("x = 1\n", "stage:load", "timeout:30m"), code("y = 2\n", "timeout:30m"))
    assert _export(cli, nb)["stages"]["load"]["settings"] == {"timeout": "30m"}


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("timeout:soon", "'soon' is not a duration"),
        ("timeout:0", "is not a duration"),
        ("timeout:", "needs a value"),
        ("memory:lots", "'lots' is not a size"),
        ("retries:-1", "whole number"),
        ("retries:two", "whole number"),
        ("allow-failure:yes", "takes no value"),
        ("env:1BAD=x", "not an environment variable name"),
        ("secret:MY-TOKEN", "not an environment variable name"),
        ("kernel:py thon", "not a kernel name"),
    ],
)
def test_a_bad_setting_tag_is_one_line_naming_the_cell_and_an_example(cli, tmp_path, tag, expected):
    nb = write_nb(tmp_path / "a.ipynb", code("x = 1\n", "stage:load", tag))
    result = cli("export", nb)
    assert_one_line_error(result, "cell 1 ", f"'{tag}'", expected)
    assert "e.g." in result[2] or "write just" in result[2]  # and the fix


@pytest.mark.parametrize(
    ("meta", "expected"),
    [({"retries": "many"}, "retries"), ({"env": ["A"]}, "env must map"), ({"timeout": True}, "timeout"), ({"secret": 3}, "secret")],
)
def test_bad_structured_settings_are_one_line(cli, tmp_path, meta, expected):
    nb = write_nb(tmp_path / "a.ipynb", code("x = 1\n", "stage:load", nb2pipe=meta))
    assert_one_line_error(cli("export", nb), "cell 1 ", "metadata nb2pipe.", expected)


def test_a_name_both_env_and_secret_is_refused(cli, tmp_path):
    nb = write_nb(tmp_path / "a.ipynb", code("x = 1\n", "stage:load", "env:TOKEN=abc", "secret:TOKEN"))
    assert_one_line_error(cli("export", nb), "TOKEN is both env: and secret:")


def _with_defaults(path: Path, defaults: object, *cells: dict) -> Path:
    data = notebook(*cells)
    data["metadata"]["nb2pipe"] = {"defaults": defaults}
    path.write_text(json.dumps(data))
    return path


def test_notebook_defaults_apply_to_every_stage_and_the_stages_own_win(cli, tmp_path):
    nb = _with_defaults(
        tmp_path / "a.ipynb",
        {"timeout": "1h", "retries": 1, "env": {"A": "default", "B": "default"}, "secret": ["S1"]},
        code("x = 1\n", "stage:load", "timeout:5m", "env:A=own"),
        code("y = 2\n", "stage:train"),
    )
    data = _export(cli, nb)
    assert data["defaults"] == {"timeout": "1h", "retries": 1, "env": {"A": "default", "B": "default"}, "secret": ["S1"]}
    pipeline = load_pipeline(tmp_path / "pipelines" / "a")
    load, train = (effective(pipeline, s) for s in pipeline.stages)
    assert (load.timeout, load.retries, dict(load.env), load.secrets) == (300, 1, {"A": "own", "B": "default"}, ("S1",))
    assert (train.timeout, dict(train.env)) == (3600, {"A": "default", "B": "default"})


def test_changing_the_defaults_makes_the_export_stale(cli, tmp_path):
    nb = _with_defaults(tmp_path / "a.ipynb", {"timeout": "1h"}, code("x = 1\n", "stage:load"))
    _export(cli, nb)
    _with_defaults(nb, {"timeout": "2h"}, code("x = 1\n", "stage:load"))
    assert _export(cli, nb)["defaults"] == {"timeout": "2h"}


def test_bad_defaults_are_one_line(cli, tmp_path):
    nb = _with_defaults(tmp_path / "a.ipynb", {"timeout": "soon"}, code("x = 1\n", "stage:load"))
    assert_one_line_error(cli("export", nb), "nb2pipe.defaults", "'soon' is not a duration")
    _with_defaults(nb, ["timeout"], code("x = 1\n", "stage:load"))
    assert_one_line_error(cli("export", nb), "nb2pipe.defaults must be a mapping")


def test_kales_memory_limit_is_the_memory_setting(cli, tmp_path):
    nb = write_nb(tmp_path / "a.ipynb", code("x = 1\n", "block:load", "limit:memory:2Gi", "limit:cpu:1"))
    stage = _export(cli, nb)["stages"]["load"]
    assert stage["settings"] == {"memory": "2GiB"} and stage["meta"]["limit"] == ["memory:2Gi", "cpu:1"]


def test_a_hand_edited_setting_in_nb2pipe_yaml_is_checked(cli, tmp_path):
    nb = write_nb(tmp_path / "a.ipynb", code("x = 1\n", "stage:load", "timeout:30m"))
    _export(cli, nb)
    spec = tmp_path / "pipelines" / "a" / m.PIPELINE_FILE
    spec.write_text(spec.read_text().replace("timeout: 30m", "timeot: 30m"))
    assert_one_line_error(cli("status", spec.parent), "stage 'load'", "unknown setting 'timeot'")
