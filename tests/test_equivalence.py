"""The test that matters (DESIGN §2): running a notebook's pipeline gives what the notebook gives.

For every example notebook, and every corpus notebook that runs offline with the libraries
installed here, in a temporary folder:

1. A and A2: the notebook run top to bottom twice with papermill, `skip` cells removed first
   (Kale semantics). Whatever differs between them (unseeded randomness, timings, time stamps)
   is nondeterministic and is not compared; when the pipeline disagrees with them, up to two
   more plain runs make sure the disagreement is not noise that happened to repeat (a die-roll
   cell gives the same number twice one time in six). The test says which cells and files it
   left out and why (a `NotCompared` warning and the `not_compared` property), so it stays honest.
2. B: `nb2pipe run NOTEBOOK`, which exports the notebook and runs every stage in a fresh kernel;
   it must exit 0.
3. Cell for cell, the text output of every code cell (stdout, and `text/plain` of results and
   displays; stderr and warnings are ignored) must match. Pipeline cells map to notebook cells
   through their titles ("<notebook> cell N"); a setup cell runs in every stage and is compared
   at its first occurrence, in pipeline order.
4. Every file both runs wrote (outside `pipelines/`) must be byte-identical (an executed notebook
   but for the times papermill records in it), and each run must write the same files.
5. A case that compared nothing (0 cells and 0 files) fails: equivalence was not shown.

The corpus is read, never written: each notebook is copied into tmp_path first.
"""

from __future__ import annotations

import ast
import csv
import difflib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml

from conftest import CORPUS, EXAMPLES
from helpers import INTENDED_CORPUS_REFUSALS

pytestmark = pytest.mark.slow

PROVENANCE = CORPUS / "PROVENANCE.tsv"
KERNEL = "python3"
SKIP_TAG = "skip"  # Kale's spelling, and nb2pipe's
PARAMETER_TAGS = {"parameters", "pipeline-parameters", "injected-parameters"}
NUMBER_KEY = "equivalence_test_cell"  # the 1-based number of the cell in the original notebook
RUN_TIMEOUT = 1200  # seconds for one `nb2pipe run`
OFFLINE_STATUSES = ("offline-stdlib", "offline-core")


class NotCompared(UserWarning):
    """Cells or files left out of the comparison because two plain runs already disagree."""


@dataclass(frozen=True)
class Case:
    """One notebook to check, with what it needs to run offline."""

    path: Path
    params: dict[str, Any] = field(default_factory=dict)
    support: tuple[tuple[Path, str], ...] = ()  # (source file, path relative to the notebook's folder)
    refused_by_design: str = ""  # a fragment of the one-line error nb2pipe gives, by design


# Corpus notebooks that need something more than a copy of themselves to run offline.
EXTRA_NEEDS: dict[str, dict[str, Any]] = {
    # PROVENANCE: "needs papermill CLI on PATH and simple_input.ipynb at {binder_dir}/cli-simple/
    # (run with -p binder_dir .)". papermill is on PATH for both runs (the venv's bin folder).
    "papermill__nteract__papermill__binder_cli-simple_cli_example.ipynb": {
        "params": {"binder_dir": "."},
        "support": (
            (CORPUS / "papermill__nteract__papermill__binder_cli-simple_simple_input.ipynb", "cli-simple/simple_input.ipynb"),
        ),
    },
}

# Notebooks nb2pipe refuses on purpose (helpers.INTENDED_CORPUS_REFUSALS): `nb2pipe run` must then
# fail with exactly that error, and the notebook is skipped with the error line as the reason.

# Notebooks whose pipeline is not equivalent because of a known nb2pipe bug: strict xfails, so the
# test says so the day the bug is fixed.
KNOWN_BUGS: dict[str, str] = {}


# --- which notebooks --------------------------------------------------------------------------


def _missing_modules(path: Path, extra: list[str]) -> list[str]:
    """Top-level modules imported by the notebook's non-skip code cells, or named in `extra`,
    that cannot be imported here."""
    nb = nbformat.read(str(path), as_version=4)
    names = set(extra)
    for cell in nb.cells:
        if cell.cell_type != "code" or SKIP_TAG in cell.metadata.get("tags", []):
            continue
        code = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return sorted(n for n in names if importlib.util.find_spec(n) is None)


