"""Kale's rules for a tagged notebook, as Kale's own NotebookProcessor applies them (step 2 of notebook.py).

Read from kubeflow-kale/kale, backend/kale/processors/nbprocessor.py (parse_notebook,
parse_cell_metadata); the README lists where nb2pipe differs on purpose.
1. Only code cells count; markdown and raw cells neither join nor end a block, nor does a
   `skip` cell (Kale does not remember it as the block above).
2. An untagged code cell, or one tagged with an empty `block:`/`step:`, belongs to the block of the
   tagged cell above it: after `imports` or `functions` it is code prepended to every step (setup);
   after `pipeline-parameters` it is more parameters; after a step it continues that step.
3. `prev:NAME` counts only on the cell that creates its step; Kale ignores it anywhere else.
4. A cell with two different step names is an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from nb2pipe import model as m
from nb2pipe.errors import SpecError

KALE_SETUP_TAGS = ("imports", "functions")
KALE_PARAMETERS_TAG = "pipeline-parameters"
KALE_PREV_PREFIX = "prev:"
_SETUP, _PARAMETERS = "setup", "parameters"


class KaleRoles(Protocol):
    """What a cell's tags say about it (notebook._Roles), as far as Kale's rules read and change it."""

    stage: str | None
    after: list[str]
    parameters: bool
    injected: bool
    setup: bool
    skip: bool
    metrics: bool
    deps: list[str]
    outs: list[str]


def apply_kale_rules(cells: Sequence[m.Cell], roles: Sequence[KaleRoles]) -> None:
    """Give untagged code cells the role of the Kale block above them, and drop the `prev:` edges
    Kale ignores (rules 1 to 4 above). Changes `roles` in place."""
    block: str | None = None  # the reserved Kale block the cells above belong to, if any
    steps: set[str] = set()
    for cell, role in zip(cells, roles, strict=True):
        if cell.kind != "code" or role.skip:
            continue
        _refuse_two_step_names(cell)
        if role.setup or role.parameters or role.injected:
            block = _block_started_by(cell, role)
            continue
        if role.metrics or role.deps or role.outs:
            block = None  # a cell with nb2pipe's own roles is no part of a Kale block
            continue
        if role.stage:
            if role.stage in steps:
                _drop_prev_edges(cell, role)
            steps.add(role.stage)
            block = None
            continue
        _drop_prev_edges(cell, role)  # an untagged cell or an empty block: it creates no step
        if block == _SETUP:
            role.setup = True
        elif block == _PARAMETERS:
            role.parameters = True


def is_kale_parameters(cell: m.Cell) -> bool:
    """A cell of Kale's `pipeline-parameters` block: Kale merges several (papermill's is one cell)."""
    return KALE_PARAMETERS_TAG in cell.tags


def _block_started_by(cell: m.Cell, role: KaleRoles) -> str | None:
    if role.setup and any(tag in KALE_SETUP_TAGS for tag in cell.tags):
        return _SETUP
    if role.parameters and is_kale_parameters(cell):
        return _PARAMETERS
    return None  # nb2pipe's own `setup` and `parameters` cells hold only themselves


def _drop_prev_edges(cell: m.Cell, role: KaleRoles) -> None:
    prev = {tag[len(KALE_PREV_PREFIX) :].strip() for tag in cell.tags if tag.startswith(KALE_PREV_PREFIX)}
    kept = {tag.split(":", 1)[1].strip() for tag in cell.tags if tag.startswith(m.AFTER_TAG_PREFIXES[0])}
    role.after[:] = [name for name in role.after if name not in prev or name in kept]


def _refuse_two_step_names(cell: m.Cell) -> None:
    tags = [t for t in cell.tags if t.startswith(m.STAGE_TAG_PREFIXES) and t.split(":", 1)[1].strip()]
    if len({t.split(":", 1)[1].strip() for t in tags}) > 1:
        raise SpecError(
            f"{cell.label} has two stage tags, {' and '.join(repr(t) for t in tags)}; "
            "a cell belongs to one stage: keep one of the tags"
        )
