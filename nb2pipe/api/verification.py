"""`nb2pipe verify NOTEBOOK`: does the pipeline print and write what the notebook does, run top to bottom?

1. Check the notebook can be exported (a refusal is one error, before anything runs).
2. Copy the notebook's working folder into a temporary folder once per run (its data with it;
   never its `.git`, any `.nb2pipe/` state, run folders or `nb2pipe.lock`), so no run writes
   into the workspace, its lock or its run history. Symlinks are copied as the files they name,
   so no write goes through one.
3. A: the notebook top to bottom (`run.plain`, `skip` cells out), in one copy. Its failure is
   the notebook's own: an error, not a difference.
4. B: the pipeline, `api.run` on the notebook in another copy (exported there, every stage run,
   `--jobs` as given), not recorded.
5. A2: the notebook again. Whatever A and A2 disagree on is not comparable (unseeded randomness,
   timings). When the pipeline differs somewhere, up to two more plain runs make sure it is not
   noise that happened to repeat (a die-roll cell gives the same number twice one time in six).
6. Compare (`compare`): every cell's printed output and `text/plain` results, every file both
   wrote. The report: the differences, one line each, what was not comparable, and the summary.
7. Ctrl-C or SIGTERM (whatever signal dispositions the process inherited) stops it as it stops
   `nb2pipe run`: the kernels are stopped and the copies removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nb2pipe import model as m
from nb2pipe.api.compare import (
    Comparison,
    Difference,
    PipelineRun,
    PlainRun,
    compare,
    pipeline_outputs,
    plain_outputs,
    snapshot,
    written_files,
)
from nb2pipe.errors import KernelStartError, NotebookError, SpecError, StageError

PLAIN_RUNS = 2  # always; when the pipeline differs somewhere, up to MAX_PLAIN_RUNS, to be sure
MAX_PLAIN_RUNS = 4
NOT_COPIED = frozenset({".git", ".hg", ".svn", ".nb2pipe", ".ipynb_checkpoints", "__pycache__", "node_modules", ".tox", ".mypy_cache"})
NOT_COPIED_IN_PIPELINE = frozenset({"runs", "nb2pipe.lock"})


@dataclass(frozen=True)
class VerifyReport:
    """What `verify` found: the comparison, how many plain runs it took, kernels started again."""

    notebook: str
    comparison: Comparison
    plain_runs: int
    retries: list[str] = field(default_factory=list)

    @property
    def compared_something(self) -> bool:
        return self.comparison.cells + self.comparison.files > 0

    @property
    def equal(self) -> bool:
        return not self.comparison.differences and self.compared_something

    @property
    def exit_code(self) -> int:
        return 0 if self.equal else 1

    @property
    def summary(self) -> str:
        """`verified: 41 cells, 6 files equal; 2 not comparable` (and what differs, or that nothing was compared)."""
        c = self.comparison
        text = f"verified: {_count(c.cells_equal, 'cell')}, {_count(c.files_equal, 'file')} equal; {len(c.not_comparable)} not comparable"
        if c.differences:
            text += f"; {len(c.differences)} differ"
        if not self.compared_something:
            text += "; nothing compared, so equivalence is not shown"
        return text

    def lines(self) -> list[str]:
        """One line per difference, then one per thing not comparable."""
        return [f"differs: {d.line}" for d in self.comparison.differences] + [
            f"not comparable: {what}" for what in self.comparison.not_comparable
        ]

    def to_json(self) -> dict[str, Any]:
        c = self.comparison
        return {
            "notebook": self.notebook,
            "equal": self.equal,
            "exit": self.exit_code,
            "summary": self.summary,
            "compared": {"cells": c.cells, "files": c.files},
            "equal_count": {"cells": c.cells_equal, "files": c.files_equal},
            "differences": [d.to_json() for d in c.differences],
            "not_comparable": list(c.not_comparable),
            "plain_runs": self.plain_runs,
            "kernel_start_retries": list(self.retries),
        }


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def verify(
    notebook: str | os.PathLike[str],
    *,
    jobs: int | None = None,
    params: Mapping[str, Any] | None = None,
    kernel: str | None = None,
    progress: Callable[[str], None] = lambda text: None,
) -> VerifyReport:
    """Run the notebook top to bottom and its pipeline, each in a copy of its working folder, and
    compare them (see the module's description). The workspace is never written."""
    from nb2pipe.export import plan_export
    from nb2pipe.run.starting import signals_interrupt

    notebook = Path(notebook)
    _check_notebook(notebook)
    if jobs is not None and jobs < 1:
        raise SpecError(f"--jobs {jobs} is not a number of stages; use 1 or more")
    pipeline = plan_export(notebook, None).pipeline  # a notebook nb2pipe refuses is one error, before anything runs
    kernel = _kernel_for(pipeline, kernel)
    values = dict(params or {})
    root = Path(tempfile.mkdtemp(prefix="nb2pipe-verify-"))
    try:
        with _no_progress_bars(), signals_interrupt():
            return _verify_in(root, notebook, values, jobs, kernel, progress)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _check_notebook(notebook: Path) -> None:
    if not notebook.is_file():
        raise NotebookError(f"notebook '{notebook}' does not exist; pass the path of a .ipynb file")
    if notebook.suffix != ".ipynb":
        raise NotebookError(f"'{notebook}' is not a notebook; pass a .ipynb file (verify compares a notebook with its pipeline)")


def _verify_in(
    root: Path, notebook: Path, params: dict[str, Any], jobs: int | None, kernel: str, progress: Callable[[str], None]
) -> VerifyReport:
    retries: list[str] = []
    runs: list[PlainRun] = []

    def plain() -> None:
        progress(f"running '{notebook}' top to bottom ({len(runs) + 1})")
        runs.append(_run_plain(root, notebook, len(runs) + 1, params, kernel, retries))

    plain()
    progress(f"running the pipeline of '{notebook}'")
    piped = _run_pipeline(root, notebook, params, jobs, kernel)
    while len(runs) < PLAIN_RUNS and piped.finished:
        plain()
    result = compare(runs, piped)
    while result.differences and not piped.problems and len(runs) < MAX_PLAIN_RUNS:
        plain()
        result = compare(runs, piped)
    return VerifyReport(str(notebook), result, len(runs), retries)


def _run_plain(root: Path, notebook: Path, number: int, params: dict[str, Any], kernel: str, retries: list[str]) -> PlainRun:
    from nb2pipe.run.plain import NUMBER_KEY, run_top_to_bottom

    folder, before = _copy_working_folder(notebook, root / f"notebook-{number}")
    executed = root / f"notebook-{number}.executed.ipynb"
    nb = run_top_to_bottom(folder / notebook.name, folder, executed, params, kernel, retries, shown=str(notebook))
    return PlainRun(plain_outputs(nb, NUMBER_KEY), written_files(folder, before, _left_out(notebook)))


def _kernel_for(pipeline: m.Pipeline, requested: str | None) -> str:
    """The kernel both runs use: the one the pipeline's stages would run on (`run.kernels.choose_kernel`)."""
    from nb2pipe.run.kernels import choose_kernel

    return choose_kernel(pipeline, requested, lambda text: None)


def _run_pipeline(root: Path, notebook: Path, params: dict[str, Any], jobs: int | None, kernel: str) -> PipelineRun:
    from nb2pipe.api.tracked import folder_of, run
    from nb2pipe.spec import load_pipeline

    folder, before = _copy_working_folder(notebook, root / "pipeline")
    target = folder / notebook.name
    report = run(target, jobs=jobs, params=params, kernel=kernel, record=False)
    pipeline_folder = folder_of(target)
    written = written_files(folder, before, _left_out(notebook))
    if not report.ok:
        _refuse_kernel_failure(report.errors.values())
        failures = [_failure(error) for error in report.errors.values()]
        return PipelineRun({}, written, failures or [Difference("run", f"the pipeline did not finish: {report.summary}")], finished=False)
    outputs, problems = pipeline_outputs(pipeline_folder / "runs" / report.run_id, load_pipeline(pipeline_folder).names)
    return PipelineRun(outputs, written, problems, left_out=_left_out_cells(target))


def _left_out_cells(notebook: Path) -> dict[int, str]:
    """The cells the pipeline leaves out of its stages on purpose (install lines), and why."""
    from nb2pipe.export import plan_export

    plan = plan_export(notebook, None).plan
    return {cell.number: "installs packages, which the pipeline leaves to its environment" for cell in (plan.installs if plan else ())}


def _refuse_kernel_failure(errors: Iterable[StageError]) -> None:
    """A kernel that never started ran nothing: verify cannot tell, which is not a difference."""
    for error in errors:
        if error.ename == KernelStartError.__name__:
            raise KernelStartError(f"cannot verify: stage '{error.stage}': {error.evalue}")


def _failure(error: StageError) -> Difference:
    """A stage that failed in the pipeline: its notebook cell and exception (its files went with the copy)."""
    found = re.search(r"\bcell (\d+)", error.cell or "")
    cell = int(found.group(1)) if found else None
    where = f" in cell {cell}" if cell else ""
    return Difference("run", f"stage '{error.stage}' failed{where}: {error.exception}", cell=cell, stage=error.stage)


def _left_out(notebook: Path) -> list[str]:
    """What no run's written files include: the notebook and its pipeline folder."""
    from nb2pipe.export import default_folder

    return [notebook.name, default_folder(Path(notebook.name)).as_posix()]


def _copy_working_folder(notebook: Path, target: Path) -> tuple[Path, dict[str, tuple[int, int]]]:
    """A copy of the notebook's folder at `target` (see the module's description), and its snapshot."""
    from nb2pipe.export import default_folder

    source = notebook.resolve().parent
    scratch = target.parent.resolve()  # a notebook in the temporary folder itself: not copied into itself
    pipeline = (source / default_folder(Path(notebook.name))).resolve()

    def ignore(folder: str, names: list[str]) -> set[str]:
        left = {n for n in names if n in NOT_COPIED or n.startswith(".venv") or Path(folder, n).resolve() == scratch}
        if Path(folder).resolve() == pipeline:
            left |= NOT_COPIED_IN_PIPELINE & set(names)
        return left

    shutil.copytree(source, target, symlinks=False, ignore=ignore, ignore_dangling_symlinks=True)
    return target, snapshot(target)


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """tqdm's progress bars off in every kernel (they print timings that differ from run to run)."""
    previous = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = previous
