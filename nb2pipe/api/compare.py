"""What `nb2pipe verify` compares: the outputs of a notebook's cells and the files it wrote, between
plain runs of the notebook and a run of its pipeline.

1. A cell's output is its stdout and the `text/plain` of its results and displays, in order;
   stderr and warnings are left out, memory addresses (`0x7f…`) masked, trailing blanks dropped.
2. Plain cells are matched by the number `run.plain` gave them; pipeline cells by their titles
   ("<notebook> cell N"), stages read in pipeline order: a setup cell runs in every stage and
   counts at its first occurrence.
3. Written files are those a run added or changed in its copy of the working folder (the notebook
   and the pipeline folder aside). An executed notebook compares without the times papermill and
   nbclient record, nor the random ids nbformat gives cells.
4. Whatever the plain runs disagree on (a cell's output, a file's bytes, a file only some wrote)
   is not comparable; the rest must be equal in the pipeline (a silent cell too: silent), or it is
   a difference.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PARAMETER_TAGS = frozenset({"parameters", "pipeline-parameters", "injected-parameters"})
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{4,}")
_TITLE_RE = re.compile(r"(?:^|\s)cell (\d+)( \(setup\))?$")
_TIMING_KEYS = ("start_time", "end_time", "duration")
SHORT = 60  # characters of each side a one-line difference quotes


@dataclass(frozen=True)
class PlainRun:
    """What one run of the notebook printed ({cell: (text, tags)}) and wrote ({path: file})."""

    outputs: dict[int, tuple[str, tuple[str, ...]]]
    files: dict[str, Path]


@dataclass(frozen=True)
class PipelineRun:
    """What the pipeline printed ({cell: (text, stage)}) and wrote, and what went wrong on the way."""

    outputs: dict[int, tuple[str, str]]
    files: dict[str, Path]
    problems: list[Difference] = field(default_factory=list)
    finished: bool = True  # every stage ran; else only the problems are reported
    left_out: dict[int, str] = field(default_factory=dict)  # cells the pipeline leaves out on purpose: why


@dataclass(frozen=True)
class Difference:
    """One way the pipeline differs: a one-line message and, for output, the unified diff."""

    kind: str  # "cell", "file" or "run"
    line: str
    cell: int | None = None
    file: str | None = None
    stage: str | None = None
    diff: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "cell": self.cell, "file": self.file, "stage": self.stage, "message": self.line, "diff": self.diff}


@dataclass
class Comparison:
    cells: int = 0  # compared: equal or not
    files: int = 0
    cells_equal: int = 0
    files_equal: int = 0
    not_comparable: list[str] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)


# --- what a run printed ----------------------------------------------------------------------


def normalize(text: str) -> str:
    text = _ADDRESS_RE.sub("0x…", text)
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


def _text(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "".join(value)


def output_text(cell: Mapping[str, Any]) -> str:
    """stdout and the text/plain of results and displays, in order; stderr and warnings left out."""
    parts: list[str] = []
    stdout = ""
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream":
            stdout += _text(out.get("text", "")) if out.get("name") == "stdout" else ""
            continue
        text = out.get("data", {}).get("text/plain") if kind in ("execute_result", "display_data") else None
        if text is None:
            continue
        parts.append(normalize(stdout))
        stdout = ""
        parts.append(f"[{kind}] " + normalize(_text(text)))
    parts.append(normalize(stdout))
    return "\n".join(p for p in parts if p)


def plain_outputs(nb: Mapping[str, Any], number_key: str) -> dict[int, tuple[str, tuple[str, ...]]]:
    """Per original cell number: (output text, tags) of every code cell the plain run executed."""
    return {
        cell["metadata"][number_key]: (output_text(cell), tuple(cell["metadata"].get("tags", [])))
        for cell in nb.get("cells", [])
        if cell.get("cell_type") == "code" and number_key in cell.get("metadata", {})
    }


def pipeline_outputs(run_dir: Path, stages: Iterable[str]) -> tuple[dict[int, tuple[str, str]], list[Difference]]:
    """Per source cell number: (output text, stage) from the executed stage notebooks in `run_dir`."""
    found: dict[int, tuple[str, str]] = {}
    problems: list[Difference] = []
    for stage in stages:
        executed = run_dir / f"{stage}.ipynb"
        if not executed.is_file():
            problems.append(Difference("run", f"stage '{stage}' left no executed notebook", stage=stage))
            continue
        for cell in json.loads(executed.read_text(encoding="utf-8")).get("cells", []):
            match = _TITLE_RE.search(cell.get("metadata", {}).get("title", "")) if cell.get("cell_type") == "code" else None
            if not match:
                continue
            number, setup = int(match.group(1)), bool(match.group(2))
            if number in found:
                if not setup:
                    line = f"cell {number} runs in two stages: '{found[number][1]}' and '{stage}'"
                    problems.append(Difference("cell", line, cell=number, stage=stage))
                continue
            found[number] = (output_text(cell), stage)
    return found, problems


# --- what a run wrote ------------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under `folder`, by relative path."""
    return {rel: (st.st_size, st.st_mtime_ns) for rel, path in _files(folder) for st in [path.stat()]}