def _corpus_id(row: dict[str, str], stems: list[str]) -> str:
    """'corpus:<repo>:<file stem>', with the parent folder when the stem is short or not unique."""
    path = Path(row["path"])
    name = path.stem if len(path.stem) >= 10 and stems.count(path.stem) == 1 else f"{path.parent.name}/{path.stem}"
    return f"corpus:{row['repo'].split('/')[-1]}:{name.replace(' ', '-')}"


def _corpus_params() -> list:
    if not PROVENANCE.is_file():
        return [pytest.param(None, id="corpus", marks=pytest.mark.skip(reason=f"the shared corpus is not at {CORPUS}"))]
    with open(PROVENANCE, newline="", encoding="utf-8") as f:
        rows = sorted(csv.DictReader(f, delimiter="\t"), key=lambda r: r["file"])
    params, stems = [], [Path(r["path"]).stem for r in rows]
    for row in rows:
        file, status, verified = row["file"], row["offline_status"], row["verified_run_no_network"]
        path = CORPUS / file
        test_id = _corpus_id(row, stems)
        needs = EXTRA_NEEDS.get(file, {})
        reason = ""
        if not path.is_file():
            reason = f"{file} is listed in PROVENANCE.tsv but not in the corpus"
        elif not (status.startswith(OFFLINE_STATUSES) or needs):
            reason = f"PROVENANCE offline_status: {status!r}; verified run: {verified!r}"
        elif "A:FAIL" in verified:
            reason = f"does not run top to bottom offline here; PROVENANCE offline_status: {status!r}; verified run: {verified!r}"
        else:
            # 'offline-core + jinja2 (DataFrame.style)': what the status adds, not what its notes say
            extra = re.findall(r"\+\s*([A-Za-z_][\w.]*)", re.split(r"[(;]", status)[0])
            missing = _missing_modules(path, extra)
            if missing:
                reason = f"needs {', '.join(missing)}, not installed here (PROVENANCE offline_status: {status!r})"
        if reason:
            params.append(pytest.param(None, id=test_id, marks=pytest.mark.skip(reason=reason)))
            continue
        case = Case(path, needs.get("params", {}), needs.get("support", ()), INTENDED_CORPUS_REFUSALS.get(file, ""))
        marks = [pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[file])] if file in KNOWN_BUGS else []
        params.append(pytest.param(case, id=test_id, marks=marks))
    return params


def _example_params() -> list:
    params = []
    for path in sorted(EXAMPLES.glob("*.ipynb")):
        marks = [pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[path.name])] if path.name in KNOWN_BUGS else []
        params.append(pytest.param(Case(path), id=f"example:{path.stem}", marks=marks))
    return params


# --- running ----------------------------------------------------------------------------------


def _prepare(case: Case, folder: Path) -> Path:
    """A fresh folder holding a copy of the notebook and its support files; the copy's path."""
    folder.mkdir(parents=True)
    for source, rel in case.support:
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    target = folder / case.path.name
    shutil.copyfile(case.path, target)
    return target


