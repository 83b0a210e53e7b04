"""Damaged input files give one line `error: ...`, exit code 2, no traceback, for every command.

Each case damages one thing a user could hand nb2pipe (the notebook, nb2pipe.yaml, params.yaml,
--params-file, a -p value, a dep) and runs the real CLI on it. Cases that would block a process
reading them (a FIFO, /dev/zero) run in a subprocess with a generous timeout, so a regression
fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import yaml

from conftest import code, md, notebook, write_nb
from helpers import assert_one_line_error, run_cli


def _nb(path: Path, data) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _cell(**fields) -> dict:
    return {"cell_type": "code", "metadata": {}, "source": "x = 1", **fields}


# --- notebooks ---------------------------------------------------------------------------------

NOTEBOOKS = {
    "notebook metadata is a list": (
        {**notebook(code("x = 1")), "metadata": [1]},
        "'metadata' must be a JSON object",
    ),
    "notebook metadata is a string": (
        {**notebook(code("x = 1")), "metadata": "x"},
        "'metadata' must be a JSON object",
    ),
    "kernelspec is a list": (
        {**notebook(code("x = 1")), "metadata": {"kernelspec": [1]}},
        "'metadata.kernelspec' must be a JSON object",
    ),
    "cell metadata is a list": (notebook(_cell(metadata=[1])), "cell 1: 'metadata' must be a JSON object"),
    "cell metadata is a string": (notebook(code("y = 2"), _cell(metadata="x")), "cell 2: 'metadata' must be a JSON object"),
    "cell metadata is a number": (notebook(_cell(metadata=5)), "cell 1: 'metadata' must be a JSON object"),
    "tags is a mapping": (notebook(_cell(metadata={"tags": {"a": 1}})), "cell 1: 'metadata.tags' must be a list of strings"),
    "tags hold non-strings": (
        notebook(_cell(metadata={"tags": [1, None, ["stage:x"]]})),
        "cell 1: 'metadata.tags' must be a list of strings",
    ),
    "source is a number": (notebook(_cell(source=5)), "cell 1: 'source' must be text"),
    "source is a list of non-strings": (notebook(_cell(source=[1, None])), "cell 1: 'source' must be text"),
    "source is a mapping": (notebook(_cell(source={"a": 1})), "cell 1: 'source' must be text"),
    "unknown cell_type": (notebook(code("y = 1"), _cell(cell_type="weird")), "cell 2: unknown cell_type 'weird'"),
    "cell_type is a list": (notebook(_cell(cell_type=["code"])), "cell 1: unknown cell_type ['code']"),
    "cell_type missing": (notebook({"metadata": {}, "source": "x = 1"}), "cell 1: unknown cell_type None"),
    "nbformat 4 with worksheets only": ({"nbformat": 4, "worksheets": [], "metadata": {}}, "no 'cells'"),
    "nested 100,000 deep": ('{"cells": ' + "[" * 100_000 + "]" * 100_000 + ', "nbformat": 4}', "nested too deeply"),
    "nested deep in cell metadata": (
        '{"nbformat": 4, "metadata": {}, "cells": [{"cell_type": "code", "source": "x = 1", "metadata": {"x": '
        + "[" * 100_000 + "]" * 100_000 + "}}]}",
        "nested too deeply",
    ),
}


@pytest.mark.parametrize("command", ["export", "explain", "run"])
@pytest.mark.parametrize("case", NOTEBOOKS, ids=list(NOTEBOOKS))
def test_a_damaged_notebook_is_one_line(tmp_path, cli, case, command):
    data, expected = NOTEBOOKS[case]
    path = _nb(tmp_path / "analysis.ipynb", data)
    argv = [command, path] + (["--dry-run"] if command == "run" else [])
    assert_one_line_error(cli(*argv), "analysis.ipynb", expected)
    assert not (tmp_path / "pipelines").exists(), "a failed export writes nothing"


PARAMETERS = {
    "complex number": ("a = 1+2j", "a complex number"),
    "ellipsis": ("a = ...", "'...'"),
    "infinite float": ("a = 1e999", "the number inf"),
    "negative infinite float": ("a = -1e999", "the number -inf"),
    "set": ("a = {1, 2}", "a set"),
    "bytes": ("a = b'x'", "bytes"),
    "tuple dict key": ("a = {(1, 2): 3}", "the dict key (1, 2), which is not a string"),
    "int dict key": ("a = {1: 'one'}", "the dict key 1, which is not a string"),
    "tuple": ("a = (1, 2)", "a tuple"),
    "complex inside a list": ("a = [1, {'k': 2j}]", "a complex number"),
}


@pytest.mark.parametrize("case", PARAMETERS, ids=list(PARAMETERS))
def test_a_parameter_params_yaml_cannot_keep_is_refused(tmp_path, cli, case):
    line, what = PARAMETERS[case]
    path = write_nb(tmp_path / "analysis.ipynb", code("b = 1\n" + line, "parameters"), code("print(a, b)"))
    assert_one_line_error(cli("export", path), "cell 1 (parameters) line 2: parameter 'a' holds", what, "cannot pass on unchanged")
    assert not (tmp_path / "pipelines").exists()


def test_parameters_params_yaml_can_keep_still_export(tmp_path, cli):
    source = "a = 1\nb = -2.5e3\nc = 'x'\nd = [1, None, True]\ne = {'k': [1.5], 'two': {'x': None}}"
    path = write_nb(tmp_path / "analysis.ipynb", code(source, "parameters"), code("print(a, b, c, d, e)"))
    status, _, err = cli("export", path)
    assert status == 0, err
    params = yaml.safe_load((tmp_path / "pipelines/analysis/params.yaml").read_text())
    assert params == {"a": 1, "b": -2500.0, "c": "x", "d": [1, None, True], "e": {"k": [1.5], "two": {"x": None}}}


# --- files that are not regular files: they must be refused before they are read ---------------


@pytest.mark.parametrize("command", ["export", "explain"])
def test_dev_zero_as_the_notebook_is_refused_before_reading(tmp_path, command):
    assert_one_line_error(run_cli(command, "/dev/zero", cwd=tmp_path), "'/dev/zero' is not a regular file")


@pytest.mark.parametrize("command", ["export", "explain"])
def test_a_fifo_as_the_notebook_is_refused_before_reading(tmp_path, command):
    os.mkfifo(tmp_path / "analysis.ipynb")
    assert_one_line_error(run_cli(command, tmp_path / "analysis.ipynb", cwd=tmp_path), "is not a regular file")


def test_an_absurdly_big_notebook_is_refused_before_reading(tmp_path, cli):
    path = tmp_path / "analysis.ipynb"
    with open(path, "wb") as handle:  # sparse: takes no disk space
        handle.truncate(5 << 30)
    assert_one_line_error(cli("export", path), "analysis.ipynb", "GB", "clear its outputs")


@pytest.fixture
def pipeline(tmp_path, cli) -> Path:
    """A freshly exported two-stage pipeline folder."""
    nb = write_nb(tmp_path / "analysis.ipynb", code("a = 1", "parameters"), code("x = a + 1", "stage:one"), code("y = x * 2", "stage:two"))
    status, _, err = cli("export", nb)
    assert status == 0, err
    return tmp_path / "pipelines" / "analysis"


@pytest.mark.parametrize("name", ["nb2pipe.yaml", "params.yaml"])
@pytest.mark.parametrize("command", ["show", "status"])
def test_a_fifo_in_place_of_a_pipeline_file_is_refused(pipeline, name, command):
    (pipeline / name).unlink()
    os.mkfifo(pipeline / name)
    assert_one_line_error(run_cli(command, pipeline, cwd=pipeline), name, "is not a regular file")


@pytest.mark.parametrize("name", ["nb2pipe.yaml", "params.yaml"])
def test_a_folder_in_place_of_a_pipeline_file_is_refused(pipeline, cli, name):
    (pipeline / name).unlink()
    (pipeline / name).mkdir()
    assert_one_line_error(cli("status", pipeline), name, "is a folder")


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_a_params_file_that_is_not_a_regular_file_is_refused(pipeline, kind):
    if kind == "fifo":
        os.mkfifo(pipeline / "more.yaml")
        target = pipeline / "more.yaml"
    else:
        target = Path(kind)
    result = run_cli("run", pipeline, "--dry-run", "--params-file", target, cwd=pipeline)
    assert_one_line_error(result, "--params-file", "is not a regular file")


# --- nb2pipe.yaml ------------------------------------------------------------------------------


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def change(data: dict) -> None:
        for key in keys[:-1]:
            data = data[key]
        data[keys[-1]] = value

    return change


PIPELINE_FILES = {
    "version true": (_set("version", True), "version True is not supported"),
    "source.notebook a number": (_set("source", "notebook", 5), "'source.notebook' must be a path"),
    "source.notebook a list": (_set("source", "notebook", ["a"]), "'source.notebook' must be a path"),
    "source.hash a number": (_set("source", "hash", 3), "'source.hash' must be a string"),
    "source.notebook with a NUL": (_set("source", "notebook", "a\0b"), "NUL"),
    "wdir a list": (_set("wdir", [1]), "'wdir' must be a path"),
    "wdir a number": (_set("wdir", 5), "'wdir' must be a path"),
    "params a mapping": (_set("params", {"a": 1}), "'params' must be a path"),
    "kernel a list": (_set("kernel", [1]), "'kernel' must be a kernel name"),
    "kernel a number": (_set("kernel", 5), "'kernel' must be a kernel name"),
    "unknown top-level key": (_set("stage", {}), "unknown key 'stage'; did you mean 'stages'?"),
    "stage None": (_set("stages", "one", None), "stage 'one' must be a mapping"),
    "script a list": (_set("stages", "one", "script", [1]), "stage 'one': 'script' must be a path"),
    "script empty": (_set("stages", "one", "script", ""), "stage 'one': 'script' must be a path"),
    "script with a NUL": (_set("stages", "one", "script", "a\0b"), "NUL"),
    "cells of text": (_set("stages", "one", "cells", ["x"]), "stage 'one': 'cells' must be a list of cell numbers"),
    "cells a number": (_set("stages", "one", "cells", 5), "stage 'one': 'cells' must be a list of cell numbers"),
    "cells a string": (_set("stages", "one", "cells", "x"), "stage 'one': 'cells' must be a list of cell numbers"),
    "cells with None": (_set("stages", "one", "cells", [None]), "stage 'one': 'cells' must be a list of cell numbers"),
    "cells a fraction": (_set("stages", "one", "cells", [1.5]), "stage 'one': 'cells' must be a list of cell numbers"),
    "cells a mapping": (_set("stages", "one", "cells", {"a": 1}), "stage 'one': 'cells' must be a list of cell numbers"),
    "meta nested": (_set("stages", "one", "meta", {"a": {"b": 1}}), "stage 'one': 'meta' must map names to strings"),
    "meta number key": (_set("stages", "one", "meta", {1: "x"}), "stage 'one': 'meta' must map names to strings"),
    "loads to a list": (_set("stages", "one", "loads", {"a": [1]}), "stage 'one': 'loads' must map variable names to stage names"),
    "loads to None": (_set("stages", "one", "loads", {"a": None}), "stage 'one': 'loads' must map variable names to stage names"),
    "dep with a NUL": (_set("stages", "one", "deps", ["a\0b"]), "NUL"),
    "empty dep": (_set("stages", "one", "deps", [""]), "stage 'one': 'deps' holds an empty path"),
    "unknown stage key": (_set("stages", "one", "dep", ["x"]), "stage 'one': unknown key 'dep'; did you mean 'deps'?"),
    "a param that is not a name": (
        _set("stages", "one", "params", ["a; import os"]),
        "stage 'one': 'params' holds 'a; import os', which is not a Python name",
    ),
    "a saved variable that is not a name": (
        _set("stages", "one", "saves", ["x y"]),
        "stage 'one': 'saves' holds 'x y', which is not a Python name",
    ),
    "a loaded variable that is not a name": (
        _set("stages", "one", "loads", {"1x": "two"}),
        "stage 'one': 'loads' must map variable names to stage names",
    ),
    "loads from a bad stage name": (
        _set("stages", "one", "loads", {"x": "Two Words"}),
        "stage 'one': 'loads' must map variable names to stage names",
    ),
}


@pytest.mark.parametrize("command", ["show", "status", "run"])
@pytest.mark.parametrize("case", PIPELINE_FILES, ids=list(PIPELINE_FILES))
def test_a_damaged_pipeline_file_is_one_line(pipeline, cli, case, command):
    change, expected = PIPELINE_FILES[case]
    spec = pipeline / "nb2pipe.yaml"
    data = yaml.safe_load(spec.read_text())
    change(data)
    spec.write_text(yaml.safe_dump(data))
    argv = [command, pipeline] + (["--dry-run"] if command == "run" else [])
    assert_one_line_error(cli(*argv), "nb2pipe.yaml", expected)


@pytest.mark.parametrize("name", ["nb2pipe.yaml", "params.yaml"])
def test_a_pipeline_file_that_is_not_utf8_is_one_line(pipeline, cli, name):
    path = pipeline / name
    path.write_bytes(path.read_bytes().replace(b"analysis", b"analys\xffs", 1) if name == "nb2pipe.yaml" else b"a: \xff\n")
    for command in ("show", "status"):
        assert_one_line_error(cli(command, pipeline), name, "is not UTF-8 text", "byte 0xff")


def _alias_bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_in_params_yaml_is_refused_quickly(pipeline):
    (pipeline / "params.yaml").write_text(_alias_bomb() + "a: *a9\n")
    for command in ("show", "status"):
        assert_one_line_error(run_cli(command, pipeline, cwd=pipeline), "params.yaml", "expands to more than")


def test_an_alias_bomb_in_the_pipeline_file_is_refused_quickly(pipeline):
    spec = pipeline / "nb2pipe.yaml"
    text = spec.read_text().replace("stages:", _alias_bomb() + "stages:", 1)
    spec.write_text(text.replace("script: stages/one.py", "script: stages/one.py\n    meta: {x: *a9}", 1))
    assert_one_line_error(run_cli("show", pipeline, cwd=pipeline), "nb2pipe.yaml")


def test_params_yaml_with_a_name_that_is_not_a_string(pipeline, cli):
    (pipeline / "params.yaml").write_text("a: 1\n1: 2\n")
    for command in ("show", "status"):
        assert_one_line_error(cli(command, pipeline), "params.yaml", "parameter name 1 is not a string")


# --- --params-file and -p ----------------------------------------------------------------------

PARAMS_FILES = {
    "not UTF-8": (b"a: \xff\n", "is not UTF-8 text"),
    "a list": (b"[1]\n", "must be a mapping of names to values"),
    "invalid YAML": (b"a: [\n", "is not valid YAML"),
    "a name that is not a string": (b"1: 2\n", "parameter name 1 is not a string"),
    "an alias bomb": (_alias_bomb().encode() + b"a: *a9\n", "expands to more than"),
}


@pytest.mark.parametrize("case", PARAMS_FILES, ids=list(PARAMS_FILES))
def test_a_damaged_params_file_is_one_line(pipeline, cli, case):
    content, expected = PARAMS_FILES[case]
    (pipeline.parent / "more.yaml").write_bytes(content)
    assert_one_line_error(cli("run", pipeline, "--dry-run", "--params-file", pipeline.parent / "more.yaml"), "more.yaml", expected)


@pytest.mark.parametrize("what", ["missing", "folder"])
def test_a_params_file_that_cannot_be_read(pipeline, cli, what):
    target = pipeline.parent / "more.yaml"
    if what == "folder":
        target.mkdir()
    assert_one_line_error(cli("run", pipeline, "--dry-run", "--params-file", target), "more.yaml")


@pytest.mark.parametrize("value, typed", [("1e999", float("inf")), ("1+2j", "1+2j"), ("...", "..."), ("-x", "-x"), ("1_000", 1000)])
def test_p_values_are_typed_as_papermill_types_them(value, typed):
    from nb2pipe.spec import parse_value

    assert parse_value(value) == typed


# --- deps that are not regular files or folders ------------------------------------------------


@pytest.fixture
def ran_pipeline(tmp_path, cli) -> Path:
    """A one-stage command pipeline, run once, whose dep 'thing' is a regular file."""
    folder = tmp_path / "pipe"
    folder.mkdir()
    (folder / "nb2pipe.yaml").write_text(
        "version: 1\nstages:\n  one:\n"
        f"    cmd: [{json.dumps(sys.executable)}, -c, \"open('out.txt', 'w').write('1')\"]\n"
        "    deps: [thing]\n    outs: [out.txt]\n"
    )
    (folder / "thing").write_text("data")
    status, out, err = cli("run", folder)
    assert status == 0, out + err
    return folder


@pytest.mark.parametrize("kind", ["fifo", "socket", "/dev/zero", "symlink loop"])
def test_a_dep_that_is_not_a_file_or_folder_is_hashed_without_reading_it(ran_pipeline, kind):
    thing = ran_pipeline / "thing"
    thing.unlink()
    if kind == "fifo":
        os.mkfifo(thing)
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(thing))
    elif kind == "/dev/zero":
        thing.symlink_to("/dev/zero")
    else:
        thing.symlink_to(thing)
    status, out, err = run_cli("status", ran_pipeline, cwd=ran_pipeline)
    assert (status, err) == (0, ""), err
    assert "dep changed: thing" in out
    status, out, err = run_cli("run", ran_pipeline, "--dry-run", cwd=ran_pipeline)
    assert status == 0 and "Traceback" not in err, err
    assert "would run" in out + err


def test_a_special_file_hashes_as_a_stable_marker_by_kind(tmp_path):
    from nb2pipe.hashing import HashCache

    os.mkfifo(tmp_path / "a")
    os.mkfifo(tmp_path / "b")
    cache = HashCache(None)
    fifo = cache.hash_path(tmp_path / "a")
    assert fifo == cache.hash_path(tmp_path / "b") and fifo.startswith("blake3:")
    assert cache.hash_path(Path("/dev/zero")) not in (None, fifo)
    assert cache.hash_path(Path("/dev/zero")) != cache.hash_path(Path("/dev/null"))


def test_a_symlink_loop_inside_a_dep_folder_is_marked_not_a_crash(tmp_path):
    from nb2pipe.hashing import HashCache

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x").write_text("1")
    before = HashCache(None).hash_path(tmp_path / "data")
    (tmp_path / "data" / "self").symlink_to(tmp_path / "data" / "self")
    after = HashCache(None).hash_path(tmp_path / "data")
    assert after is not None and after != before


# --- run on a bad notebook prints nothing but the error -----------------------------------------


def test_run_on_a_bad_notebook_prints_only_the_error(tmp_path, cli):
    path = write_nb(tmp_path / "analysis.ipynb", md("# t"), code("a = 1+2j", "parameters"), code("print(a)"))
    assert_one_line_error(cli("run", path), "a complex number")
    assert not (tmp_path / "pipelines").exists()


# --- stage scripts named by a hand-edited nb2pipe.yaml ------------------------------------------


@pytest.mark.parametrize("script", ["/dev/zero", "fifo.py", "latin1.py"])
def test_a_stage_script_that_cannot_be_read_as_text_is_one_line(tmp_path, cli, script):
    (tmp_path / "nb2pipe.yaml").write_text(f"version: 1\nstages:\n  one:\n    script: {script}\n")
    (tmp_path / "nb2pipe.lock").write_text("schema: 1\nstages:\n  one: {code: 'blake3:0'}\n")
    if script == "fifo.py":
        os.mkfifo(tmp_path / script)
    elif script == "latin1.py":
        (tmp_path / script).write_bytes("x = 'é'\n".encode("latin-1"))
    assert_one_line_error(run_cli("status", tmp_path, cwd=tmp_path), "stage 'one'", script)


@pytest.mark.parametrize("stage", [["a"], 5, {"name": "a"}, [[[[1]]]] * 50])
def test_a_structured_stage_that_is_not_a_string_is_named_briefly(tmp_path, cli, stage):
    path = write_nb(tmp_path / "analysis.ipynb", code("x = 1", nb2pipe={"stage": stage}))
    status, out, err = cli("export", path)
    assert_one_line_error((status, out, err), "cell 1 ('x = 1'): metadata nb2pipe.stage must be a stage name")
    assert len(err) < 300, err


def test_a_stage_name_with_a_trailing_newline_is_refused(pipeline, cli, tmp_path):
    """`$` in a regular expression matches before a final newline; a stage name must not end in one."""
    spec = pipeline / "nb2pipe.yaml"
    data = yaml.safe_load(spec.read_text())
    data["stages"]["one\n"] = data["stages"].pop("one")
    spec.write_text(yaml.safe_dump(data))
    assert_one_line_error(cli("show", pipeline), "bad stage name 'one\\n'")
    path = write_nb(tmp_path / "other.ipynb", code("x = 1", nb2pipe={"stage": "train\n"}))
    assert_one_line_error(cli("export", path), "bad stage name")
