"""A `stage:` tag seen again after another stage: its cells join that stage (as Kale does),
unless the merged stage could never run (step 6 of notebook.py)."""

from __future__ import annotations

from dataclasses import dataclass

from nb2pipe import model as m
from nb2pipe.errors import SpecError


@dataclass(frozen=True)
class _Handover:
    """Cell `reader` of stage `to` takes `what` (a variable or a file) from cell `giver` of stage `giver_stage`."""

    giver_stage: str
    giver: m.Cell
    to: str
    reader: m.Cell
    what: str


def refuse_split_stages_that_cannot_run(stages: list[m.StagePlan]) -> None:
    """A stage whose cells come back after another stage's cells is merged (Kale does the same),
    unless that makes a cycle: its later cells need the stage between, which needs it first.

    1. Only when some stage is split, follow every variable and file a code cell reads to the
       nearest earlier code cell that binds, changes or writes it (in notebook order).
    2. Such a handover between two stages is an edge of a graph of stages.
    3. An edge into a stage from a stage that starts later, which the receiving stage itself
       reaches, is a cycle: the merged stage can never run. Name both cells.
    """
    owner = {cell.number: s.name for s in stages for cell in s.code_cells}
    if not any(_is_split(s, owner) for s in stages):
        return
    handovers = _handovers(sorted((c for s in stages for c in s.code_cells), key=lambda c: c.number), owner)
    edges: dict[str, set[str]] = {}
    for h in handovers:
        edges.setdefault(h.giver_stage, set()).add(h.to)
    start = {s.name: i for i, s in enumerate(stages)}
    for h in handovers:
        if start[h.giver_stage] > start[h.to] and _reaches(edges, h.to, h.giver_stage):
            raise SpecError(
                f"stage '{h.to}' comes back at {h.reader.label}, which takes {h.what} from {h.giver.label} "
                f"of stage '{h.giver_stage}'; but stage '{h.giver_stage}' needs stage '{h.to}' first, so the "
                f"merged stage can never run: tag cell {h.reader.number} with a stage of its own "
                f"(e.g. 'stage:{h.to}_2') or move it above cell {h.giver.number}"
            )


def _is_split(stage: m.StagePlan, owner: dict[int, str]) -> bool:
    numbers = [c.number for c in stage.code_cells]
    return any(owner[n] != stage.name for n in owner if numbers and numbers[0] < n < numbers[-1])


def _handovers(cells: list[m.Cell], owner: dict[int, str]) -> list[_Handover]:
    from nb2pipe.infer import analyze_cell  # only for notebooks with a split stage

    last_binder: dict[str, m.Cell] = {}  # variable name or "file:path" -> nearest earlier cell
    found: list[_Handover] = []
    for cell in cells:
        facts = analyze_cell(cell.source)
        wanted = [(name, f"variable '{name}'") for name in sorted(facts.reads)]
        wanted += [(f"file:{path}", f"file '{path}'") for path in facts.files_read]
        for key, what in wanted:
            giver = last_binder.get(key)
            if giver is not None and owner[giver.number] != owner[cell.number]:
                found.append(_Handover(owner[giver.number], giver, owner[cell.number], cell, what))
        for name in facts.binds | facts.mutates:
            last_binder[name] = cell
        for path in facts.files_written:
            last_binder[f"file:{path}"] = cell
    return found


def _reaches(edges: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name == goal:
            return True
        if name not in seen:
            seen.add(name)
            todo.extend(edges.get(name, ()))
    return False
