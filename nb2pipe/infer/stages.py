"""What each stage of a notebook plan takes and gives: the names it reads, the variables and
definitions handed to it (flow.trace_stages), and the files inferred as its deps and outs."""

from __future__ import annotations

from nb2pipe import model as m
from nb2pipe.files import OutChecker, out_problem
from nb2pipe.infer.cells import CellFacts
from nb2pipe.infer.flow import StageFlow, trace_stages


def stage_reads(facts: list[CellFacts]) -> set[str]:
    """Names a stage reads before binding them itself, cell after cell (builtin names too: a
    parameter may be called `input`)."""
    bound: set[str] = set()
    reads: set[str] = set()
    for f in facts:
        reads |= (f.reads | f.builtin_reads) - bound
        bound |= f.binds
    return reads


def infer_stage_flow(plan: m.NotebookPlan, stage_facts: dict[str, list[CellFacts]], exclude: set[str]) -> dict[str, StageFlow]:
    """Per stage: the variables it loads (with their providers) and saves, the definitions it
    copies, and the excluded names (parameters) those definitions read."""
    stages = [(s.name, stage_facts[s.name]) for s in plan.stages]
    return {f.stage: f for f in trace_stages(stages, exclude=exclude)}


def infer_files(
    plan: m.NotebookPlan, stage_facts: dict[str, list[CellFacts]], check_out: OutChecker | None = None
) -> tuple[dict[str, tuple[tuple[str, ...], tuple[str, ...]]], list[str]]:
    """Per stage: (inferred deps, inferred outs) from literal paths given to readers and writers;
    and warnings about written paths that cannot be outputs.

    Declared files win: a path another stage declares is not inferred. A path written by several
    stages belongs to the last writer. A stage depends on a file it reads before writing it, when
    the file is external or written by an earlier stage or by the stage itself: a file a stage
    appends to, or reads and rewrites, is a dep and an out of that stage. A stage never depends on
    a file it writes first, nor on a later stage's output. A written path that `check_out` refuses
    (outside the project, the project itself, ...) is neither: it is dropped with a warning.
    """
    escaping, warnings = _escaping_writes(plan, stage_facts, check_out or (lambda path: out_problem(path, None)))
    declared_out = {path: s.name for s in plan.stages for path in s.outs}
    writer: dict[str, str] = dict(declared_out)
    for s in plan.stages:
        for f in stage_facts[s.name]:
            for path in f.files_written:
                if path not in declared_out and path not in escaping:
                    writer[path] = s.name
    position = {s.name: i for i, s in enumerate(plan.stages)}
    result = {}
    for s in plan.stages:
        written = [p for f in stage_facts[s.name] for p in f.files_written]
        outs = tuple(p for p in dict.fromkeys(written) if writer.get(p) == s.name and p not in s.outs)
        deps = tuple(
            p
            for p in _read_before_written(stage_facts[s.name])
            if p not in s.deps
            and p not in escaping
            and (p not in writer or writer[p] == s.name or position[writer[p]] < position[s.name])
        )
        result[s.name] = (deps, outs)
    return result, warnings


def _escaping_writes(plan: m.NotebookPlan, stage_facts: dict[str, list[CellFacts]], check_out: OutChecker) -> tuple[set[str], list[str]]:
    """Written paths that cannot be outputs, and a warning naming the cell for each."""
    escaping: set[str] = set()
    warnings: list[str] = []
    for s in plan.stages:
        for cell, f in zip(s.code_cells, stage_facts[s.name], strict=True):
            for path in f.files_written:
                if path not in s.outs and (problem := check_out(path)):
                    escaping.add(path)
                    warnings.append(
                        f"stage '{s.name}', {cell.label}: '{path}' {problem}, so it is not an output of the "
                        "pipeline: nb2pipe will neither track nor restore it"
                    )
    return escaping, warnings


def _read_before_written(facts: list[CellFacts]) -> list[str]:
    """Paths the stage's cells read while they still hold what was there before the stage ran."""
    found: list[str] = []
    written: set[str] = set()
    for f in facts:
        for path in f.files_read:
            first_written_here = path in f.files_written and path not in f.files_updated
            if path not in written and not first_written_here:
                found.append(path)
        written.update(f.files_written)
    return list(dict.fromkeys(found))
