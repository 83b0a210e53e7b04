"""Every trap notebook under tests/traps/ verifies: its pipeline prints and writes what the
notebook does when run top to bottom (`nb2pipe verify NOTEBOOK` exits 0).

A trap is a small notebook written as a person would write it, that caught (or would catch) a
class of inference gap: tests/traps/<class>/<case>.ipynb, one folder per class of issue 12
(definitions, builtins, unpicklable, hidden_state, mutation, aliases, paths, conventions,
config_state, install, headings, kale) and `basics` for the harness itself. A trap's folder is
its working folder: the data files it reads sit beside it. `verify` runs it in copies, so the
repository is never written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from test_verify import differing_project

pytestmark = pytest.mark.slow

TRAPS = Path(__file__).resolve().parent / "traps"


def trap_params() -> list:
    return [pytest.param(path, id=path.relative_to(TRAPS).as_posix()) for path in sorted(TRAPS.glob("**/*.ipynb"))]


@pytest.mark.parametrize("notebook", trap_params())
def test_trap_notebook_verifies(notebook: Path, cli):
    exit_code, out, err = cli("verify", notebook)
    assert exit_code == 0, f"nb2pipe verify {notebook.relative_to(TRAPS)} exited {exit_code}:\n{out}\n{err[-3000:]}"
    assert out.splitlines()[-1].startswith("verified: "), out


def test_there_are_traps_to_verify():
    assert len(trap_params()) >= 2 and (TRAPS / "basics").is_dir()


def test_the_harness_fails_a_pipeline_that_differs(tmp_path, cli):
    """What the traps rely on: verify exits 1 and names the cell when the pipeline truly differs."""
    notebook = differing_project(tmp_path)
    exit_code, out, err = cli("verify", notebook)
    assert exit_code == 1, out + err
    assert out.startswith("differs: stage 'second', cell 4: "), out
