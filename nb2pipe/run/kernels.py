"""Which kernel runs the stages, and a stage script as the notebook papermill executes.

nbformat (under jupytext and papermill) imports jsonschema, whose format checks import
rfc3987-syntax when it is installed, and that builds 38 Lark grammars at import: about a second,
several on a loaded machine. nbformat validates notebooks against draft-4 schemas, which have no
`iri` format, so nb2pipe imports nbformat without it (`import_notebook_libraries`); a process that
imported jsonschema before (a Jupyter server) keeps what it has.

The heavy libraries (jupyter_client, nbformat, jupytext, papermill) are imported by several
threads of a run at once (kernel starters, papermill's importer, the dispatcher). Their packages
import each other in cycles, and two threads importing parts of one cycle at once can see a
half-initialized module ("cannot import name ... partially initialized module"): they are
imported one thread at a time (`import_heavy`).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from nb2pipe import model as m
from nb2pipe.errors import SpecError

if TYPE_CHECKING:
    from nbformat import NotebookNode

_IMPORTING = threading.RLock()  # held while a heavy library is imported
_IMPORTED: dict[str, ModuleType] = {}  # what import_heavy imported, whole
_GRAMMARS = "rfc3987_syntax"  # checks only the `iri` format, which no notebook schema uses
KERNEL_START_TIMEOUT_S = 60.0  # how long a starting kernel may take to answer (NB2PIPE_KERNEL_START_TIMEOUT)
KERNEL_START_TIMEOUT_ENV = "NB2PIPE_KERNEL_START_TIMEOUT"


def import_heavy(name: str) -> ModuleType:
    """Import module `name` while no other thread imports a heavy library; cheap once done."""
    if name in _IMPORTED:  # not merely in sys.modules: there it may still be half initialized
        return _IMPORTED[name]
    with _IMPORTING:
        _IMPORTED[name] = importlib.import_module(name)
        return _IMPORTED[name]


def start_importing(name: str) -> None:
    """Import module `name` in a thread of its own; return once that thread holds the import lock,
    so it goes before any heavy import asked for from now on (an error is left for the next
    import of it to raise)."""
    if name in _IMPORTED:
        return
    holding = threading.Event()

    def work() -> None:
        with _IMPORTING:
            holding.set()
            with contextlib.suppress(Exception):
                import_heavy(name)

    threading.Thread(target=work, name=f"nb2pipe-import-{name}", daemon=True).start()
    holding.wait()


def import_notebook_libraries() -> None:
    """Import nbformat, and jsonschema under it, without rfc3987-syntax's grammars when this
    process has not imported jsonschema yet. Safe from any thread; cheap once done."""
    with _IMPORTING:
        if "jsonschema" not in sys.modules and _GRAMMARS not in sys.modules:
            sys.modules[_GRAMMARS] = None  # type: ignore[assignment]  # an import of it fails: jsonschema skips the check
            try:
                importlib.import_module("jsonschema._format")  # where jsonschema tries to import it
            finally:
                del sys.modules[_GRAMMARS]
        import nbformat  # noqa: F401


NATIVE_KERNEL_NAME = "python3"  # jupyter_client's name for this Python's kernel (ipykernel)


def choose_kernel(pipeline: m.Pipeline, requested: str | None, warn: Callable[[str], None]) -> str:
    """`--kernel`, else the notebook's kernelspec when installed, else this Python's kernel."""
    if not requested and pipeline.kernel in (None, "", NATIVE_KERNEL_NAME) and importlib.util.find_spec("ipykernel"):
        return NATIVE_KERNEL_NAME  # always installed with ipykernel: no need to look for the others
    installed = installed_kernels()
    if requested:
        if requested not in installed:
            raise SpecError(f"kernel '{requested}' is not installed; installed kernels: {', '.join(sorted(installed))}")
        return requested
    if pipeline.kernel and pipeline.kernel in installed:
        return pipeline.kernel
    if pipeline.kernel:
        warn(f"warning: kernel '{pipeline.kernel}' of the notebook is not installed; using '{NATIVE_KERNEL_NAME}' (choose with --kernel)")
    return NATIVE_KERNEL_NAME


def installed_kernels() -> set[str]:
    """The names of the installed kernels, found as jupyter_client's KernelSpecManager finds them
    (a folder holding a kernel.json in a Jupyter data path's `kernels`, or in IPython's, its name
    lower-cased; `python3` when ipykernel is installed) without importing jupyter_client and
    IPython (~0.1 s, on the way to the first stage). Traitlets configuration of the manager
    (`allowed_kernelspecs`, `kernel_dirs`) is not read."""
    from jupyter_core.paths import jupyter_path

    folders = jupyter_path("kernels")
    if importlib.util.find_spec("IPython") is not None:
        folders.append(os.path.join(os.environ.get("IPYTHONDIR") or os.path.expanduser("~/.ipython"), "kernels"))
    names: set[str] = set()
    for folder in folders:
        with contextlib.suppress(OSError):
            names.update(e.name.lower() for e in os.scandir(folder) if os.path.isfile(os.path.join(e.path, "kernel.json")))
    if importlib.util.find_spec("ipykernel") is not None:
        names.add(NATIVE_KERNEL_NAME)
    return names


def imported_modules(notebook: NotebookNode) -> tuple[str, ...]:
    """The absolute modules a notebook's code cells import at their top level, in order, each
    once (`import a.b` and `from a.b import c` give 'a.b'); a cell Python cannot parse is skipped."""
    found: dict[str, None] = {}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except (SyntaxError, ValueError):  # magics, shell escapes: the stage imports those itself
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                found.update(dict.fromkeys(alias.name for alias in node.names))
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found[node.module] = None
    return tuple(found)


# what an import may read that a cell can change: os.environ (also `%env`), sys.path, the working
# folder (also `%cd`), and the cells that put back those an earlier stage changed (carry.py)
_IMPORT_ENVIRONMENT = re.compile(
    r"\benviron\b|\bputenv\b|\bsys\.path\b|\bchdir\b|^\s*%(env|cd)\b|_nb2pipe_restore_state\('working folder'", re.M
)


def changes_what_imports_see(notebook: NotebookNode) -> bool:
    """Whether a stage's cells may change what a module sees when it is imported; such a stage
    must not run in a kernel where modules were imported ahead of it (pool.KernelPool.take)."""
    return any(cell.cell_type == "code" and _IMPORT_ENVIRONMENT.search(cell.source) for cell in notebook.cells)


def stage_notebook(pipeline: m.Pipeline, stage: m.Stage, text: str | None = None) -> NotebookNode:
    """The stage's script as a notebook (jupytext for .py, nbformat for .ipynb); `text`, when
    given, is the script as the runner read it (and hashed) at dispatch."""
    path = Path(pipeline.root) / str(stage.script)
    if text is None:
        if not path.is_file():
            raise SpecError(f"stage '{stage.name}': script '{path}' is missing; re-export the notebook")
        text = path.read_text(encoding="utf-8")
    import_notebook_libraries()
    if path.suffix == ".ipynb":
        import nbformat

        return nbformat.reads(text, as_version=4)
    jupytext = import_heavy("jupytext")
    return jupytext.reads(text, fmt="py:percent")


def describe_exit(status: int | None) -> str:
    """'exit code 1', 'killed by SIGSEGV', ... for a process's exit status (negative: a signal)."""
    if status is None:
        return "still running"
    if status >= 0:
        return f"exit code {status}"
    try:
        name = signal.Signals(-status).name
    except ValueError:
        name = f"signal {-status}"
    if name == "SIGKILL":
        return "killed by SIGKILL; out of memory?"  # what the Linux out-of-memory killer sends
    return f"killed by {name}"


