"""Which kernel runs the stages, and a stage script as the notebook papermill executes."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from nb2pipe import model as m
from nb2pipe.errors import SpecError


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


def stage_notebook(pipeline: m.Pipeline, stage: m.Stage):
    """The stage's script read as a notebook (jupytext for .py, nbformat for .ipynb)."""
    path = Path(pipeline.root) / str(stage.script)
    if not path.is_file():
        raise SpecError(f"stage '{stage.name}': script '{path}' is missing; re-export the notebook")
    if path.suffix == ".ipynb":
        import nbformat

        return nbformat.read(str(path), as_version=4)
    import jupytext

    return jupytext.read(str(path), fmt="py:percent")
