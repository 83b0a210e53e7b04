"""Which kernel runs the stages, and a stage script as the notebook papermill executes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from nb2pipe import model as m
from nb2pipe.errors import SpecError

if TYPE_CHECKING:
    from nbformat import NotebookNode


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


def stage_notebook(pipeline: m.Pipeline, stage: m.Stage, text: str | None = None) -> NotebookNode:
    """The stage's script as a notebook (jupytext for .py, nbformat for .ipynb); `text`, when
    given, is the script as the runner read it (and hashed) at dispatch."""
    path = Path(pipeline.root) / str(stage.script)
    if text is None:
        if not path.is_file():
            raise SpecError(f"stage '{stage.name}': script '{path}' is missing; re-export the notebook")
        text = path.read_text(encoding="utf-8")
    if path.suffix == ".ipynb":
        import nbformat

        return nbformat.reads(text, as_version=4)
    import jupytext

    return jupytext.reads(text, fmt="py:percent")
