"""Infer what notebook cells read, bind and change, and what flows between stages.

nb2pipe uses these facts to find setup cells, to warn about code it cannot follow, and to decide
which variables one pipeline stage must hand to the next. Pure: source text in, facts out.

- cells.py: `analyze_cell`, the facts of one cell (`CellFacts`), and `analyze_cells`, of a
  notebook's cells each read after those before it, built by
  - ipython.py: IPython syntax rewritten into Python, magics' arguments;
  - scopes.py: where a name resolves, and what reading, binding or changing it means;
  - walker.py: the one pass over a cell's tree, construct by construct;
  - calls.py, mutators.py: what calls change among their arguments, and aliases (with the tables);
  - files.py: which files a call reads, writes or updates (literal paths, known readers/writers).
- flow.py: `trace_stages`, across stages: the values each stage loads and hands on, and the
  definitions it re-creates (`infer_flow` and `needed_definitions` give one view each).
"""

from __future__ import annotations

from nb2pipe.infer.cells import CellFacts, analyze_cell, analyze_cells, changes_in_place
from nb2pipe.infer.flow import StageFlow, infer_flow, needed_definitions, trace_stages
from nb2pipe.infer.ipython import transform_ipython

__all__ = [
    "CellFacts",
    "StageFlow",
    "analyze_cell",
    "analyze_cells",
    "changes_in_place",
    "infer_flow",
    "needed_definitions",
    "trace_stages",
    "transform_ipython",
]