def _env() -> dict[str, str]:
    """This venv first on PATH, so `!papermill` and `!pip` in a cell are the venv's; progress bars
    off (tqdm's, as `!papermill` draws one), since they print timings that differ from run to run."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["TQDM_DISABLE"] = "1"
    return env


# A kernel that dies before it answers its first message: on a busy machine, most often another
# process took one of the TCP ports jupyter_client picked for it. Nothing ran yet, so the plain
# papermill run starts over; every retry is reported (the `kernel_start_retries` property and a
# warning). The pipeline side needs no retry: nb2pipe replaces such a kernel itself.
KERNEL_START_FAILURE = "Kernel died before replying to kernel_info"
ATTEMPTS = 3


def run_plain(case: Case, folder: Path, executed: Path, retries: list[str]) -> nbformat.NotebookNode:
    """The notebook top to bottom with papermill, `skip` cells removed; the executed notebook."""
    import papermill

    for attempt in range(1, ATTEMPTS + 1):
        shutil.rmtree(folder, ignore_errors=True)
        notebook = _prepare(case, folder)
        nb = nbformat.read(str(notebook), as_version=4)
        kept = []
        for number, cell in enumerate(nb.cells, start=1):
            if SKIP_TAG in cell.metadata.get("tags", []):
                continue
            cell.metadata[NUMBER_KEY] = number
            kept.append(cell)
        nb.cells = kept
        nbformat.write(nb, str(notebook))
        try:
            papermill.execute_notebook(
                str(notebook),
                str(executed),
                parameters=case.params,
                kernel_name=KERNEL,
                cwd=str(folder),
                progress_bar=False,
            )
        except RuntimeError as error:
            if KERNEL_START_FAILURE not in str(error) or attempt == ATTEMPTS:
                raise
            retries.append(f"plain run {folder.name}: {error}")
            continue
        return nbformat.read(str(executed), as_version=4)
    raise AssertionError("unreachable")


def run_pipeline(case: Case, tmp_path: Path, retries: list[str]) -> tuple[Path, subprocess.CompletedProcess]:
    """`nb2pipe run NOTEBOOK` in a fresh folder: (the folder, the finished process). No retry:
    nb2pipe itself replaces a kernel that dies before it answers (tests/test_kernels.py)."""
    folder = tmp_path / "B"
    notebook = _prepare(case, folder)
    argv = [sys.executable, "-m", "nb2pipe", "run", notebook.name]
    for name, value in case.params.items():
        argv += ["-p", f"{name}={value}"]
    return folder, subprocess.run(argv, cwd=folder, env=_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT)


# --- what a run printed -----------------------------------------------------------------------

_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{4,}")


def normalize(text: str) -> str:
    text = _ADDRESS_RE.sub("0x…", text)
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


def output_text(cell: nbformat.NotebookNode) -> str:
    """stdout and the text/plain of results and displays, in order; stderr and warnings ignored."""
    parts: list[str] = []
    stdout = ""
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            if out.name == "stdout":
                stdout += out.text
            continue
        if out.output_type in ("execute_result", "display_data"):
            text = out.get("data", {}).get("text/plain")
            if text is None:
                continue
            if stdout:
                parts.append(normalize(stdout))
                stdout = ""
            parts.append("[" + out.output_type + "] " + normalize(text if isinstance(text, str) else "".join(text)))
    if stdout:
        parts.append(normalize(stdout))
    return "\n".join(p for p in parts if p)


def plain_outputs(nb: nbformat.NotebookNode) -> dict[int, tuple[str, tuple[str, ...]]]:
    """Per original cell number: (output text, tags) of every code cell the plain run executed."""
    return {
        cell.metadata[NUMBER_KEY]: (output_text(cell), tuple(cell.metadata.get("tags", [])))
        for cell in nb.cells
        if cell.cell_type == "code" and NUMBER_KEY in cell.metadata
    }


def pipeline_outputs(folder: Path, notebook_name: str) -> tuple[dict[int, tuple[str, str]], list[str]]:
    """Per source cell number: (output text, where) from the executed stage notebooks, and problems.

    Stages are read in pipeline order (nb2pipe.yaml); a setup cell counts at its first occurrence.
    """
    pipeline = folder / "pipelines" / Path(notebook_name).stem
    spec = yaml.safe_load((pipeline / "nb2pipe.yaml").read_text(encoding="utf-8"))
    runs = sorted(p for p in (pipeline / "runs").iterdir() if p.is_dir())
    assert len(runs) == 1, f"expected one run folder, found {[p.name for p in runs]}"
    title_re = re.compile(rf"^{re.escape(notebook_name)} cell (\d+)( \(setup\))?$")
    found: dict[int, tuple[str, str]] = {}
    problems: list[str] = []
    for stage in spec["stages"]:
        executed = runs[0] / f"{stage}.ipynb"
        if not executed.is_file():
            problems.append(f"stage '{stage}' has no executed notebook {executed.name}")
            continue
        nb = nbformat.read(str(executed), as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            match = title_re.match(cell.metadata.get("title", ""))
            if not match:
                continue
            number, setup = int(match.group(1)), bool(match.group(2))
            if number in found:
                if not setup:
                    problems.append(f"cell {number} runs in two stages: {found[number][1]} and '{stage}'")
                continue
            found[number] = (output_text(cell), f"stage '{stage}'")
    return found, problems


# --- what a run wrote -------------------------------------------------------------------------


def written_files(folder: Path, case: Case) -> dict[str, Path]:
    """Every file a run wrote under `folder`: not the notebook, nor the pipeline folder, nor
    checkpoints, nor a support file it left as it was."""
    support = {rel: source for source, rel in case.support}
    files = {}
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if rel.parts[0] == "pipelines" or ".ipynb_checkpoints" in rel.parts or str(rel) == case.path.name:
            continue
        if not path.is_file():
            continue
        if rel.as_posix() in support and path.read_bytes() == support[rel.as_posix()].read_bytes():
            continue
        files[rel.as_posix()] = path
    return files


# Metadata an executed notebook gets from papermill and nbclient: when each cell ran and for how long.
_TIMING_KEYS = ("start_time", "end_time", "duration")


def comparable(path: Path) -> bytes:
    """What of a written file must be equal between runs: its bytes; for a notebook, everything
    but the times and durations papermill and nbclient record in its metadata, and the random
    ids nbformat gives cells that had none."""
    data = path.read_bytes()
    if path.suffix != ".ipynb":
        return data
    try:
        nb = json.loads(data)
    except ValueError:
        return data
    for cell in nb.get("cells", []):
        cell.pop("id", None)
    for meta in [nb.get("metadata", {})] + [cell.get("metadata", {}) for cell in nb.get("cells", [])]:
        meta.pop("execution", None)
        for key in _TIMING_KEYS:
            meta.get("papermill", {}).pop(key, None)
    return json.dumps(nb, sort_keys=True).encode()


def _diff(expected: str, actual: str, limit: int = 30) -> str:
    lines = list(difflib.unified_diff(expected.splitlines(), actual.splitlines(), "notebook", "pipeline", lineterm="", n=1))
    if len(lines) > limit:
        lines = [*lines[:limit], f"... ({len(lines) - limit} more diff lines)"]
    return "\n".join(lines)


# --- the test ---------------------------------------------------------------------------------

PLAIN_RUNS = 2  # always; when the pipeline disagrees somewhere, up to MAX_PLAIN_RUNS, to be sure
MAX_PLAIN_RUNS = 4  # (two runs of a die-roll cell agree one time in six: a third run settles it)


@dataclass
class PlainRun:
    outputs: dict[int, tuple[str, tuple[str, ...]]]
    files: dict[str, Path]


@dataclass
class Comparison:
    compared_cells: int = 0
    compared_files: int = 0
    not_compared: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)


def compare(runs: list[PlainRun], piped: dict[int, tuple[str, str]], piped_files: dict[str, Path]) -> Comparison:
    """The pipeline's outputs and files against the plain runs', leaving out what the plain runs disagree on."""
    result = Comparison()
    first = runs[0]
    for number in sorted(set(piped) - set(first.outputs)):
        result.mismatches.append(f"cell {number} ran in the pipeline ({piped[number][1]}) but not in the notebook run")
    for number, (text, tags) in sorted(first.outputs.items()):
        if any(run.outputs[number][0] != text for run in runs[1:]):
            result.not_compared.append(f"cell {number}: its output differs between runs of the notebook")
            continue
        if number not in piped:
            if text and not PARAMETER_TAGS & set(tags):
                result.mismatches.append(f"cell {number} printed output in the notebook but is not in the pipeline:\n{text[:500]}")
            continue
        result.compared_cells += 1
        if text != piped[number][0]:
            result.mismatches.append(f"cell {number} ({piped[number][1]}) prints something else:\n{_diff(text, piped[number][0])}")
    names = set(piped_files).union(*(run.files for run in runs))
    for rel in sorted(names):
        present = [rel in run.files for run in runs]
        if any(present) and not all(present):
            result.not_compared.append(f"file {rel}: written by only some runs of the notebook")
            continue
        if not present[0]:
            result.mismatches.append(f"file {rel}: written by the pipeline, not by the notebook")
            continue
        if rel not in piped_files:
            result.mismatches.append(f"file {rel}: written by the notebook, not by the pipeline")
            continue
        data = comparable(first.files[rel])
        if any(comparable(run.files[rel]) != data for run in runs[1:]):
            result.not_compared.append(f"file {rel}: its bytes differ between runs of the notebook")
            continue
        result.compared_files += 1
        piped_data = comparable(piped_files[rel])
        if piped_data != data:
            result.mismatches.append(f"file {rel}: the pipeline wrote other bytes ({len(piped_data)} bytes; the notebook {len(data)})")
    return result


@pytest.mark.parametrize("case", _example_params() + _corpus_params())
def test_pipeline_gives_what_the_notebook_gives(case: Case, tmp_path, monkeypatch, record_property):
    for key in ("PATH", "TQDM_DISABLE"):
        monkeypatch.setenv(key, _env()[key])  # for the plain runs' kernels too
    name = case.path.name
    retries: list[str] = []

    # B: the pipeline, every stage in a fresh kernel
    folder_b, piped = run_pipeline(case, tmp_path, retries)
    if piped.returncode != 0 and case.refused_by_design and case.refused_by_design in piped.stderr:
        line = next(text for text in piped.stderr.splitlines() if case.refused_by_design in text)
        pytest.skip(f"nb2pipe refuses this notebook by design (exit {piped.returncode}): {line}")
    assert piped.returncode == 0, (
        f"`nb2pipe run {name}` exited {piped.returncode}\n--- stderr\n{piped.stderr[-4000:]}\n--- stdout\n{piped.stdout[-2000:]}"
    )
    piped_outputs, problems = pipeline_outputs(folder_b, name)
    piped_files = written_files(folder_b, case)

    # A, A2 (, A3, A4): the notebook top to bottom, to tell results from noise
    def plain(i: int) -> PlainRun:
        label = "A" if i == 1 else f"A{i}"
        nb = run_plain(case, tmp_path / label, tmp_path / f"{label}.executed.ipynb", retries)
        return PlainRun(plain_outputs(nb), written_files(tmp_path / label, case))

    runs = [plain(i) for i in range(1, PLAIN_RUNS + 1)]
    result = compare(runs, piped_outputs, piped_files)
    while result.mismatches and len(runs) < MAX_PLAIN_RUNS:
        runs.append(plain(len(runs) + 1))
        result = compare(runs, piped_outputs, piped_files)

    mismatches = problems + result.mismatches
    record_property("kernel_start_retries", "; ".join(retries) or "none")
    if retries:
        warnings.warn(UserWarning(f"{name}: started over after a kernel died at start-up: " + "; ".join(retries)), stacklevel=1)
    record_property("plain_runs", len(runs))
    record_property("compared", f"{result.compared_cells} cells, {result.compared_files} files")
    record_property("not_compared", "; ".join(result.not_compared) or "nothing")
    if result.not_compared:
        message = (
            f"{name}: compared {result.compared_cells} cells and {result.compared_files} files; not compared, "
            f"as {len(runs)} runs of the notebook disagree: " + "; ".join(result.not_compared)
        )
        print(message)
        warnings.warn(NotCompared(message), stacklevel=1)
    assert not mismatches, f"the pipeline of {name} is not equivalent to the notebook:\n\n" + "\n\n".join(mismatches)
    assert_compared_something(name, result)


def assert_compared_something(name: str, result: Comparison) -> None:
    """A case that compared no cell and no file has not shown equivalence: it fails."""
    if result.compared_cells + result.compared_files == 0:
        pytest.fail(
            f"{name}: compared nothing (0 cells, 0 files), so equivalence is not shown; not compared: "
            + ("; ".join(result.not_compared) or "the notebook prints nothing and writes nothing")
        )


@pytest.mark.parametrize("outputs", [{}, {1: ("7", ())}], ids=["prints nothing", "its only output varies"])
def test_a_case_that_compared_nothing_fails(outputs):
    varying = {number: (text + "!", tags) for number, (text, tags) in outputs.items()}
    result = compare([PlainRun(outputs, {}), PlainRun(varying, {})], {n: (t, "stage 's'") for n, (t, _) in outputs.items()}, {})
    assert (result.compared_cells, result.compared_files) == (0, 0)
    with pytest.raises(pytest.fail.Exception, match="compared nothing"):
        assert_compared_something("nb.ipynb", result)
    result.compared_files = 1
    assert_compared_something("nb.ipynb", result)
