"""The trap notebooks of issue 12's items 1, 3, 6 and 12 (tests/traps/{definitions, builtins,
unpicklable, hidden_state}): each pipeline prints and writes what its notebook does, with the
machinery of tests/test_equivalence.py (one plain run: every trap is deterministic)."""

from __future__ import annotations

from pathlib import Path

import pytest

import test_equivalence as equivalence

pytestmark = pytest.mark.slow

TRAPS = Path(__file__).resolve().parent / "traps"
CLASSES = ("definitions", "builtins", "unpicklable", "hidden_state")
CASES = sorted(path for folder in CLASSES for path in (TRAPS / folder).glob("*.ipynb"))


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_the_trap_pipeline_gives_what_the_notebook_gives(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("PATH", "TQDM_DISABLE"):
        monkeypatch.setenv(key, equivalence._env()[key])
    case = equivalence.Case(path)
    folder, piped = equivalence.run_pipeline(case, tmp_path, [])
    assert piped.returncode == 0, f"`nb2pipe run {path.name}` exited {piped.returncode}:\n{piped.stderr[-3000:]}"
    outputs, problems = equivalence.pipeline_outputs(folder, path.name)
    plain = equivalence.run_plain(case, tmp_path / "A", tmp_path / "A.executed.ipynb", [])
    runs = [equivalence.PlainRun(equivalence.plain_outputs(plain), equivalence.written_files(tmp_path / "A", case))]
    result = equivalence.compare(runs, outputs, equivalence.written_files(folder, case))
    assert not problems + result.mismatches, "\n\n".join(problems + result.mismatches)
    equivalence.assert_compared_something(path.name, result)
