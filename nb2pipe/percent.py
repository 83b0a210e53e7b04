"""jupytext's percent format as nb2pipe writes and reads stage scripts, without importing jupytext.

Export renders stage scripts itself (importing jupytext costs about 230 ms) and runs read them back
with jupytext (`jupytext.reads(text, fmt="py:percent")`), so what is written here must read back
to exactly the cells meant. The rules below follow jupytext's reader (cell_reader.py,
DoublePercentScriptCellReader; stringparser.py, StringParser):

1. A line matching `START` or `ALT_START` begins a new cell, unless it lies inside a Python string
   that opened earlier in the same cell (jupytext tracks quotes per cell), or, in a markdown cell,
   inside a fenced block (```) that closes later.
2. The header sets `comment_magics: false`, so jupytext reads code lines verbatim: no comment is
   ever turned back into a magic or a shell command (`# !rm -rf x` stays a comment). The one
   exception is jupytext's light-format escape: outside strings, a comment like `## +` loses one
   `#`, so such a line is written with one more `# `.
3. Markdown lines are written commented (`# ` + line, `#` for an empty line) and read back
   uncommented once; they never run.
4. jupytext splits the text with `str.splitlines()`, so a cell holding another line separator
   (\\r, \\f, \\x1c, U+2028, ...) cannot be carried, and trailing blank lines of a code cell are
   not kept (they are not code).

A cell these rules cannot carry raises `NotPercent`; export then writes that stage as a notebook.
`read_cells` splits a script the way jupytext does, for the code hash (state.normalized_code).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

START = re.compile(r"^\s*#\s*%%(%*)\s(.*)$")
ALT_START = re.compile(r"^\s*#\s*(%%|<codecell>|In\[[0-9 ]*\]:?)\s*$")
_CODE_START_ESCAPE = re.compile(r"^(# |#)*(#|# )\+")  # jupytext's escaped light-format marker
_CODE_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_BLANK = re.compile(r"^\s*$")
# characters str.splitlines() breaks at, besides "\n"
_OTHER_LINE_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_NON_CODE_CELL = re.compile(r"\[(markdown|md|raw)\]")


class NotPercent(ValueError):
    """A cell that a percent script cannot carry faithfully; the message says why."""


def is_marker(line: str) -> bool:
    """Would jupytext start a new cell at this line (outside strings and fences)?"""
    return bool(START.match(line) or ALT_START.match(line))


class Quotes:
    """Whether the next line starts inside a Python string, judged exactly as jupytext's
    StringParser judges it (a quote after a backslash does not count; comments are skipped)."""

    def __init__(self) -> None:
        self.single: str | None = None
        self.triple: str | None = None

    def inside(self) -> bool:
        return bool(self.single or self.triple)

    def read(self, line: str) -> None:
        if "'" not in line and '"' not in line:
            return  # nothing to open or close (and a line never ends inside a single-quoted string)
        if not self.inside() and line.lstrip().startswith("#"):
            return
        triple_start = -1
        for i, char in enumerate(line):
            if self.single is None and self.triple is None and char == "#":
                break
            if char not in "\"'" or line[i - 1 : i] == "\\":
                continue
            if self.single == char:
                self.single = None
                continue
            if self.single is not None:
                continue
            if line[i - 2 : i + 1] == 3 * char and i >= triple_start + 3:
                if self.triple == char:
                    self.triple, triple_start = None, i
                elif self.triple is None:
                    self.triple, triple_start = char, i
                continue
            if self.triple is not None:
                continue
            self.single = char
        self.single = None


def _uncomment(line: str) -> str:
    if line.startswith("# "):
        return line[2:]
    return line[1:] if line.startswith("#") else line


def _unescape_once(line: str) -> str:
    """What jupytext's `unesc` leaves of a commented line."""
    body = line.lstrip()
    indent = line[: len(line) - len(body)]
    return indent + _uncomment(body)


def _check_line_breaks(source: str) -> None:
    if found := _OTHER_LINE_BREAKS.search(source):
        raise NotPercent(f"holds the line separator U+{ord(found.group()):04X}, which a percent script would split at")


