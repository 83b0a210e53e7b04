"""The server stays inside its root and answers bad requests with a 4xx that says why: symlinks
leading out, pipelines naming paths outside the root, over-long paths, bad `limit`s, big bodies."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import code, write_nb
from helpers import expect_error, fetch_json
from nb2pipe.export import export_notebook
from test_server import jp_server_config, tiny  # noqa: F401  (fixtures)

PIPE = "work/pipelines/tiny"


def every_route(path: str) -> list[tuple[str, tuple[str, ...], dict]]:
    """(method, route, request) of each route that takes a path."""
    return [
        ("GET", ("status",), {"params": {"path": path}}),
        ("GET", ("runs",), {"params": {"path": path}}),
        ("POST", ("runs",), {"body": json.dumps({"path": path})}),
        ("GET", ("diff",), {"params": {"path": path, "a": "latest~1", "b": "latest"}}),
    ]


async def refused_everywhere(jp_fetch, path: str, status: int, says: str = "") -> None:
    for method, route, request in every_route(path):
        body = await expect_error(jp_fetch, status, *route, method=method, **request)
        assert says in body["message"], (method, route, body)


@pytest.fixture
def outside(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("outside")


@pytest.fixture
def exported(tiny) -> Path:
    return export_notebook(tiny).folder


def edit_pipeline(folder: Path, change) -> None:
    spec = folder / "nb2pipe.yaml"
    data = yaml.safe_load(spec.read_text())
    change(data, data["stages"]["make"])
    spec.write_text(yaml.safe_dump(data, sort_keys=False))


# --- symlinks and paths that lead out --------------------------------------------------------


async def test_a_pipelines_folder_that_is_a_symlink_out_is_refused(jp_fetch, jp_root_dir, tiny, outside):
    (tiny.parent / "pipelines").symlink_to(outside, target_is_directory=True)
    body = await expect_error(jp_fetch, 403, "export", method="POST", body=json.dumps({"path": "work/tiny.ipynb"}))
    assert "'work/pipelines/tiny'" in body["message"] and "outside the server root" in body["message"]
    assert not list(outside.iterdir()), "nothing is written outside the root"
    export_notebook(tiny)  # as the CLI may: now there is a pipeline out there
    assert (outside / "tiny" / "nb2pipe.yaml").is_file()
    await refused_everywhere(jp_fetch, "work/tiny.ipynb", 403, "outside the server root")
    await refused_everywhere(jp_fetch, PIPE, 403, "outside the server root")


async def test_a_notebook_or_pipeline_reached_through_a_symlink_is_refused(jp_fetch, jp_root_dir, outside):
    write_nb(outside / "far.ipynb", code("n = 1", "parameters"), code("print(n)", "stage:show"))
    export_notebook(outside / "far.ipynb")
    (jp_root_dir / "link").symlink_to(outside, target_is_directory=True)
    await refused_everywhere(jp_fetch, "link/far.ipynb", 403, "outside the server root")
    await refused_everywhere(jp_fetch, "link/pipelines/far", 403, "outside the server root")


def outside_dep(folder: Path, outside: Path, name: str) -> str:
    target = outside / name
    target.write_text("secret")
    old = 1_600_000_000
    os.utime(target, (old, old))  # old enough for the hash cache to remember it
    return os.path.relpath(target, folder.parent.parent)  # relative to wdir (the notebook's folder)


def add(key: str, value: str):
    return lambda data, stage: stage.setdefault(key, []).append(value)


@pytest.mark.parametrize("kind", ["dep", "out", "metrics", "folder dep", "wdir", "params", "script", "state folder"])
async def test_a_pipeline_naming_a_path_outside_the_root_is_refused(jp_fetch, jp_root_dir, exported, outside, kind):
    if kind in ("dep", "out"):
        written = outside_dep(exported, outside, "secret.txt")
        edit_pipeline(exported, add(kind + "s", written))
    elif kind == "metrics":
        (outside / "m.json").write_text(json.dumps({"leak": 4242}))
        written = os.path.relpath(outside / "m.json", jp_root_dir / "work")
        edit_pipeline(exported, add("metrics", written))
    elif kind == "folder dep":
        (jp_root_dir / "work" / "data").mkdir()
        (jp_root_dir / "work" / "data" / "link").symlink_to(outside, target_is_directory=True)
        outside_dep(exported, outside, "inner.txt")
        written = "data"
        edit_pipeline(exported, add("deps", written))
    elif kind == "wdir":
        written = os.path.relpath(outside, exported)
        edit_pipeline(exported, lambda data, stage: data.update(wdir=written))
    elif kind == "params":
        (outside / "p.yaml").write_text("n: 4242\n")
        written = os.path.relpath(outside / "p.yaml", exported)
        edit_pipeline(exported, lambda data, stage: data.update(params=written))
    elif kind == "script":
        shutil.move(exported / "stages" / "make.py", outside / "make.py")
        (exported / "stages" / "make.py").symlink_to(outside / "make.py")
        written = "stages/make.py"
    else:
        (exported / ".nb2pipe").symlink_to(outside, target_is_directory=True)
        written = ".nb2pipe"
    edited = kind not in ("script", "state folder")
    for path in ("work/tiny.ipynb", PIPE):
        for method, route, request in every_route(path):
            if edited and method == "POST" and path.endswith(".ipynb"):
                # running a notebook re-exports it first, which will not overwrite the edited pipeline file
                body = await expect_error(jp_fetch, 409, *route, method=method, **request)
                assert "edited by hand" in body["message"]
                continue
            if kind in ("out", "metrics"):  # nb2pipe refuses such a pipeline file wherever it is loaded
                body = await expect_error(jp_fetch, 400, *route, method=method, **request)
                assert f"'{written}'" in body["message"] and "outside the project" in body["message"], (method, route, body)
            else:
                body = await expect_error(jp_fetch, 403, *route, method=method, **request)
                assert f"'{written}'" in body["message"] and "outside the server root" in body["message"], (method, route, body)
            assert "4242" not in json.dumps(body)
    hashes = exported / ".nb2pipe" / "hashcache.json"
    assert not (hashes.exists() and str(outside) in hashes.read_text()), "an outside file was hashed"
    assert not (outside / "hashcache.json").exists() and not (outside / "runs.db").exists()


# --- malformed requests ----------------------------------------------------------------------

LONG_PATHS = ["a" * 5000, "work/" + "b" * 300 + ".ipynb", "c" * 256]


@pytest.mark.parametrize("path", LONG_PATHS, ids=["5000 chars", "a 300-char name", "a 256-char name"])
async def test_over_long_paths_are_400(jp_fetch, tiny, path):
    await refused_everywhere(jp_fetch, path, 400, "too long")
    body = await expect_error(jp_fetch, 400, "export", method="POST", body=json.dumps({"path": path}))
    assert "too long" in body["message"]


@pytest.mark.parametrize("limit", ["abc", "-1", "0", "2.5", "1" * 30])
async def test_a_bad_limit_is_400(jp_fetch, exported, limit):
    body = await expect_error(jp_fetch, 400, "runs", params={"path": PIPE, "limit": limit})
    assert "'limit'" in body["message"]


async def test_a_good_limit_is_obeyed(jp_fetch, exported):
    code_, body = await fetch_json(jp_fetch, "runs", params={"path": PIPE, "limit": "5"})
    assert code_ == 200 and body == {"runs": [], "sweep_trials": {}}


@pytest.mark.parametrize("route", ["export", "runs"])
async def test_a_body_over_the_size_limit_is_413(jp_fetch, tiny, route):
    body = json.dumps({"path": "work/tiny.ipynb", "padding": "x" * (2 * 1024 * 1024)})
    answer = await expect_error(jp_fetch, 413, route, method="POST", body=body)
    assert "too large" in answer["message"]
    assert not (tiny.parent / "pipelines").exists()


@pytest.mark.parametrize(
    "route, fields, says",
    [
        ("runs", {"force": "false"}, "'force'"),
        ("runs", {"downstream": 1}, "'downstream'"),
        ("runs", {"stages": "make"}, "'stages'"),
        ("runs", {"stages": [1]}, "'stages'"),
        ("runs", {"params": [["n", 1]]}, "'params'"),
        ("export", {"force": "no"}, "'force'"),
    ],
)
async def test_fields_of_the_wrong_type_are_400(jp_fetch, exported, route, fields, says):
    body = await expect_error(jp_fetch, 400, route, method="POST", body=json.dumps({"path": "work/tiny.ipynb", **fields}))
    assert says in body["message"]
    _, status = await fetch_json(jp_fetch, "status", params={"path": "work/tiny.ipynb"})
    assert status["job"] is None
