"""IPython syntax in notebook cells: rewrite it into plain Python, and read the magics' arguments.

A cell is parsed as plain Python first; only when that fails is it rewritten with IPython's own
transformer (valid Python is never changed by it, so an ordinary cell costs one parse). Magic
calls then appear as `get_ipython().run_line_magic(...)` and friends, which the cell walker
follows with the helpers here.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from IPython.core.inputtransformer2 import TransformerManager

# Magics whose argument is Python run in the user's namespace.
MAGICS_RUNNING_CODE_HERE = frozenset({"time", "capture", "prun", "debug"})
# Magics whose argument is Python run in a namespace of its own.
MAGICS_RUNNING_CODE_APART = frozenset({"timeit"})
# Cell magics whose body is not Python run in the user's namespace.
CELL_MAGICS_WITHOUT_PYTHON = frozenset(
    {
        "bash", "sh", "script", "system", "sx", "html", "HTML", "javascript",
        "js", "latex", "markdown", "svg", "perl", "ruby", "python", "python2",
        "python3", "pypy", "writefile", "file",
    }
)

# Anything the IPython transformer could change: escapes, prompts, magics,
# help, and a first line with leading indentation. `!=` is plain Python.
_IPYTHON_HINT = re.compile(r"[%?]|!(?!=)|^[ \t]*(?:[/,;]|>>>|\.\.\.|In \[)", re.MULTILINE)
_FIRST_LINE_INDENTED = re.compile(r"\A(?:[ \t]*\r?\n)*[ \t]+\S")
# `$name` and `{name...}` in shell lines and magic arguments are expanded by IPython.
_EXPANDED_NAME = re.compile(r"(?<!\$)\$\{?([A-Za-z_]\w*)|(?<!\{)\{\s*([A-Za-z_]\w*)")


@functools.cache
def _transformer_manager() -> TransformerManager | None:
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except Exception:  # IPython missing or broken: magics stay syntax errors
        return None
    return TransformerManager()


def _may_contain_ipython_syntax(source: str) -> bool:
    return bool(_IPYTHON_HINT.search(source) or _FIRST_LINE_INDENTED.match(source))


def transform_ipython(source: str) -> str:
    """Rewrite IPython syntax into plain Python with IPython's TransformerManager.

    Sources without any character IPython would act on are returned as they
    are (fast path). Never raises: on any failure the source comes back
    unchanged.
    """
    if not isinstance(source, str) or not _may_contain_ipython_syntax(source):
        return source
    manager = _transformer_manager()
    if manager is None:
        return source
    try:
        transformed: str = manager.transform_cell(source)
    except Exception:
        return source
    return transformed


def parse_cell(source: str) -> ast.Module:
    """Parse a cell, rewriting IPython syntax only if plain parsing fails."""
    return parse_cell_and_text(source)[0]


def parse_cell_and_text(source: str) -> tuple[ast.Module, str]:
    """The tree of a cell and the text it was parsed from: the source, or its IPython rewrite."""
    try:
        return ast.parse(source), source
    except (SyntaxError, ValueError) as plain_error:
        transformed = transform_ipython(source)
        if transformed == source:
            raise plain_error from None
    try:
        return ast.parse(transformed), transformed
    except SyntaxError as error:
        if error.lineno:  # the transformer drops leading blank lines
            error.lineno += _leading_blank_lines(source)
        raise


@functools.lru_cache(maxsize=4096)
def parsed_cell(text: str) -> tuple[ast.Module, str]:
    """`parse_cell_and_text`, once per text in a process, for every analysis of a cell (the
    trees are read, never changed)."""
    return parse_cell_and_text(text)


def _leading_blank_lines(source: str) -> int:
    for count, line in enumerate(source.splitlines()):
        if line.strip():
            return count
    return 0


def syntax_warning(error: Exception, line_offset: int = 0) -> str:
    message = getattr(error, "msg", None) or str(error) or "invalid syntax"
    message = message[:1].lower() + message[1:]
    line = getattr(error, "lineno", None)
    where = f" at line {line + line_offset}" if line else ""
    return f"syntax error{where}: {message}; the cell's variables cannot be followed"


def ipython_method(call: ast.Call) -> str | None:
    """'system' for `get_ipython().system(...)`, None for any other call."""
    func = call.func
    if (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Call)
        and isinstance(func.value.func, ast.Name)
        and func.value.func.id == "get_ipython"
    ):
        return func.attr
    return None


def string_arguments(call: ast.Call) -> list[str] | None:
    values = []
    for argument in call.args:
        if not (isinstance(argument, ast.Constant) and isinstance(argument.value, str)):
            return None
        values.append(argument.value)
    return values


def expanded_names(text: str) -> Iterator[str]:
    for match in _EXPANDED_NAME.finditer(text):
        yield match.group(1) or match.group(2)


def magic_output_name(line: str) -> str | None:
    """The variable `%%capture [--options] name` stores its output in."""
    words = [word for word in line.split() if not word.startswith("-")]
    return words[-1] if words and words[-1].isidentifier() else None


def parse_magic_line(line: str) -> ast.Module:
    """Parse the code of `%timeit -n 10 f(x)`: drop leading options until it parses."""
    words = line.split()
    try:
        return parse_cell(line)
    except (SyntaxError, ValueError) as error:
        first_error = error
    for dropped in range(1, min(len(words), 6)):
        if not words[dropped - 1].startswith("-") and not words[dropped - 1].isdigit():
            break
        try:
            return parse_cell(" ".join(words[dropped:]))
        except (SyntaxError, ValueError):
            continue
    raise first_error
