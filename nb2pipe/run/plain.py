"""A notebook run top to bottom, as its author runs it: what `nb2pipe verify` compares a pipeline with.

1. The notebook is read and the `skip` cells are left out (Kale's semantics, and the pipeline's).
   Every kept cell carries its 1-based number in the original notebook in its metadata
   (`NUMBER_KEY`), so its output can be matched with the pipeline cell made from it. A Kale
   `pipeline-parameters` cell is also tagged `parameters`, so papermill injects values after it.
2. papermill executes that notebook in `cwd` with the given parameters and writes it to `executed`.
3. A kernel that dies before it answers its first message (on a busy machine, most often another
   process took one of its ports) is started again: nothing ran yet. Each retry is noted in `retries`.
4. A cell that raises is the notebook's own failure: a `NotebookError` naming the cell and the exception.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nb2pipe.errors import NotebookError
from nb2pipe.run.kernels import import_heavy, import_notebook_libraries

NUMBER_KEY = "nb2pipe_cell"  # the cell's 1-based number in the original notebook
SKIP_TAG = "skip"
KALE_PARAMETERS_TAG = "pipeline-parameters"
KERNEL_START_FAILURE = "Kernel died before replying to kernel_info"
ATTEMPTS = 3


def run_top_to_bottom(
    notebook: Path, cwd: Path, executed: Path, params: dict[str, Any], kernel: str, retries: list[str], shown: str = ""
) -> dict[str, Any]:
    """Run `notebook` (read, not written) top to bottom in `cwd`; the executed notebook as JSON.
    `shown`: the notebook's name in an error (default: its path)."""
    import_notebook_libraries()
    papermill = import_heavy("papermill")  # other threads may import it or its parts too
    from papermill.exceptions import PapermillExecutionError

    source = executed.with_name(executed.stem + ".input.ipynb")
    source.write_text(json.dumps(numbered_without_skip(notebook)), encoding="utf-8")
    for attempt in range(1, ATTEMPTS + 1):
        try:
            papermill.execute_notebook(
                str(source), str(executed), parameters=params, kernel_name=kernel, cwd=str(cwd), progress_bar=False,
                kernel_manager_class=quiet_kernel_manager(),
            )
        except PapermillExecutionError as error:
            raise NotebookError(_failure_line(shown or str(notebook), executed, error)) from None
        except RuntimeError as error:
            if KERNEL_START_FAILURE not in str(error) or attempt == ATTEMPTS:
                raise
            retries.append(f"{executed.stem}: {error}")
            continue
        loaded: dict[str, Any] = json.loads(executed.read_text(encoding="utf-8"))
        return loaded
    raise AssertionError("unreachable")


def quiet_kernel_manager() -> type:
    """A kernel manager whose kernels' own stdout and stderr (start-up chatter) go to a file of
    their own, not to the verify command's output: what the cells print comes over ZMQ. It is
    the stages' kernel manager (run/kernel_client.py), so its client sees a kernel hung
    half-started by a taken port as dead before it answered, and the kernel is started again."""
    import tempfile

    from nb2pipe.run.kernel_client import KernelManager

    class QuietKernelManager(KernelManager):
        def __init__(self, **kwargs: Any):
            super().__init__(tempfile.TemporaryFile(), **kwargs)  # noqa: SIM115  # closed with the manager's kernel

        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]  # AsyncKernelManager makes it async
            kw.setdefault("stdout", self.output)
            kw.setdefault("stderr", self.output)
            await super().start_kernel(**kw)

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart=restart)
            if not restart:
                self.output.close()

    return QuietKernelManager


def numbered_without_skip(notebook: Path) -> dict[str, Any]:
    """The notebook's JSON without its `skip` cells, each kept cell numbered as in the original."""
    try:
        nb: dict[str, Any] = json.loads(notebook.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise NotebookError(f"cannot read '{notebook}' as a notebook ({error}); pass a .ipynb file") from None
    kept = []
    for number, cell in enumerate(nb.get("cells", []), start=1):
        tags = cell.setdefault("metadata", {}).get("tags", [])
        if SKIP_TAG in tags:
            continue
        if KALE_PARAMETERS_TAG in tags and "parameters" not in tags:
            cell["metadata"]["tags"] = [*tags, "parameters"]
        cell["metadata"][NUMBER_KEY] = number
        if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) >= (4, 5):
            cell.setdefault("id", f"nb2pipe-cell-{number}")
        kept.append(cell)
    nb["cells"] = kept
    return nb


def _failure_line(notebook: str, executed: Path, error: Any) -> str:
    """One line: which cell of the notebook raised what."""
    number = _failed_cell_number(executed)
    where = f"cell {number}" if number else "a cell"
    return (
        f"notebook '{notebook}' fails when run top to bottom: {where} raised {error.ename}: {error.evalue}; "
        "verify compares a pipeline with a notebook that runs: fix the notebook first"
    )


def _failed_cell_number(executed: Path) -> int | None:
    """The original number of the cell whose output is an error in the executed notebook."""
    try:
        cells = json.loads(executed.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return None
    for cell in cells:
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            number = cell.get("metadata", {}).get(NUMBER_KEY)
            return number if isinstance(number, int) else None
    return None
