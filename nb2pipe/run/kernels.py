"""Which kernel runs the stages, and a stage script as the notebook papermill executes.

nbformat (under jupytext and papermill) imports jsonschema, whose format checks import
rfc3987-syntax when it is installed, and that builds 38 Lark grammars at import: about a second,
several on a loaded machine. nbformat validates notebooks against draft-4 schemas, which have no
`iri` format, so nb2pipe imports nbformat without it (`import_notebook_libraries`); a process that
imported jsonschema before (a Jupyter server) keeps what it has.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from nb2pipe import model as m
from nb2pipe.errors import SpecError

if TYPE_CHECKING:
    from nbformat import NotebookNode

_IMPORTING = threading.Lock()
_GRAMMARS = "rfc3987_syntax"  # checks only the `iri` format, which no notebook schema uses


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


def choose_kernel(pipeline: m.Pipeline, requested: str | None, warn: Callable[[str], None]) -> str:
    """`--kernel`, else the notebook's kernelspec when installed, else this Python's kernel."""
    from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpecManager

    installed = KernelSpecManager().find_kernel_specs()
    if requested:
        if requested not in installed:
            raise SpecError(f"kernel '{requested}' is not installed; installed kernels: {', '.join(sorted(installed))}")
        return requested
    if pipeline.kernel and pipeline.kernel in installed:
        return pipeline.kernel
    if pipeline.kernel:
        warn(f"warning: kernel '{pipeline.kernel}' of the notebook is not installed; using '{NATIVE_KERNEL_NAME}' (choose with --kernel)")
    return NATIVE_KERNEL_NAME


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
    import jupytext

    return jupytext.reads(text, fmt="py:percent")
