"""Cut an untagged notebook into stages at its markdown headings (step 4 of notebook.py).

1. Every ATX heading whose level is at or above the split level (`#` and `##` for the default
   `##`) starts a section; a cell holding several names its section after the last one, the one
   the code below it sits under. Deeper headings and fenced code never split.
2. Cells before the first such heading form a section named after the notebook.
3. The leading code of the first section that has code is setup while it only imports, defines,
   configures or installs (setup_code.py); the rest of that section is a stage as any other.
4. Section names are slugified heading texts, made unique; a section left with no code is no stage.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from nb2pipe import model as m

R = TypeVar("R")

_HEADING_RE = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def headings(markdown: str) -> list[tuple[int, str]]:
    """The (level, text) of each ATX heading in a markdown cell, outside fenced code."""
    found, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and (match := _HEADING_RE.match(line)):
            found.append((len(match.group(1)), match.group(2)))
    return found


def splitting_heading(cell: m.Cell, level: int) -> str | None:
    """The text of the heading that starts a section at `cell`, or None when it starts none."""
    if cell.kind != "markdown":
        return None
    split_at = [text for found_level, text in headings(cell.source) if found_level <= level]
    return split_at[-1] if split_at else None


def slugify(text: str) -> str:
    """A valid stage name from heading text: 'Train a model!' -> 'train_a_model'."""
    text = re.sub(r"<[^>]+>|`|\*|\[|\]\([^)]*\)", "", text)  # markup
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if not slug:
        slug = "stage"
    if not (slug[0].isalpha() or slug[0] == "_"):
        slug = "s_" + slug
    return slug[:64].rstrip("_-") or "stage"


def unique_name(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        suffix = f"_{n}"
        candidate = name[: 64 - len(suffix)] + suffix
        n += 1
    taken.add(candidate)
    return candidate


def sections(body: list[tuple[m.Cell, R]], notebook_name: str, level: int) -> list[tuple[str, list[tuple[m.Cell, R]]]]:
    """The body cut at every heading at or above `level`: (unique stage name, cells) in order.
    The cells before the first heading come first, named after the notebook (even when empty)."""
    taken: set[str] = set()
    found: list[tuple[str, list[tuple[m.Cell, R]]]] = [(slugify(notebook_name), [])]
    for cell, role in body:
        text = splitting_heading(cell, level)
        if text is not None:
            found.append((slugify(text), []))
        found[-1][1].append((cell, role))
    if not found[0][1]:
        found.pop(0)
    return [(unique_name(name, taken), cells) for name, cells in found]


def leading_setup(
    cut: list[tuple[str, list[tuple[m.Cell, R]]]], is_setup: Callable[[m.Cell, R], bool]
) -> tuple[list[m.Cell], list[tuple[str, list[tuple[m.Cell, R]]]]]:
    """Step 3: the leading setup code of the first section with code, taken out of it."""
    for index, (name, cells) in enumerate(cut):
        code_at = [i for i, (cell, _) in enumerate(cells) if cell.kind == "code"]
        if not code_at:
            continue
        setup: list[m.Cell] = []
        for i in code_at:
            cell, role = cells[i]
            if not is_setup(cell, role):
                break
            setup.append(cell)
        kept = [(cell, role) for cell, role in cells if cell not in setup]
        return setup, [*cut[:index], (name, kept), *cut[index + 1 :]]
    return [], cut