def stage_environments(pipeline: m.Pipeline, names: list[str]) -> dict[str, dict[str, str]]:
    """What each named stage's kernel starts with (stage_env.kernel_environment: its env: values
    and secrets), checked before anything runs: an unknown `kernel:`, a passed-through variable
    or a secret that is not set is a SpecError naming the stage."""
    from nb2pipe.settings import effective
    from nb2pipe.stage_env import kernel_environment

    installed: set[str] | None = None
    environments: dict[str, dict[str, str]] = {}
    for name in names:
        stage = pipeline.stage(name)
        settings = effective(pipeline, stage)
        if settings.kernel and settings.kernel != NATIVE_KERNEL_NAME:
            installed = installed_kernels() if installed is None else installed
            if settings.kernel.lower() not in installed:
                raise SpecError(
                    f"stage '{name}': kernel '{settings.kernel}' is not installed; installed kernels: {', '.join(sorted(installed))}"
                )
        env, secrets = kernel_environment(pipeline, name, settings)
        environments[name] = {**env, **secrets}
    return environments


def hold_stage_environments(pipeline: m.Pipeline, names: list[str]) -> tuple[dict[str, dict[str, str]], tuple[str, ...]]:
    """`stage_environments`, with their secrets' values held for redaction (run/redact.py) from
    now on: (environments, what to release when the run ends)."""
    from nb2pipe.run.redact import hold
    from nb2pipe.settings import effective

    environments = stage_environments(pipeline, names)
    secrets = {(n, s) for n in names for s in effective(pipeline, pipeline.stage(n)).secrets}
    return environments, hold(value for n, env in environments.items() for name, value in env.items() if (n, name) in secrets)