def written_files(folder: Path, before: Mapping[str, tuple[int, int]], left_out: Iterable[str]) -> dict[str, Path]:
    """The files a run added or changed under `folder` since `before`, but for `left_out`
    (relative paths of files and folders) and notebook checkpoints."""
    skipped = tuple(left_out)
    written = {}
    for rel, path in _files(folder):
        if any(rel == s or rel.startswith(s.rstrip("/") + "/") for s in skipped) or ".ipynb_checkpoints" in rel.split("/"):
            continue
        st = path.stat()
        if before.get(rel) != (st.st_size, st.st_mtime_ns):
            written[rel] = path
    return written


def _files(folder: Path) -> Iterable[tuple[str, Path]]:
    for base, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = Path(base, name)
            if path.is_file():
                yield path.relative_to(folder).as_posix(), path


def comparable(path: Path) -> bytes:
    """What of a written file must be equal between runs: its bytes; for a notebook, everything
    but the times papermill and nbclient record, and the random ids nbformat gives cells."""
    data = path.read_bytes()
    if path.suffix != ".ipynb":
        return data
    try:
        nb = json.loads(data)
        cells = nb.get("cells", [])
        for cell in cells:
            cell.pop("id", None)
        for meta in [nb.get("metadata", {})] + [cell.get("metadata", {}) for cell in cells]:
            meta.pop("execution", None)
            for key in _TIMING_KEYS:
                meta.get("papermill", {}).pop(key, None)
    except (ValueError, AttributeError):
        return data
    return json.dumps(nb, sort_keys=True).encode()


# --- the comparison --------------------------------------------------------------------------


def compare(runs: list[PlainRun], piped: PipelineRun) -> Comparison:
    """The pipeline's outputs and files against the plain runs', leaving out what the plain runs disagree on."""
    result = Comparison(differences=list(piped.problems))
    if not piped.finished:
        return result
    _compare_cells(runs, piped.outputs, result, piped.left_out)
    _compare_files(runs, piped.files, result)
    return result


def _compare_cells(runs: list[PlainRun], piped: dict[int, tuple[str, str]], result: Comparison, left_out: dict[int, str]) -> None:
    first = runs[0]
    for number, why in sorted(left_out.items()):
        if number in first.outputs:
            result.not_comparable.append(f"cell {number}: {why}")
    piped = {number: found for number, found in piped.items() if number not in left_out}
    runs = [PlainRun({n: o for n, o in run.outputs.items() if n not in left_out}, run.files) for run in runs]
    first = runs[0]
    for number in sorted(set(piped) - set(first.outputs)):
        line = f"cell {number} ran in the pipeline (stage '{piped[number][1]}') but not in the notebook"
        result.differences.append(Difference("cell", line, cell=number, stage=piped[number][1]))
    for number, (text, tags) in sorted(first.outputs.items()):
        if any(run.outputs.get(number, ("",))[0] != text for run in runs[1:]):
            result.not_comparable.append(f"cell {number}: its output differs between runs of the notebook")
            continue
        if number not in piped:
            if text and not PARAMETER_TAGS & set(tags):
                line = f"cell {number} printed output in the notebook but is in no stage: {_quote(text)}"
                result.differences.append(Difference("cell", line, cell=number, diff=text))
            continue
        piped_text, stage = piped[number]
        result.cells += 1
        if text == piped_text:
            result.cells_equal += 1
        else:
            line = f"stage '{stage}', cell {number}: {short_diff(text, piped_text)}"
            result.differences.append(Difference("cell", line, cell=number, stage=stage, diff=unified_diff(text, piped_text)))


def _compare_files(runs: list[PlainRun], piped_files: dict[str, Path], result: Comparison) -> None:
    first = runs[0]
    for rel in sorted(set(piped_files).union(*(run.files for run in runs))):
        present = [rel in run.files for run in runs]
        if any(present) and not all(present):
            result.not_comparable.append(f"file {rel}: written by only some runs of the notebook")
            continue
        if not present[0] or rel not in piped_files:
            by, not_by = ("the pipeline", "the notebook") if not present[0] else ("the notebook", "the pipeline")
            result.differences.append(Difference("file", f"file '{rel}': written by {by}, not by {not_by}", file=rel))
            continue
        data = comparable(first.files[rel])
        if any(comparable(run.files[rel]) != data for run in runs[1:]):
            result.not_comparable.append(f"file {rel}: its bytes differ between runs of the notebook")
            continue
        result.files += 1
        piped_data = comparable(piped_files[rel])
        if piped_data == data:
            result.files_equal += 1
        else:
            line = f"file '{rel}': the pipeline wrote other bytes ({len(piped_data)} bytes; the notebook {len(data)})"
            result.differences.append(Difference("file", line, file=rel))


def _quote(text: str) -> str:
    first = text.splitlines()[0] if text else ""
    return repr(first if len(first) <= SHORT else first[: SHORT - 1] + "…")


def short_diff(expected: str, actual: str) -> str:
    """The first line that differs, both ways, on one line."""
    a, b = expected.splitlines(), actual.splitlines()
    for i in range(max(len(a), len(b))):
        left, right = (a[i] if i < len(a) else None), (b[i] if i < len(b) else None)
        if left != right:
            shown = [_quote(s) if s is not None else "nothing" for s in (left, right)]
            return f"line {i + 1}: the notebook printed {shown[0]}, the pipeline {shown[1]}"
    return "the output differs"


def unified_diff(expected: str, actual: str, limit: int = 30) -> str:
    lines = list(difflib.unified_diff(expected.splitlines(), actual.splitlines(), "notebook", "pipeline", lineterm="", n=1))
    if len(lines) > limit:
        lines = [*lines[:limit], f"... ({len(lines) - limit} more diff lines)"]
    return "\n".join(lines)
