"""What one notebook cell reads, binds and changes, and which files it touches (`analyze_cell`).

1. Parse the source with :mod:`ast`. Only when that fails, rewrite IPython syntax (magics, shell
   lines, `obj?`) into plain Python and parse again (ipython.py). A cell that still does not
   parse gives a warning and empty facts; nothing ever raises.
2. Walk the tree once, in execution order (walker.py, scopes.py), noting reads, binds,
   mutations, literal file paths (files.py) and constructs that defeat the analysis.
3. Keep the text of each top-level import, def and class statement, so that a later stage that
   uses the definition can be given a copy without parsing the cell again.
The facts of a source text are computed once per process and shared (they are immutable).
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass

from nb2pipe.infer.files import READ, WRITE, files_updated
from nb2pipe.infer.ipython import parsed_cell, syntax_warning
from nb2pipe.infer.walker import CellWalker


@dataclass(frozen=True)
class CellFacts:
    """What one cell does to the notebook's global namespace and to files."""

    reads: frozenset[str]
    binds: frozenset[str]
    mutates: frozenset[str]
    imports: frozenset[str]
    definitions: frozenset[str]
    files_read: tuple[str, ...]
    files_written: tuple[str, ...]
    warnings: tuple[str, ...]
    only_imports_and_definitions: bool
    understood: bool
    # Files the cell reads before it writes them (an append, or a read then a
    # rewrite): their old content matters. Each is in files_read and files_written too.
    files_updated: tuple[str, ...] = ()
    # For each def/class bound by the cell, sorted by name: the global names
    # its whole statement reads (decorators, defaults, bases and body,
    # including names bound earlier in the same cell), and the global names its
    # body mutates or binds through ``global``. Used to follow definitions
    # across stages; not part of ``reads``/``mutates`` bookkeeping order.
    definition_reads: tuple[tuple[str, frozenset[str]], ...] = ()
    definition_changes: tuple[tuple[str, frozenset[str]], ...] = ()
    # For each name a top-level import, def or class statement binds, sorted by name: the text of
    # the last such statement (decorators included), as a later stage re-creates it.
    definition_sources: tuple[tuple[str, str], ...] = ()


def analyze_cell(source: str) -> CellFacts:
    """Facts about one cell's source (plain Python or IPython syntax). Never raises."""
    return _analyze_text(_as_text(source))


@functools.lru_cache(maxsize=4096)
def _analyze_text(text: str) -> CellFacts:
    try:
        tree, parsed = parsed_cell(text)
    except (SyntaxError, ValueError) as error:
        return _unreadable_cell(syntax_warning(error))
    except RecursionError:
        return _unreadable_cell("the cell is nested too deeply; its variables cannot be followed")
    except Exception as error:  # the parser must never take nb2pipe down
        return _unreadable_cell(f"could not parse the cell ({type(error).__name__}); "
                                "its variables cannot be followed")
    walker = CellWalker()
    try:
        all_setup = walker.visit_statements(tree.body)
        sources = _definition_sources(tree.body, parsed)
    except RecursionError:
        return _unreadable_cell("the cell is nested too deeply; its variables cannot be followed")
    except Exception as error:  # a bug here must not stop the conversion
        return _unreadable_cell(f"could not analyse the cell ({type(error).__name__}); "
                                "its variables cannot be followed")
    return _facts(walker, all_setup, sources)


def _facts(walker: CellWalker, only_imports_and_definitions: bool, sources: dict[str, str]) -> CellFacts:
    ordered = sorted(walker.files, key=lambda item: (item[0], item[1]))
    return CellFacts(
        reads=frozenset(walker.reads),
        binds=frozenset(walker.binds),
        mutates=frozenset(walker.mutates),
        imports=frozenset(walker.imports),
        definitions=frozenset(walker.definitions),
        files_read=tuple(dict.fromkeys(p for _, _, p, access in ordered if access != WRITE)),
        files_written=tuple(dict.fromkeys(p for _, _, p, access in ordered if access != READ)),
        files_updated=files_updated([(p, access) for _, _, p, access in ordered]),
        warnings=tuple(dict.fromkeys(walker.warnings)),
        only_imports_and_definitions=only_imports_and_definitions,
        understood=walker.understood,
        definition_reads=_sorted_pairs(walker.definition_reads),
        definition_changes=_sorted_pairs(
            {name: changes for name, changes in walker.definition_changes.items() if changes}
        ),
        definition_sources=tuple(sorted(sources.items())),
    )


_DEFINED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _definition_sources(statements: list[ast.stmt], text: str) -> dict[str, str]:
    """Name -> text of the last top-level import, def or class statement binding it."""
    sources: dict[str, str] = {}
    lines: list[str] | None = None
    for node in statements:
        if isinstance(node, _DEFINED):
            names = [node.name]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.asname or alias.name.split(".")[0] for alias in node.names]
        else:
            continue
        if isinstance(node, _DEFINED) and node.decorator_list:
            lines = text.splitlines() if lines is None else lines
            source = "\n".join(lines[node.decorator_list[0].lineno - 1 : node.end_lineno])
        else:
            source = ast.get_source_segment(text, node, padded=False) or ""  # parsed from text: never None
        for name in names:
            sources[name] = source
    return sources


def _sorted_pairs(mapping: dict[str, set[str]]) -> tuple[tuple[str, frozenset[str]], ...]:
    return tuple((name, frozenset(names)) for name, names in sorted(mapping.items()))


def _unreadable_cell(warning: str) -> CellFacts:
    empty: frozenset[str] = frozenset()
    return CellFacts(
        reads=empty, binds=empty, mutates=empty, imports=empty, definitions=empty,
        files_read=(), files_written=(), warnings=(warning,),
        only_imports_and_definitions=False, understood=False,
    )


def _as_text(source: object) -> str:
    if isinstance(source, str):
        return source
    if isinstance(source, (list, tuple)):  # raw nbformat JSON keeps lines in a list
        return "".join(str(line) for line in source)
    return "" if source is None else str(source)
