"""The package keeps its shape: import direction (import-linter), a light `--help` and `status`,
small modules and functions, no module named like the standard library's, no dead code."""

from __future__ import annotations

import argparse
import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO, code, write_nb
from helpers import set_cell, subprocess_env

HEAVY = ("papermill", "nbclient", "jupyter_server", "tornado", "jupytext", "nbconvert", "nbformat")


def test_import_direction_contracts_hold():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    result = subprocess.run([exe or "lint-imports"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_help_and_export_import_nothing_heavy():
    probe = (
        "import sys, json\n"
        "from nb2pipe.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(m for m in sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(json.loads(result.stdout.splitlines()[-1]))
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


STATUS_PROBE = (
    "import json, sys\n"
    "from nb2pipe.cli import main\n"
    "codes = [main(argv) for argv in json.loads(sys.argv[1])]\n"
    f"print(json.dumps({{'codes': codes, 'heavy': sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})}}))\n"
)


# imports the main thread of `nb2pipe run` makes before the first stage's `stage_started`
FIRST_STAGE_PROBE = """
import json, sys, threading
HEAVY, EXACT = {heavy!r}, {exact!r}
seen, imported = {{}}, []

class Watch:
    def find_spec(self, name, path=None, target=None):
        watched = name.split('.')[0] in HEAVY or name in EXACT
        if watched and threading.current_thread() is threading.main_thread() and not seen:
            imported.append(name)
        return None

sys.meta_path.insert(0, Watch())
import nb2pipe.run.events as events
emit = events.Events.emit
def watched(self, event, **fields):
    if event == 'stage_started' and not seen:
        seen['main thread'] = sorted(set(imported))
    return emit(self, event, **fields)
events.Events.emit = watched
from nb2pipe.cli import main
code = main(sys.argv[1:])
print(json.dumps({{'code': code, **seen}}))
"""


def test_the_way_to_the_first_stage_imports_no_kernel_or_notebook_library(tmp_path, cli):
    """jupyter_client (~0.1 s), nbformat, jupytext and papermill are imported by the kernel pool's
    and the executor's own threads while the first kernel boots: the main thread dispatches the
    first stage without them, for a notebook target (export check) and a pipeline folder."""
    write_nb(tmp_path / "nb.ipynb", code("x = 1", "parameters"), code("print(x)", "stage:a"), code("print(x + 1)", "stage:b"))
    heavy = ("jupyter_client", "zmq", "tornado", "papermill", "nbclient", "nbformat", "jupytext", "jsonschema", "IPython", "jupyter_server")
    # for a pipeline folder, neither the notebook reader nor what only the run's record needs (the
    # environment, its hash, the git commit: provenance.RunFacts works them out once a stage
    # started), nor subprocess (kernels are launched by the pool's threads), nor the executor and
    # its kernel pool, made once the first stage started, with concurrent.futures and logging
    not_needed_to_start = (
        "nb2pipe.notebook", "platform", "hashlib", "tempfile", "subprocess",
        "nb2pipe.run.local", "nb2pipe.run.pool", "concurrent.futures", "logging",
    )  # fmt: skip
    for target, exact in (("nb.ipynb", ()), ("pipelines/nb", not_needed_to_start)):
        result = subprocess.run(
            [sys.executable, "-c", FIRST_STAGE_PROBE.format(heavy=heavy, exact=exact), "run", target, "--force", "--events", "jsonl"],
            cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        )
        probe = json.loads(result.stdout.splitlines()[-1])
        assert probe == {"code": 0, "main thread": []}, (target, result.stderr[-2000:])


def test_status_imports_neither_papermill_nor_jupyter_server(tmp_path, monkeypatch, cli):
    """On a real pipeline that ran, then went stale (a parameter, the notebook, an output): every
    form of `status` answers without the executor's or the server's imports."""
    monkeypatch.chdir(tmp_path)
    write_nb(
        tmp_path / "nb.ipynb",
        code("import json", "setup"),
        code("alpha = 1", "parameters"),
        code("open('a.txt', 'w').write(str(alpha))", "stage:a", "out:a.txt"),
        code("open('b.txt', 'w').write(open('a.txt').read())\nscore = 0.5", "stage:b", "in:a.txt", "out:b.txt"),
        code("score = 0.5", "metrics"),
    )
    exit_code, _out, err = cli("run", "nb.ipynb")
    assert exit_code == 0, err
    (tmp_path / "b.txt").write_text("edited")
    set_cell(tmp_path / "nb.ipynb", 3, "open('a.txt', 'w').write(str(alpha) + '!')")
    forms = [["status", "pipelines/nb"], ["status", "pipelines/nb", "--json"], ["status", "nb.ipynb", "-p", "alpha=2"]]
    result = subprocess.run(
        [sys.executable, "-c", STATUS_PROBE, json.dumps(forms)], env=subprocess_env(), capture_output=True, text=True, check=True
    )
    assert "out modified: b.txt" in result.stdout and "source notebook changed since export" in result.stdout
    probe = json.loads(result.stdout.splitlines()[-1])
    assert probe == {"codes": [0, 0, 0], "heavy": []}


# --- every module under nb2pipe/ is named in an import-linter contract --------------------------

PACKAGE = REPO / "nb2pipe"
CONTRACT_FIELDS = ("modules", "source_modules", "forbidden_modules")


def package_modules() -> set[str]:
    """Every module and package under nb2pipe/ (the root package itself aside), by dotted name."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) > 1:
            found.add(".".join(parts))
    return found


def named_in_contracts() -> set[str]:
    """The module names the contracts in pyproject.toml mention: layers (with their containers),
    source, forbidden and independent modules."""
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    named = set()
    for contract in config["contracts"]:
        for field in CONTRACT_FIELDS:
            named.update(contract.get(field, []))
        containers = contract.get("containers") or [""]
        for layer in contract.get("layers", []):
            for tail in layer.replace("|", ":").split(":"):
                tail = tail.strip().strip("()")
                named.update(f"{container}.{tail}" if container else tail for container in containers)
    return named


def test_every_module_is_named_in_an_import_linter_contract():
    modules = package_modules()
    assert {"nb2pipe.run.local", "nb2pipe.exporters", "nb2pipe.server.handlers"} <= modules  # the scan sees subpackages
    unnamed = sorted(modules - named_in_contracts())
    assert not unnamed, (
        f"named in no import-linter contract: {', '.join(unnamed)}; add each to a contract in pyproject.toml "
        "[tool.importlinter] (a layer of its package, or a forbidden contract's source_modules)"
    )


def test_exporting_to_another_engine_imports_nothing_that_runs_stages(tmp_path):
    """`nb2pipe export --to dvc|airflow` renders text: no kernel machinery is loaded."""
    write_nb(tmp_path / "nb.ipynb", code("import os", "setup"), code("x = 1", "stage:a"), code("y = x + 1", "stage:b"))
    probe = (
        "import sys, json\n"
        "from nb2pipe.cli import main\n"
        "codes = [main(['export', 'nb.ipynb', '--to', target]) for target in ('dvc', 'airflow')]\n"
        "print(json.dumps([codes, sorted(m for m in sys.modules)]))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    codes, loaded = json.loads(result.stdout.splitlines()[-1])
    assert codes == [0, 0], result.stderr
    assert (tmp_path / "pipelines/nb/dvc.yaml").is_file() and (tmp_path / "dags/nb.py").is_file()
    assert not {m for m in loaded if m.split(".")[0] in (*HEAVY, "jupyter_client")}
    runs_stages = ("nb2pipe.run.runner", "nb2pipe.run.local", "nb2pipe.run.kernels", "nb2pipe.run.dask_executor", "nb2pipe.run.single")
    assert not {m for m in loaded if m in runs_stages}


# --- the size rule: no module over 600 lines, no function over 80 (issue 11) -----------------

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _size_offenders() -> dict[str, int]:
    """Every module over MAX_MODULE_LINES and every function (methods and nested ones too, from
    its first decorator to its last line) over MAX_FUNCTION_LINES: 'path' or 'path:qualname' -> lines."""
    found: dict[str, int] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            found[rel] = len(text.splitlines())
        for name, lines in _function_lengths(ast.parse(text)):
            if lines > MAX_FUNCTION_LINES:
                found[f"{rel}:{name}"] = lines
    return found


def _function_lengths(tree: ast.AST, prefix: str = ""):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = prefix + node.name
            if not isinstance(node, ast.ClassDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                yield name, node.end_lineno - first + 1
            yield from _function_lengths(node, name + ".")
        else:
            yield from _function_lengths(node, prefix)


def test_no_module_over_600_lines_and_no_function_over_80():
    offenders = _size_offenders()
    assert not offenders, "split these (lines): " + ", ".join(f"{n} ({k})" for n, k in sorted(offenders.items()))


def test_the_size_scan_sees_methods_nested_functions_and_decorators():
    tree = ast.parse(
        "class A:\n    @staticmethod\n    @other\n    def m():\n        def inner():\n            pass\n"
    )
    assert dict(_function_lengths(tree)) == {"A.m": 5, "A.m.inner": 2}


def test_no_module_is_named_like_a_standard_library_module():
    """A module named like one of Python's (`marshal`, `ast`, ...) shadows it for code run from
    its folder and confuses readers and tools; generated stage scripts import nb2pipe's modules."""
    shadowing = sorted(
        path.relative_to(REPO).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path.stem in sys.stdlib_module_names or (path.name == "__init__.py" and path.parent.name in sys.stdlib_module_names)
    )
    assert not shadowing, f"rename these modules: {', '.join(shadowing)}"


# Called by name by Jupyter or Python, never by nb2pipe's own code.
HOOKS = {"_jupyter_labextension_paths", "_jupyter_server_extension_points", "_load_jupyter_server_extension", "__getattr__"}


def test_every_top_level_function_and_class_is_used():
    """Dead code goes: a top-level function, class or constant of nb2pipe/ must be named somewhere
    besides its definition (nb2pipe's code, pyproject.toml's entry points, or the README for the
    public API)."""
    sources = {path: path.read_text(encoding="utf-8") for path in sorted(PACKAGE.rglob("*.py"))}
    corpus = "\n".join([*sources.values(), (REPO / "pyproject.toml").read_text(), (REPO / "README.md").read_text()])
    words: dict[str, int] = {}
    for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", corpus):
        words[word] = words.get(word, 0) + 1
    unused = []
    for path, text in sources.items():
        for node in ast.parse(text).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [target.id for target in node.targets if isinstance(target, ast.Name)]
            else:
                continue
            unused += [f"{path.relative_to(REPO).as_posix()}:{n}" for n in names if words.get(n, 0) < 2 and n not in HOOKS]
    assert not unused, f"unused, remove them: {', '.join(unused)}"


def test_every_command_is_in_the_list_that_lets_a_start_build_only_its_own_parser():
    """cli.main builds only the typed command's parser; a command missing from cli.COMMANDS
    would still work, but build every parser at each start."""
    from nb2pipe.cli import COMMANDS, build_parser

    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subcommands.choices) == set(COMMANDS)
    for name in COMMANDS:
        only = next(a for a in build_parser(name)._actions if isinstance(a, argparse._SubParsersAction))
        assert set(only.choices) == {name}