def code_lines(source: str) -> list[str]:
    """The lines that carry code cell `source` in a percent script (trailing blank lines dropped)."""
    _check_line_breaks(source)
    lines = source.split("\n")
    while lines and _BLANK.match(lines[-1]):
        lines.pop()
    quotes, written = Quotes(), []
    for number, line in enumerate(lines, start=1):
        if not quotes.inside():
            if is_marker(line):
                raise NotPercent(f"line {number} {line.strip()!r} would start a new cell in a percent script")
            if _CODE_START_ESCAPE.match(line) and _CODE_START_ESCAPE.match(_unescape_once(line)):
                line = "# " + line
        quotes.read(line)
        written.append(line)
    if quotes.inside():
        raise NotPercent("ends inside an unterminated string, which would swallow the cells after it in a percent script")
    return written


def markdown_lines(source: str) -> list[str]:
    """The comment lines that carry markdown cell `source` in a percent script."""
    _check_line_breaks(source)
    texts = source.split("\n")
    fence = None
    for number, text in enumerate(texts, start=1):
        if fence:
            if _closes_fence(text, fence):
                fence = None
            continue
        if opening := _opening_fence(text):
            if not any(_closes_fence(later, opening) for later in texts[number:]):
                raise NotPercent(f"line {number} opens a fenced block that the cell does not close")
            fence = opening
            continue
        if is_marker(_comment(text)):
            raise NotPercent(f"line {number} {text.strip()!r} would start a new cell in a percent script")
    return [_comment(text) for text in texts]


def _comment(text: str) -> str:
    return f"# {text}" if text else "#"


def _opening_fence(text: str) -> tuple[str, int] | None:
    match = _CODE_FENCE.match(text)
    if not match or (match.group(1)[0] == "`" and "`" in match.group(2)):
        return None
    return match.group(1)[0], len(match.group(1))


def _closes_fence(text: str, fence: tuple[str, int]) -> bool:
    match = _CODE_FENCE.match(text)
    return match is not None and match.group(1)[0] == fence[0] and len(match.group(1)) >= fence[1] and not match.group(2).strip()


# --- reading, for the code hash ---------------------------------------------------------------


@dataclass(frozen=True)
class ScriptCell:
    marker: str  # the cell's marker line ('' for text before the first marker)
    lines: tuple[str, ...]

    @property
    def is_code(self) -> bool:
        return not _NON_CODE_CELL.search(self.marker)


def read_cells(text: str) -> list[ScriptCell]:
    """The cells of a percent script, cut where jupytext cuts them (the YAML header left out)."""
    lines = text.splitlines()
    position = _after_header(lines)
    cells = []
    while position < len(lines):
        end = _cell_end(lines, position)
        has_marker = is_marker(lines[position])
        marker = lines[position] if has_marker else ""
        cells.append(ScriptCell(marker, tuple(lines[position + has_marker : end])))
        position = end
    return cells


def _after_header(lines: list[str]) -> int:
    if not lines or lines[0].rstrip() != "# ---":
        return 0
    for i in range(1, len(lines)):
        if lines[i].rstrip() == "# ---":
            return i + 1
    return 0


def _cell_end(lines: list[str], start: int) -> int:
    """Where the cell starting at `start` ends: the next marker outside strings and fences."""
    markdown = not ScriptCell(lines[start] if is_marker(lines[start]) else "", ()).is_code
    quotes, fence = Quotes(), None
    for i in range(start, len(lines)):
        line = lines[i]
        if quotes.inside():
            quotes.read(line)
            continue
        quotes.read(line)
        if markdown:
            text = _uncomment(line)
            if fence:
                if _closes_fence(text, fence):
                    fence = None
                continue
            opening = _opening_fence(text)
            if opening and any(_closes_fence(_uncomment(later), opening) for later in lines[i + 1 :]):
                fence = opening
                continue
        if i > start and is_marker(line):
            return i
    return len(lines)
