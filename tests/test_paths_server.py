"""The server and paths named by parameters (issue 12, item 4): a run whose parameter values name
a file outside the server root is refused before anything runs, as a path written in the
pipeline file is (tests/test_server_paths.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from conftest import code, write_nb
from helpers import expect_error, fetch_json
from nb2pipe.export import export_notebook
from test_server import jp_server_config  # noqa: F401  (fixture)

PIPE = "work/pipelines/reader"


@pytest.fixture
def reader(jp_root_dir) -> Path:
    """work/reader.ipynb: stage `load` reads the file parameter `input_file` names; exported."""
    (jp_root_dir / "work").mkdir()
    (jp_root_dir / "work" / "in.txt").write_text("1 2 3")
    notebook = write_nb(
        jp_root_dir / "work" / "reader.ipynb",
        code("input_file = 'in.txt'", "parameters"),
        code("numbers = open(input_file).read().split()\nprint(len(numbers))", "stage:load"),
    )
    export_notebook(notebook)
    return notebook


@pytest.fixture
def secret(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("outside") / "secret.txt"
    path.write_text("4242")
    return path


async def test_a_run_whose_parameter_names_a_file_outside_the_root_is_refused(jp_fetch, jp_root_dir, reader, secret):
    written = os.path.relpath(secret, jp_root_dir / "work")
    body = await expect_error(jp_fetch, 403, "runs", method="POST", body=json.dumps({"path": PIPE, "params": {"input_file": written}}))
    assert f"'{written}'" in body["message"] and "outside the server root" in body["message"], body
    assert not (reader.parent / "pipelines" / "reader" / "runs").exists(), "nothing ran"


async def test_status_with_params_yaml_naming_a_file_outside_the_root_is_refused(jp_fetch, jp_root_dir, reader, secret):
    params = reader.parent / "pipelines" / "reader" / "params.yaml"
    params.write_text(yaml.safe_dump({"input_file": os.path.relpath(secret, jp_root_dir / "work")}))
    body = await expect_error(jp_fetch, 403, "status", params={"path": PIPE})
    assert "outside the server root" in body["message"] and "4242" not in json.dumps(body)


async def test_status_of_a_pipeline_with_a_parameter_path_inside_the_root(jp_fetch, reader):
    code_, body = await fetch_json(jp_fetch, "status", params={"path": PIPE})
    assert code_ == 200
    assert [s["name"] for s in body["stages"]] == ["load"]
