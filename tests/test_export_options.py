"""A pipeline keeps the options it was exported with (`--format`, `--split-level`, recorded in
nb2pipe.yaml): every later export of its notebook uses them, whoever starts it (`nb2pipe run
NOTEBOOK`, a plain `nb2pipe export`, `export --check`, `explain`, nbconvert, the server's export
and its export-before-run), until the user passes other flags."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from tornado.httpclient import HTTPClientError

from conftest import code, md, write_nb

NB = "report.ipynb"
PIPE = Path("pipelines/report")
LEVEL_2 = ["data", "model"]  # the stages of a default export (## headings)
LEVEL_3 = ["load", "clean", "fit"]  # ... and of --split-level 3 (### headings)


def write_report(root: Path, factor: int = 2) -> Path:
    return write_nb(
        root / NB,
        md("## Data"),
        md("### Load"),
        code("x = 1"),
        md("### Clean"),
        code("y = x + 1"),
        md("## Model"),
        md("### Fit"),
        code(f"z = y * {factor}\nwith open('z.txt', 'w') as out:\n    out.write(str(z))"),
    )


def stage_files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / PIPE / "stages").iterdir())


def stage_names(root: Path) -> list[str]:
    return list(yaml.safe_load((root / PIPE / "nb2pipe.yaml").read_text())["stages"])


def assert_level_3_notebooks(root: Path) -> None:
    assert stage_names(root) == LEVEL_3
    assert stage_files(root) == sorted(f"{name}.ipynb" for name in LEVEL_3)


@pytest.fixture
def exported(tmp_path, monkeypatch, cli) -> Path:
    """report.ipynb exported with --split-level 3 --format ipynb, then changed (z = y * 3)."""
    monkeypatch.chdir(tmp_path)
    write_report(tmp_path)
    exit_code, _, err = cli("export", NB, "--split-level", "3", "--format", "ipynb")
    assert exit_code == 0, err
    assert_level_3_notebooks(tmp_path)
    write_report(tmp_path, factor=3)
    return tmp_path


def test_nb2pipe_yaml_records_the_export_options(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    write_report(tmp_path)
    assert cli("export", NB)[0] == 0
    assert yaml.safe_load((tmp_path / PIPE / "nb2pipe.yaml").read_text())["export"] == {"format": "py", "split_level": 2}
    assert cli("export", NB, "--split-level", "3", "--format", "ipynb")[0] == 0
    assert yaml.safe_load((tmp_path / PIPE / "nb2pipe.yaml").read_text())["export"] == {"format": "ipynb", "split_level": 3}


@pytest.mark.slow
def test_run_notebook_re_exports_with_the_recorded_options(exported, cli):
    exit_code, out, err = cli("run", NB)
    assert exit_code == 0, err
    assert f"exported '{NB}'" in err
    assert_level_3_notebooks(exported)
    assert (exported / "z.txt").read_text() == "6"  # the changed notebook ran
    assert out.strip().splitlines()[-1] == "3 ran, 0 up to date, 0 restored from cache, 0 failed"


def test_a_plain_export_keeps_the_recorded_options_and_check_compares_with_them(exported, cli):
    assert cli("export", NB, "--check")[0] == 1  # the notebook changed
    exit_code, _out, err = cli("export", NB)
    assert exit_code == 0, err
    assert_level_3_notebooks(exported)
    assert cli("export", NB, "--check") == (0, f"pipeline '{PIPE}' is up to date with '{NB}'\n", "")


def test_flags_given_again_replace_the_recorded_options(exported, cli):
    assert cli("export", NB, "--split-level", "2")[0] == 0  # the format stays ipynb
    assert stage_names(exported) == LEVEL_2
    assert stage_files(exported) == ["data.ipynb", "model.ipynb"]
    assert cli("export", NB, "--format", "py")[0] == 0  # the split level stays 2
    assert stage_files(exported) == ["data.py", "model.py"]
    assert cli("export", NB)[0] == 0
    assert stage_files(exported) == ["data.py", "model.py"]


def test_explain_splits_the_notebook_as_its_pipeline_was_split(exported, cli):
    exit_code, out, err = cli("explain", NB, "--json")
    assert exit_code == 0, err
    assert [s["name"] for s in json.loads(out)["stages"]] == LEVEL_3
    exit_code, out, err = cli("explain", NB, "--json", "--split-level", "2")
    assert [s["name"] for s in json.loads(out)["stages"]] == LEVEL_2


def test_nbconvert_keeps_the_recorded_options(exported):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "nb2pipe", NB],
        cwd=exported, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert_level_3_notebooks(exported)


@pytest.mark.parametrize(
    "export, problem",
    [
        ("{format: docx, split_level: 2}", "'export.format' must be py or ipynb"),
        ("{format: py, split_level: 9}", "'export.split_level' must be a heading level from 1 to 6"),
        ("{format: py, split_level: '3'}", "'export.split_level' must be a heading level from 1 to 6"),
        ("{format: py, level: 3}", "unknown key 'level'"),
        ("[py, 3]", "'export' must be a mapping"),
    ],
)
def test_a_damaged_export_entry_is_one_line_naming_it(exported, cli, export, problem):
    spec = exported / PIPE / "nb2pipe.yaml"
    text = spec.read_text()
    assert "export: {format: ipynb, split_level: 3}\n" in text
    spec.write_text(text.replace("export: {format: ipynb, split_level: 3}", f"export: {export}"))
    for argv in (["status", PIPE], ["export", NB, "--force"]):
        exit_code, out, err = cli(*argv)
        assert exit_code == 2 and out == "", err
        assert err.startswith("error: ") and err.count("\n") == 1 and problem in err, err
        assert "nb2pipe.yaml" in err
    # passing both flags replaces the damaged entry
    assert cli("export", NB, "--force", "--split-level", "3", "--format", "ipynb")[0] == 0
    assert_level_3_notebooks(exported)


# --- the server --------------------------------------------------------------------------------


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"nb2pipe.server": True}}}


async def _post(jp_fetch, route: str, body: dict) -> tuple[int, dict]:
    try:
        response = await jp_fetch("nb2pipe", route, method="POST", body=json.dumps(body))
    except HTTPClientError as error:  # the test fails with the server's message
        raise AssertionError(error.response.body if error.response else error) from None
    return response.code, json.loads(response.body)


async def test_the_servers_export_keeps_the_recorded_options(jp_fetch, jp_root_dir, cli, monkeypatch):
    monkeypatch.chdir(jp_root_dir)
    write_report(jp_root_dir)
    assert cli("export", NB, "--split-level", "3", "--format", "ipynb")[0] == 0
    write_report(jp_root_dir, factor=3)
    code_, body = await _post(jp_fetch, "export", {"path": NB})
    assert code_ == 200 and body["stages"] == LEVEL_3
    assert_level_3_notebooks(jp_root_dir)


@pytest.mark.slow
async def test_the_servers_run_of_a_notebook_re_exports_with_the_recorded_options(jp_fetch, jp_root_dir, cli, monkeypatch):
    monkeypatch.chdir(jp_root_dir)
    write_report(jp_root_dir)
    assert cli("export", NB, "--split-level", "3", "--format", "ipynb")[0] == 0
    write_report(jp_root_dir, factor=3)
    code_, job = await _post(jp_fetch, "runs", {"path": NB})
    assert code_ == 202
    deadline = time.monotonic() + 300
    while not job["finished"] and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        response = await jp_fetch("nb2pipe", "runs", job["id"])
        job = json.loads(response.body)
    assert job["status"] == "ok", job
    assert sorted(job["stages"]) == sorted(LEVEL_3)
    assert_level_3_notebooks(jp_root_dir)
    assert (jp_root_dir / "z.txt").read_text() == "6"
