"""The test that matters (DESIGN §2): running a notebook's pipeline gives what the notebook gives.

For every example notebook, and every corpus notebook that runs offline with the libraries
installed here, `nb2pipe verify` (the application API's `verify`) on a copy in a temporary folder
must find the pipeline equal to the notebook: the notebook run top to bottom (twice, and up to four
times when the pipeline disagrees, to tell results from noise) against `nb2pipe run`, every code
cell's printed output and every file both wrote (nb2pipe/api/verification.py says how). What the plain
runs disagree on is reported as not comparable (a `NotCompared` warning and the `not_compared`
property), so the test stays honest; a case that compared nothing fails.

The corpus is read, never written: each notebook is copied into tmp_path first.
"""

from __future__ import annotations

import ast
import csv
import importlib.util
import os
import re
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest

from conftest import CORPUS, EXAMPLES
from helpers import INTENDED_CORPUS_REFUSALS
from nb2pipe.api import verify
from nb2pipe.errors import Nb2PipeError

pytestmark = pytest.mark.slow

PROVENANCE = CORPUS / "PROVENANCE.tsv"
SKIP_TAG = "skip"  # Kale's spelling, and nb2pipe's
OFFLINE_STATUSES = ("offline-stdlib", "offline-core")


class NotCompared(UserWarning):
    """Cells or files left out of the comparison because runs of the notebook already disagree."""


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

# Notebooks nb2pipe refuses on purpose (helpers.INTENDED_CORPUS_REFUSALS): verify must then fail
# with exactly that error, and the notebook is skipped with the error line as the reason.

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


# --- the test ---------------------------------------------------------------------------------


def prepare(case: Case, folder: Path) -> Path:
    """A fresh folder holding a copy of the notebook and its support files; the copy's path."""
    folder.mkdir(parents=True)
    for source, rel in case.support:
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    target = folder / case.path.name
    shutil.copyfile(case.path, target)
    return target


@pytest.mark.parametrize("case", _example_params() + _corpus_params())
def test_pipeline_gives_what_the_notebook_gives(case: Case, tmp_path, monkeypatch, record_property):
    # this venv first on PATH, so `!papermill` and `!pip` in a cell are the venv's
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    name = case.path.name
    notebook = prepare(case, tmp_path / "work")
    try:
        report = verify(notebook, params=case.params)
    except Nb2PipeError as error:
        if case.refused_by_design and case.refused_by_design in str(error):
            pytest.skip(f"nb2pipe refuses this notebook by design: error: {error}")
        raise

    c = report.comparison
    record_property("kernel_start_retries", "; ".join(report.retries) or "none")
    if report.retries:
        warnings.warn(UserWarning(f"{name}: started over after a kernel died at start-up: " + "; ".join(report.retries)), stacklevel=1)
    record_property("plain_runs", report.plain_runs)
    record_property("compared", f"{c.cells} cells, {c.files} files")
    record_property("not_compared", "; ".join(c.not_comparable) or "nothing")
    if c.not_comparable:
        message = f"{name}: {report.summary}; not compared, as {report.plain_runs} runs of the notebook disagree: " + "; ".join(
            c.not_comparable
        )
        print(message)
        warnings.warn(NotCompared(message), stacklevel=1)
    details = "\n\n".join(d.line + (f"\n{d.diff}" if d.diff else "") for d in c.differences)
    assert not c.differences, f"the pipeline of {name} is not equivalent to the notebook ({report.summary}):\n\n{details}"
    assert report.equal, f"{name}: {report.summary}; not compared: " + ("; ".join(c.not_comparable) or "it prints and writes nothing")
