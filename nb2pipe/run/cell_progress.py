"""Where a running stage is, in the words of the notebook it came from: "notebook cell 14, 2 of 5".

The executed stage notebook has more code cells than the stage's own: setup cells, the
parameters cell papermill injects, cells nb2pipe adds to load and save variables. Export titles
each cell the stage took from the notebook `<notebook> cell N` (setup and configuration cells get
a role in parentheses: `cell 3 (setup)`); generated cells carry other titles or none. So:

1. `own_cells(notebook)` lists the titles of the stage's own code cells, in order.
2. `cell_progress(title, own)` says where a cell with that title is: the notebook cell number,
   its position among the stage's own cells, and how many there are.
3. `progress_label` words that for people: the CLI's running line and the sidebar say the same.

Pure and light: the terminal reporter imports it.
"""

from __future__ import annotations

import re
from typing import Any

# the end of a title export gave a cell the stage took from the notebook; a role such as
# "(setup)" after it means the cell is not one of the stage's own
_OWN_TITLE = re.compile(r"(?:^|\s)cell (\d+)$")
_ANY_TITLE = re.compile(r"(?:^|\s)cell (\d+)(?: \(([^()]*)\))?$")


def own_cells(notebook: Any) -> tuple[str, ...]:
    """The titles of the code cells of a stage notebook that the stage took from the notebook."""
    titles = []
    for cell in getattr(notebook, "cells", ()):
        title = str(cell.get("metadata", {}).get("title", "")) if cell.get("cell_type") == "code" else ""
        if _OWN_TITLE.search(title):
            titles.append(title)
    return tuple(titles)


def cell_progress(title: str, own: tuple[str, ...], after_own: bool = False) -> dict[str, Any]:
    """`notebook_cell` (the notebook's cell number, or None for a cell nb2pipe generated),
    `position` among the stage's own cells (None for others), `of` (how many it has), `role`:
    setup or configuration for such notebook cells; for a generated cell 'preparing', or
    'finishing' when it comes `after_own` cells ran (saving variables, writing metrics)."""
    match = _ANY_TITLE.search(title)
    number = int(match.group(1)) if match else None
    role = (match.group(2) or "") if match else ("finishing" if after_own else "preparing")
    position = own.index(title) + 1 if title in own else None
    return {"notebook_cell": number, "position": position, "of": len(own), "role": role}


def progress_label(record: dict[str, Any]) -> str:
    """'notebook cell 14, 2 of 5' for one of the stage's own cells; 'notebook cell 3 (setup)';
    'preparing' or 'finishing' for a cell nb2pipe added (parameters, loading and saving
    variables); else 'cell i/n' from an older event that has no titles."""
    number, position, of = record.get("notebook_cell"), record.get("position"), record.get("of")
    if isinstance(number, int) and isinstance(position, int):
        return f"notebook cell {number}, {position} of {of}"
    if isinstance(number, int):
        return f"notebook cell {number}" + (f" ({record['role']})" if record.get("role") else "")
    if isinstance(of, int):
        return str(record.get("role") or "preparing")
    index, count = record.get("index", record.get("cell")), record.get("count", record.get("cells"))
    return f"cell {index}/{count}" if isinstance(index, int) and count else "starting"
