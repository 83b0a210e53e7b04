"""Infer what notebook cells read, bind and change, and what flows between stages.

nb2pipe uses these facts to find setup cells, to warn about code it cannot
follow, and to decide which variables one pipeline stage must hand to the next.

Algorithm for one cell (:func:`analyze_cell`):

1. Parse the source with :mod:`ast`. Only when that fails, rewrite IPython
   syntax (magics, shell lines, ``obj?``) into plain Python with IPython's own
   transformer and parse again. Valid Python is never changed by that
   transformer, so an ordinary cell costs exactly one parse. A cell that still
   does not parse gives a warning and empty facts; nothing ever raises.
2. Walk the tree once, in execution order, with a stack of scopes (module,
   class, function, comprehension). At module level, loading a name that is
   not *definitely* bound earlier in the cell is a read. Binds inside
   branches, loops, ``try`` bodies and comprehensions are binds, but do not
   count as definite for the statements after them.
3. Function and comprehension scopes collect their loads, binds and
   mutations; when a scope ends, whatever is not local to it is handed to the
   enclosing scope (a function's free variables are what it reads). Class
   bodies run at once, so their loads are resolved on the spot.
4. On the way, note mutations (subscript and attribute targets, method calls
   whose result is discarded), literal file paths given to known readers and
   writers, and constructs that defeat the analysis (``exec``, star imports...).
   A file opened in a mode that keeps its content and writes to it (``"a"``,
   ``"a+"``, ``"r+"``, ``to_csv(mode="a")``, ``%%writefile -a``) is *updated*:
   both read and written, its old content feeding the new.
5. Code run by code magics (``%time``, ``%%capture``, ...) is analysed in
   place, as if it had been written there.

Algorithm across stages (:func:`infer_flow`, :func:`needed_definitions`):

1. Walk the stages in notebook order, keeping for every name its provider:
   the nearest stage that bound or mutated it, and whether that binding was an
   import/def/class (a *definition*, which is re-created, never marshalled) or
   a value (which is marshalled).
2. A stage reads a name when one of its cells reads it before an earlier cell
   of the same stage binds it. A value read that way is an input; a definition
   read that way is a needed definition, and the names that definition reads
   or changes are followed in turn, so a function defined in stage ``a`` and
   called in stage ``c`` brings along the globals and imports it uses.
3. A stage's outputs are the values that later stages take from it.
"""

from __future__ import annotations

import ast
import builtins
import functools
import posixpath
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

__all__ = [
    "CellFacts",
    "StageFlow",
    "analyze_cell",
    "infer_flow",
    "needed_definitions",
    "transform_ipython",
]


# ---------------------------------------------------------------------------
# Public data
# ---------------------------------------------------------------------------


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


@dataclass(frozen=True)
class StageFlow:
    """The values one stage loads from earlier stages and hands to later ones."""

    stage: str
    inputs: tuple[tuple[str, str], ...]  # (name, provider_stage), sorted by name
    outputs: tuple[str, ...]  # names later stages take from this one, sorted


# ---------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------

# `_` is left out: interactive interpreters put the last result there.
NEVER_READ = (frozenset(dir(builtins)) - {"_"}) | {
    "get_ipython",
    "display",
    "__name__",
    "__file__",
    "In",
    "Out",
}

CALLS_THAT_HIDE_VARIABLES = frozenset({"exec", "eval", "globals", "locals"})

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

PATH_CONSTRUCTORS = frozenset(
    {"Path", "pathlib.Path", "PurePath", "pathlib.PurePath", "PosixPath", "pathlib.PosixPath"}
)
PATH_JOINERS = frozenset({"os.path.join", "path.join", "osp.join", "posixpath.join"})
PATH_KEYWORDS = frozenset(
    {
        "file", "fname", "filename", "path", "path_or_buf", "path_or_buffer",
        "filepath_or_buffer", "io", "excel_writer", "f",
    }
)
# `.read_<x>(path)` and `.open_<x>(path)` read a file, except these, whose
# first argument is a query, an encoding, or nothing at all.
NOT_FILE_READERS = frozenset(
    {"read_sql", "read_sql_query", "read_sql_table", "read_gbq", "read_clipboard",
     "read_text", "read_bytes"}
)
LOAD_METHODS = frozenset({"load", "loadtxt", "genfromtxt", "fromfile"})
# Modules whose `.load` parses a file object or a string, never a path.
MODULES_LOADING_NO_PATH = frozenset({"yaml", "json", "pickle", "marshal"})
# `.<method>(path, ...)` writes a file. `.to_<x>` is an allow-list on purpose:
# most `to_` methods convert (to_dict("records"), pd.to_datetime("2020")).
WRITE_METHODS = frozenset(
    {
        "to_csv", "to_parquet", "to_json", "to_pickle", "to_excel", "to_feather",
        "to_hdf", "to_stata", "to_orc", "to_xml", "to_html", "to_latex",
        "to_markdown", "to_netcdf", "to_zarr", "to_file",
        "savefig", "savetxt", "savez", "savez_compressed", "write_image", "write_html",
    }
)
# `.save` / `.dump` take the path first (np.save, model.save) or second
# (torch.save, joblib.dump): the first string among the first two arguments.
SAVE_METHODS = frozenset({"save", "dump"})
PATH_READ_METHODS = frozenset({"read_text", "read_bytes"})
PATH_WRITE_METHODS = frozenset({"write_text", "write_bytes"})

# Anything the IPython transformer could change: escapes, prompts, magics,
# help, and a first line with leading indentation. `!=` is plain Python.
_IPYTHON_HINT = re.compile(r"[%?]|!(?!=)|^[ \t]*(?:[/,;]|>>>|\.\.\.|In \[)", re.MULTILINE)
_FIRST_LINE_INDENTED = re.compile(r"\A(?:[ \t]*\r?\n)*[ \t]+\S")
# `$name` and `{name...}` in shell lines and magic arguments are expanded by IPython.
_EXPANDED_NAME = re.compile(r"(?<!\$)\$\{?([A-Za-z_]\w*)|(?<!\{)\{\s*([A-Za-z_]\w*)")

_MODULE, _CLASS, _FUNCTION, _COMPREHENSION = "module", "class", "function", "comprehension"
_VALUE, _IMPORT, _DEFINITION = "value", "import", "definition"


# ---------------------------------------------------------------------------
# IPython syntax
# ---------------------------------------------------------------------------


@functools.cache
def _transformer_manager():
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
        return manager.transform_cell(source)
    except Exception:
        return source


def _parse(source: str) -> ast.Module:
    """Parse a cell, rewriting IPython syntax only if plain parsing fails."""
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError) as plain_error:
        transformed = transform_ipython(source)
        if transformed == source:
            raise plain_error from None
    try:
        return ast.parse(transformed)
    except SyntaxError as error:
        if error.lineno:  # the transformer drops leading blank lines
            error.lineno += _leading_blank_lines(source)
        raise


def _leading_blank_lines(source: str) -> int:
    count = 0
    for line in source.splitlines():
        if line.strip():
            return count
        count += 1
    return 0


def _syntax_warning(error: Exception, line_offset: int = 0) -> str:
    message = getattr(error, "msg", None) or str(error) or "invalid syntax"
    message = message[:1].lower() + message[1:]
    line = getattr(error, "lineno", None)
    where = f" at line {line + line_offset}" if line else ""
    return f"syntax error{where}: {message}; the cell's variables cannot be followed"


def _ipython_method(call: ast.Call) -> str | None:
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


def _string_arguments(call: ast.Call) -> list[str] | None:
    values = []
    for argument in call.args:
        if not (isinstance(argument, ast.Constant) and isinstance(argument.value, str)):
            return None
        values.append(argument.value)
    return values


def _expanded_names(text: str) -> Iterator[str]:
    for match in _EXPANDED_NAME.finditer(text):
        yield match.group(1) or match.group(2)


def _magic_output_name(line: str) -> str | None:
    """The variable `%%capture [--options] name` stores its output in."""
    words = [word for word in line.split() if not word.startswith("-")]
    return words[-1] if words and words[-1].isidentifier() else None


def _magic_file_argument(line: str) -> str | None:
    """The path of `%%writefile [-a] path`."""
    words = [word for word in line.split() if not word.startswith("-")]
    return _clean_path(words[-1].strip("'\"")) if words else None


def _parse_magic_line(line: str) -> ast.Module:
    """Parse the code of `%timeit -n 10 f(x)`: drop leading options until it parses."""
    words = line.split()
    try:
        return _parse(line)
    except (SyntaxError, ValueError) as error:
        first_error = error
    for dropped in range(1, min(len(words), 6)):
        if not words[dropped - 1].startswith("-") and not words[dropped - 1].isdigit():
            break
        try:
            return _parse(" ".join(words[dropped:]))
        except (SyntaxError, ValueError):
            continue
    raise first_error


# ---------------------------------------------------------------------------
# Literal paths
# ---------------------------------------------------------------------------


def _dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        prefix = _dotted_name(node.value)
        return f"{prefix}.{node.attr}" if prefix else None
    return None


def _root_name(node: ast.expr) -> str | None:
    """`x` for `x`, `x.a.b`, `x[k].a`; None when the chain starts elsewhere."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _raw_literal_path(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, ast.JoinedStr):
        parts = [_raw_literal_path(part) for part in node.values]
        return None if None in parts else "".join(parts)
    if isinstance(node, ast.Call):
        if node.keywords or not node.args:
            return None
        if _dotted_name(node.func) not in PATH_CONSTRUCTORS | PATH_JOINERS:
            return None
        parts = [_raw_literal_path(argument) for argument in node.args]
        return None if None in parts else posixpath.join(*parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        left, right = _raw_literal_path(node.left), _raw_literal_path(node.right)
        return None if left is None or right is None else posixpath.join(left, right)
    return None


def _clean_path(path: str | None) -> str | None:
    if not path or "://" in path:
        return None
    while path.startswith("./"):
        path = path[2:]
    return path or None


def _literal_path(node: ast.expr) -> str | None:
    """The path a literal expression names: 'a.csv', f'a.csv', Path('a') / 'b', ..."""
    return _clean_path(_raw_literal_path(node))


def _argument(call: ast.Call, position: int, keywords: Collection[str]) -> ast.expr | None:
    if len(call.args) > position:
        argument = call.args[position]
        return None if isinstance(argument, ast.Starred) else argument
    for keyword in call.keywords:
        if keyword.arg in keywords:
            return keyword.value
    return None


# How a call touches a file: reads it, writes it anew, or updates it (keeps its content and writes).
READ, WRITE, UPDATE = "read", "write", "update"


def _mode_access(mode: str) -> str:
    """open()'s mode as an access: "a"/"a+"/"r+" update, "w"/"x" (also "w+") write, else read."""
    if "a" in mode or "+" in mode and not any(flag in mode for flag in "wx"):
        return UPDATE
    return WRITE if any(flag in mode for flag in "wx") else READ


def _open_mode_access(call: ast.Call, position: int) -> str | None:
    """How an open()-like call touches its file; None when its mode is not a literal."""
    mode = _argument(call, position, ("mode",))
    if mode is None:
        return READ
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return _mode_access(mode.value)
    return None


def _writer_access(call: ast.Call) -> str:
    """A writer method (`to_csv`, ...) writes, or updates with a literal `mode="a"`."""
    mode = next((k.value for k in call.keywords if k.arg == "mode"), None)
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str) and _mode_access(mode.value) == UPDATE:
        return UPDATE
    return WRITE


def _path_at(call: ast.Call, position: int) -> tuple[ast.expr, str] | None:
    node = _argument(call, position, PATH_KEYWORDS)
    path = _literal_path(node) if node is not None else None
    return (node, path) if path else None


def _file_accesses(call: ast.Call) -> Iterator[tuple[ast.expr, str, str]]:
    """(path node, path, READ | WRITE | UPDATE) for each literal file path the call touches."""
    func = call.func
    if isinstance(func, ast.Name):
        if func.id == "open":
            yield from _open_like_access(call, path_position=0, mode_position=1)
        return
    if not isinstance(func, ast.Attribute):
        return
    method, receiver = func.attr, func.value
    if isinstance(receiver, (ast.Call, ast.BinOp)):
        receiver_path = _literal_path(receiver)
        if receiver_path is not None:  # Path("p").read_text() and friends
            yield from _path_method_access(call, method, receiver, receiver_path)
            return
    if method == "open":
        yield from _open_like_access(call, path_position=0, mode_position=1)
    elif method.startswith(("read_", "open_")) and method not in NOT_FILE_READERS:
        yield from _access_at(call, 0, READ)
    elif method in LOAD_METHODS and _root_name(receiver) not in MODULES_LOADING_NO_PATH:
        yield from _access_at(call, 0, READ)
    elif method in WRITE_METHODS:
        yield from _access_at(call, 0, _writer_access(call))
    elif method in SAVE_METHODS:
        yield from _first_string_access(call, WRITE)


def _access_at(call: ast.Call, position: int, access: str) -> Iterator[tuple[ast.expr, str, str]]:
    found = _path_at(call, position)
    if found:
        yield found[0], found[1], access


def _first_string_access(call: ast.Call, access: str) -> Iterator[tuple[ast.expr, str, str]]:
    for argument in call.args[:2]:
        path = _literal_path(argument)
        if path:
            yield argument, path, access
            return
    for keyword in call.keywords:
        if keyword.arg in PATH_KEYWORDS and (path := _literal_path(keyword.value)):
            yield keyword.value, path, access
            return


def _open_like_access(call: ast.Call, path_position: int, mode_position: int):
    found = _path_at(call, path_position)
    access = _open_mode_access(call, mode_position)
    if found and access is not None:
        yield found[0], found[1], access


def _path_method_access(call: ast.Call, method: str, receiver: ast.expr, path: str):
    if method in PATH_READ_METHODS:
        yield receiver, path, READ
    elif method in PATH_WRITE_METHODS:
        yield receiver, path, WRITE
    elif method == "open":
        access = _open_mode_access(call, 0)
        if access is not None:
            yield receiver, path, access


# ---------------------------------------------------------------------------
# The walk over one cell
# ---------------------------------------------------------------------------


class _Scope:
    """Names seen in one scope; `definite` is only used by ordered scopes."""

    __slots__ = ("kind", "parent", "definite", "loads", "stores", "mutated",
                 "global_names", "nonlocal_names")

    def __init__(self, kind: str, parent: _Scope | None):
        self.kind = kind
        self.parent = parent
        self.definite: set[str] = set()  # module/class: bound for sure so far
        self.loads: set[str] = set()  # function/comprehension: resolved at the end
        self.stores: set[str] = set()
        self.mutated: set[str] = set()
        self.global_names: set[str] = set()
        self.nonlocal_names: set[str] = set()

    def enclosing_function_or_module(self) -> _Scope:
        """Where free names of a nested function resolve: class bodies are skipped."""
        scope = self.parent
        while scope.kind == _CLASS:
            scope = scope.parent
        return scope


def _parameter_names(arguments: ast.arguments) -> set[str]:
    names = {a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)}
    names.update(a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None)
    return names


_SETUP_STATEMENTS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                     ast.ClassDef, ast.Pass)


class _CellWalker(ast.NodeVisitor):
    """One pass over a parsed cell, collecting the facts of :class:`CellFacts`."""

    def __init__(self) -> None:
        self.module = _Scope(_MODULE, None)
        self.scope = self.module
        self.reads: set[str] = set()
        self.binds: set[str] = set()
        self.mutates: set[str] = set()
        self.imports: set[str] = set()
        self.definitions: set[str] = set()
        self.files: list[tuple[int, int, str, str]] = []  # (line, column, path, READ | WRITE | UPDATE)
        self.warnings: list[str] = []
        self.understood = True
        self.current_definition: str | None = None  # top-level def/class being walked
        self.definition_reads: dict[str, set[str]] = {}
        self.definition_changes: dict[str, set[str]] = {}
        self.line_offset = 0
        self.magic_is_setup: bool | None = None

    # -- results ----------------------------------------------------------

    def facts(self, only_imports_and_definitions: bool) -> CellFacts:
        ordered = sorted(self.files, key=lambda item: (item[0], item[1]))
        return CellFacts(
            reads=frozenset(self.reads),
            binds=frozenset(self.binds),
            mutates=frozenset(self.mutates),
            imports=frozenset(self.imports),
            definitions=frozenset(self.definitions),
            files_read=tuple(dict.fromkeys(p for _, _, p, access in ordered if access != WRITE)),
            files_written=tuple(dict.fromkeys(p for _, _, p, access in ordered if access != READ)),
            files_updated=_files_updated([(p, access) for _, _, p, access in ordered]),
            warnings=tuple(dict.fromkeys(self.warnings)),
            only_imports_and_definitions=only_imports_and_definitions,
            understood=self.understood,
            definition_reads=_sorted_pairs(self.definition_reads),
            definition_changes=_sorted_pairs(
                {name: changes for name, changes in self.definition_changes.items() if changes}
            ),
        )

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.understood = False

    # -- statements in order ----------------------------------------------

    def visit_statements(self, statements: list[ast.stmt]) -> bool:
        """Visit a top-level statement list; tell whether it is all setup code."""
        all_setup = True
        for statement in statements:
            self.magic_is_setup = None
            self.visit(statement)
            all_setup = all_setup and self.is_setup_statement(statement)
        return all_setup

    def is_setup_statement(self, statement: ast.stmt) -> bool:
        if isinstance(statement, _SETUP_STATEMENTS):
            return True
        if isinstance(statement, ast.Expr):
            value = statement.value
            if isinstance(value, ast.Constant):
                return True
            if isinstance(value, ast.Call) and _ipython_method(value) is not None:
                return True if self.magic_is_setup is None else self.magic_is_setup
        return False

    # -- the three things that can happen to a name -------------------------

    def load(self, name: str, scope: _Scope | None = None) -> None:
        scope = scope or self.scope
        while scope.kind == _CLASS:  # class bodies run now: resolve at once
            if name in scope.global_names:
                scope = self.module
            elif name in scope.definite:
                return
            else:
                scope = scope.parent
        if scope.kind == _MODULE:
            self.module_load(name)
        else:
            scope.loads.add(name)

    def store(self, name: str, kind: str = _VALUE, scope: _Scope | None = None) -> None:
        scope = scope or self.scope
        if scope.kind == _MODULE or name in scope.global_names:
            self.module_bind(name, kind, definite=scope.kind == _MODULE)
        elif scope.kind == _CLASS:
            scope.definite.add(name)
        else:
            scope.stores.add(name)

    def mutate(self, name: str) -> None:
        scope = self.scope
        while scope.kind == _CLASS:
            if name in scope.global_names:
                scope = self.module
            elif name in scope.definite:
                return
            else:
                scope = scope.parent
        if scope.kind == _MODULE:
            self.module_mutate(name)
        else:
            scope.mutated.add(name)
            scope.loads.add(name)

    # -- module level -------------------------------------------------------

    def module_load(self, name: str, deferred: bool = False) -> None:
        """A read of a global; `deferred` when it happens later, inside a function."""
        if name in NEVER_READ:
            return
        if self.current_definition is not None:
            if deferred and name == self.current_definition:
                return  # recursion, or a method naming its own class
            if name != self.current_definition:
                self.definition_reads[self.current_definition].add(name)
        if name not in self.module.definite:
            self.reads.add(name)

    def module_bind(self, name: str, kind: str = _VALUE, definite: bool = True) -> None:
        self.binds.add(name)
        if kind == _IMPORT:
            self.imports.add(name)
        elif kind == _DEFINITION:
            self.definitions.add(name)
        if definite:
            self.module.definite.add(name)
        elif self.current_definition is not None:  # `global x; x = ...` in a function
            self.definition_changes[self.current_definition].add(name)

    def module_mutate(self, name: str, deferred: bool = False) -> None:
        if name in NEVER_READ:
            return
        self.mutates.add(name)
        self.module_load(name, deferred)
        if self.current_definition is not None and name != self.current_definition:
            self.definition_changes[self.current_definition].add(name)

    # -- scopes ---------------------------------------------------------------

    def open_scope(self, kind: str) -> _Scope:
        self.scope = _Scope(kind, self.scope)
        return self.scope

    def close_function_scope(self, scope: _Scope) -> None:
        """Hand what a function or comprehension did not bind itself to its encloser."""
        self.scope = scope.parent
        local = scope.stores - scope.global_names - scope.nonlocal_names
        target = scope.enclosing_function_or_module()
        for name in scope.loads - local:
            if name in scope.global_names or target.kind == _MODULE:
                self.module_load(name, deferred=scope.kind == _FUNCTION)
            else:
                target.loads.add(name)
        for name in scope.mutated - local:
            if name in scope.global_names or target.kind == _MODULE:
                self.module_mutate(name, deferred=scope.kind == _FUNCTION)
            else:
                target.mutated.add(name)
                target.loads.add(name)

    def snapshot(self) -> tuple[_Scope, set[str]]:
        return self.scope, set(self.scope.definite)

    @staticmethod
    def restore(snapshot: tuple[_Scope, set[str]], keep: set[str] | None = None) -> None:
        """Forget binds made since the snapshot, except those also in `keep`."""
        scope, before = snapshot
        scope.definite = set(before) if keep is None else before | (scope.definite & keep)

    def visit_body(self, statements: list[ast.stmt]) -> None:
        for statement in statements:
            self.visit(statement)

    # -- names, targets, mutation ----------------------------------------------

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.load(node.id)
        else:  # Store, or Del: deleting changes the value too
            self.store(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.visit(node.value)
        if not isinstance(node.ctx, ast.Load):
            self.mutate_root_of(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        self.visit(node.value)
        self.visit(node.slice)
        if not isinstance(node.ctx, ast.Load):
            self.mutate_root_of(node)

    def mutate_root_of(self, node: ast.expr) -> None:
        root = _root_name(node)
        if root is not None:
            self.mutate(root)

    def visit_Expr(self, node: ast.Expr) -> None:
        self.visit(node.value)
        value = node.value.value if isinstance(node.value, ast.Await) else node.value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
            self.mutate_root_of(value.func.value)  # result discarded: called for effect

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self.visit(target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self.load(node.target.id)
            self.store(node.target.id)
        else:
            self.visit(node.target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if self.scope.kind in (_MODULE, _CLASS):  # evaluated only outside functions
            self.visit(node.annotation)
        if node.value is not None:
            self.visit(node.value)
            self.visit(node.target)
        elif isinstance(node.target, ast.Name) and self.scope.kind == _FUNCTION:
            self.scope.stores.add(node.target.id)  # `x: int` makes x local

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        scope = self.scope
        while scope.kind == _COMPREHENSION:  # walrus binds outside comprehensions
            scope = scope.parent
        self.store(node.target.id, scope=scope)

    def visit_Global(self, node: ast.Global) -> None:
        if self.scope.kind != _MODULE:
            self.scope.global_names.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.scope.nonlocal_names.update(node.names)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.store(alias.asname or alias.name.partition(".")[0], _IMPORT)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module == "__future__":
            return
        for alias in node.names:
            if alias.name == "*":
                module = "." * (node.level or 0) + (node.module or "")
                self.warn(f"star import from {module}; names it brings cannot be followed")
            else:
                self.store(alias.asname or alias.name, _IMPORT)

    # -- control flow: binds in branches are not definite -------------------------

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        before = self.snapshot()
        self.visit_body(node.body)
        after_body = set(self.scope.definite)
        self.restore(before)
        self.visit_body(node.orelse)
        self.restore(before, keep=after_body)  # bound for sure only if bound in both

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self.visit(node.test)
        before = self.snapshot()
        self.visit(node.body)
        after_body = set(self.scope.definite)
        self.restore(before)
        self.visit(node.orelse)
        self.restore(before, keep=after_body)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        self.visit(node.values[0])
        before = self.snapshot()
        for value in node.values[1:]:
            self.visit(value)
        self.restore(before)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        before = self.snapshot()
        self.visit(node.target)
        self.visit_body(node.body)
        self.visit_body(node.orelse)
        self.restore(before)

    visit_AsyncFor = visit_For

    def visit_While(self, node: ast.While) -> None:
        self.visit(node.test)
        before = self.snapshot()
        self.visit_body(node.body)
        self.visit_body(node.orelse)
        self.restore(before)

    def visit_Try(self, node: ast.Try) -> None:
        before = self.snapshot()
        self.visit_body(node.body)
        self.visit_body(node.orelse)
        bound_on_every_path = set(self.scope.definite)
        for handler in node.handlers:
            self.restore(before)
            self.visit(handler)
            bound_on_every_path &= self.scope.definite
        self.restore(before, keep=bound_on_every_path)
        self.visit_body(node.finalbody)

    visit_TryStar = visit_Try

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.store(node.name)
        self.visit_body(node.body)

    def visit_Match(self, node: ast.Match) -> None:
        self.visit(node.subject)
        before = self.snapshot()
        for case in node.cases:
            self.restore(before)
            self.visit(case.pattern)
            if case.guard is not None:
                self.visit(case.guard)
            self.visit_body(case.body)
        self.restore(before)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name:
            self.store(node.name)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.store(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        self.generic_visit(node)
        if node.rest:
            self.store(node.rest)

    # -- comprehensions, lambdas, functions, classes ------------------------------

    def visit_comprehension_node(self, generators: list[ast.comprehension], results) -> None:
        first = generators[0]
        self.visit(first.iter)  # the first iterable is evaluated outside
        before = self.snapshot()
        scope = self.open_scope(_COMPREHENSION)
        for index, generator in enumerate(generators):
            if index:
                self.visit(generator.iter)
            self.visit(generator.target)
            for condition in generator.ifs:
                self.visit(condition)
        for result in results:
            self.visit(result)
        self.close_function_scope(scope)
        self.restore(before)  # a walrus inside may run zero times

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self.visit_comprehension_node(node.generators, [node.elt])

    visit_SetComp = visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self.visit_comprehension_node(node.generators, [node.key, node.value])

    def visit_defaults(self, arguments: ast.arguments) -> None:
        for default in (*arguments.defaults, *arguments.kw_defaults):
            if default is not None:
                self.visit(default)

    def visit_annotations(self, arguments: ast.arguments, returns: ast.expr | None) -> None:
        every = (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                 arguments.vararg, arguments.kwarg)
        for argument in every:
            if argument is not None and argument.annotation is not None:
                self.visit(argument.annotation)
        if returns is not None:
            self.visit(returns)

    def open_type_parameter_scope(self, node) -> _Scope | None:
        """Python 3.12 `def f[T]` / `class C[T]`: T is local to an annotation scope."""
        parameters = getattr(node, "type_params", None)
        if not parameters:
            return None
        scope = self.open_scope(_FUNCTION)
        for parameter in parameters:
            scope.stores.add(parameter.name)
            self.generic_visit(parameter)
        return scope

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.visit_defaults(node.args)
        scope = self.open_scope(_FUNCTION)
        scope.stores.update(_parameter_names(node.args))
        self.visit(node.body)
        self.close_function_scope(scope)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer = self.scope
        began = self.begin_definition(node.name)
        for decorator in node.decorator_list:
            self.visit(decorator)
        self.visit_defaults(node.args)
        type_scope = self.open_type_parameter_scope(node)
        self.visit_annotations(node.args, node.returns)
        self.store(node.name, _DEFINITION, scope=outer)  # bound before any call
        scope = self.open_scope(_FUNCTION)
        scope.stores.update(_parameter_names(node.args))
        self.visit_body(node.body)
        self.close_function_scope(scope)
        if type_scope is not None:
            self.close_function_scope(type_scope)
        self.end_definition(began)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        outer = self.scope
        began = self.begin_definition(node.name)
        for decorator in node.decorator_list:
            self.visit(decorator)
        type_scope = self.open_type_parameter_scope(node)
        for base in node.bases:
            self.visit(base)
        for keyword in node.keywords:
            self.visit(keyword.value)
        body_scope = self.open_scope(_CLASS)
        self.visit_body(node.body)
        self.scope = body_scope.parent
        if type_scope is not None:
            self.close_function_scope(type_scope)
        self.store(node.name, _DEFINITION, scope=outer)  # bound after its body ran
        self.end_definition(began)

    def visit_TypeAlias(self, node) -> None:  # Python 3.12 `type X[T] = ...`
        self.store(node.name.id)
        type_scope = self.open_type_parameter_scope(node) or self.open_scope(_FUNCTION)
        self.visit(node.value)
        self.close_function_scope(type_scope)

    def begin_definition(self, name: str) -> bool:
        """Attribute module-level reads to `name` while a top-level def/class is walked."""
        if self.scope.kind != _MODULE or self.current_definition is not None:
            return False
        self.current_definition = name
        self.definition_reads[name] = set()
        self.definition_changes[name] = set()
        return True

    def end_definition(self, began: bool) -> None:
        if began:
            self.current_definition = None

    # -- calls: hazards, files, IPython ----------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        self.note_hidden_variables(node)
        for path_node, path, access in _file_accesses(node):
            line = self.line_offset + getattr(path_node, "lineno", 0)
            self.files.append((line, getattr(path_node, "col_offset", 0), path, access))
        self.generic_visit(node)
        ipython_method = _ipython_method(node)
        if ipython_method is not None:
            self.follow_ipython_call(node, ipython_method)

    def note_hidden_variables(self, node: ast.Call) -> None:
        func = node.func
        if not isinstance(func, ast.Name):
            return
        if func.id in CALLS_THAT_HIDE_VARIABLES or (func.id == "vars" and not node.args):
            self.warn(f"uses {func.id}(); variables it touches cannot be followed")

    def follow_ipython_call(self, node: ast.Call, method: str) -> None:
        arguments = _string_arguments(node)
        if not arguments:
            return
        if method in ("system", "getoutput"):
            self.load_expanded_names(arguments[0])
        elif method == "run_line_magic" and len(arguments) >= 2:
            self.follow_line_magic(node, arguments[0], arguments[1])
        elif method == "run_cell_magic" and len(arguments) >= 3:
            self.follow_cell_magic(node, *arguments[:3])

    def load_expanded_names(self, text: str) -> None:
        for name in _expanded_names(text):
            self.load(name)

    def follow_line_magic(self, node: ast.Call, name: str, line: str) -> None:
        if name in MAGICS_RUNNING_CODE_HERE or name in MAGICS_RUNNING_CODE_APART:
            self.follow_magic_code(node, name, line, node.lineno - 1, _parse_magic_line)
            return
        self.load_expanded_names(line)
        if name == "run":
            self.warn("runs another file with %run; names it brings cannot be followed")
        elif name == "store" and "-r" in line.split():
            self.warn("restores variables with %store -r; names it brings cannot be followed")

    def follow_cell_magic(self, node: ast.Call, name: str, line: str, body: str) -> None:
        self.load_expanded_names(line)
        if name in MAGICS_RUNNING_CODE_HERE or name in MAGICS_RUNNING_CODE_APART:
            if name == "capture" and (output := _magic_output_name(line)):
                self.store(output)
            self.follow_magic_code(node, name, body, node.lineno, _parse)
        elif name in ("writefile", "file"):
            path = _magic_file_argument(line)
            if path:
                access = UPDATE if {"-a", "--append"} & set(line.split()) else WRITE
                self.files.append((self.line_offset + node.lineno, node.col_offset, path, access))
        elif name not in CELL_MAGICS_WITHOUT_PYTHON:
            self.warn(f"cell magic %%{name} runs code that cannot be followed")

    def follow_magic_code(self, node, name: str, code: str, line_offset: int, parse) -> None:
        """Analyse the Python a magic runs as if it stood where the magic is."""
        try:
            tree = parse(code)
        except (SyntaxError, ValueError) as error:
            self.warn(_syntax_warning(error, self.line_offset + line_offset))
            return
        saved_offset = self.line_offset
        self.line_offset += line_offset
        try:
            if name in MAGICS_RUNNING_CODE_APART:
                scope = self.open_scope(_FUNCTION)
                self.visit_body(tree.body)
                self.close_function_scope(scope)
                is_setup = False
            else:
                is_setup = self.visit_statements(tree.body)
        finally:
            self.line_offset = saved_offset
        self.magic_is_setup = is_setup

    # -- cheap leaves ---------------------------------------------------------------

    def visit_Constant(self, node: ast.Constant) -> None:
        pass


def _files_updated(accesses: list[tuple[str, str]]) -> tuple[str, ...]:
    """Paths whose first access reads existing content (an update, or a read) and which are
    written too, from (path, access) pairs in execution order."""
    first: dict[str, str] = {}
    written: set[str] = set()
    for path, access in accesses:
        first.setdefault(path, access)
        if access != READ:
            written.add(path)
    return tuple(p for p, access in first.items() if p in written and access != WRITE)


def _sorted_pairs(mapping: dict[str, set[str]]) -> tuple[tuple[str, frozenset[str]], ...]:
    return tuple((name, frozenset(names)) for name, names in sorted(mapping.items()))


def _unreadable_cell(warning: str) -> CellFacts:
    empty: frozenset[str] = frozenset()
    return CellFacts(
        reads=empty, binds=empty, mutates=empty, imports=empty, definitions=empty,
        files_read=(), files_written=(), warnings=(warning,),
        only_imports_and_definitions=False, understood=False,
    )


def _as_text(source) -> str:
    if isinstance(source, str):
        return source
    if isinstance(source, (list, tuple)):  # raw nbformat JSON keeps lines in a list
        return "".join(str(line) for line in source)
    return "" if source is None else str(source)


def analyze_cell(source: str) -> CellFacts:
    """Facts about one cell's source (plain Python or IPython syntax). Never raises."""
    try:
        tree = _parse(_as_text(source))
    except (SyntaxError, ValueError) as error:
        return _unreadable_cell(_syntax_warning(error))
    except RecursionError:
        return _unreadable_cell("the cell is nested too deeply; its variables cannot be followed")
    except Exception as error:  # the parser must never take nb2pipe down
        return _unreadable_cell(f"could not parse the cell ({type(error).__name__}); "
                                "its variables cannot be followed")
    walker = _CellWalker()
    try:
        all_setup = walker.visit_statements(tree.body)
    except RecursionError:
        return _unreadable_cell("the cell is nested too deeply; its variables cannot be followed")
    except Exception as error:  # a bug here must not stop the conversion
        return _unreadable_cell(f"could not analyse the cell ({type(error).__name__}); "
                                "its variables cannot be followed")
    return walker.facts(all_setup)


# ---------------------------------------------------------------------------
# Across stages
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Provider:
    stage: int
    is_definition: bool
    reads: frozenset[str] = frozenset()  # for definitions: what using it reads
    changes: frozenset[str] = frozenset()  # for definitions: what calling it changes


@dataclass
class _StageNeeds:
    inputs: dict[str, int]  # value name -> provider stage index
    definitions: dict[str, int]  # import/def/class name -> provider stage index


def _needs_of_cell(cell, providers, bound_in_stage, excluded, needs) -> set[str]:
    """Record what one cell takes from earlier stages; return names it changes
    through definitions it uses."""
    changed: set[str] = set()
    pending = [name for name in cell.reads if name not in bound_in_stage]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen or name in excluded or name in bound_in_stage:
            continue
        seen.add(name)
        provider = providers.get(name)
        if provider is None:
            continue
        if provider.is_definition:
            needs.definitions.setdefault(name, provider.stage)
            pending.extend(provider.reads)
            pending.extend(provider.changes)  # it changes them, so it needs them first
            changed.update(provider.changes)
        else:
            needs.inputs.setdefault(name, provider.stage)
    return changed


def _record_providers(providers, stage, cells, changed_by_calls, excluded) -> None:
    """After a stage: it provides what it binds, and the values it mutates."""

    def note_value_change(name: str) -> None:
        current = providers.get(name)
        if name in excluded or (current is not None and current.is_definition):
            return  # mutating a module or a function does not make it data
        providers[name] = _Provider(stage, is_definition=False)

    for cell in cells:
        reads_of = dict(cell.definition_reads)
        changes_of = dict(cell.definition_changes)
        for name in cell.binds:
            if name in excluded:
                continue
            is_definition = name in cell.imports or name in cell.definitions
            providers[name] = _Provider(
                stage,
                is_definition,
                reads_of.get(name, frozenset()),
                changes_of.get(name, frozenset()),
            )
        for name in cell.mutates - cell.binds:
            note_value_change(name)
    for name in changed_by_calls:
        note_value_change(name)


def _trace_stages(stages, exclude: Collection[str]) -> list[_StageNeeds]:
    excluded = frozenset(exclude)
    providers: dict[str, _Provider] = {}
    traced: list[_StageNeeds] = []
    for index, (_, cells) in enumerate(stages):
        needs = _StageNeeds(inputs={}, definitions={})
        bound_in_stage: set[str] = set()
        changed_by_calls: set[str] = set()
        for cell in cells:
            changed_by_calls |= _needs_of_cell(cell, providers, bound_in_stage, excluded, needs)
            bound_in_stage |= cell.binds
        _record_providers(providers, index, cells, changed_by_calls, excluded)
        traced.append(needs)
    return traced


def infer_flow(
    stages: Sequence[tuple[str, Sequence[CellFacts]]],
    *,
    exclude: Collection[str] = (),
) -> tuple[StageFlow, ...]:
    """Which values each stage loads (and from where) and hands on.

    `stages` are (name, cell facts) in notebook order; names are unique.
    Imports, functions and classes are never inputs or outputs: see
    :func:`needed_definitions`. A value that a definition used by the stage
    reads (a function's global) is an input of the stage.
    """
    names = [name for name, _ in stages]
    traced = _trace_stages(stages, exclude)
    outputs: list[set[str]] = [set() for _ in stages]
    for needs in traced:
        for name, provider in needs.inputs.items():
            outputs[provider].add(name)
    return tuple(
        StageFlow(
            stage=names[index],
            inputs=tuple(sorted((name, names[p]) for name, p in needs.inputs.items())),
            outputs=tuple(sorted(outputs[index])),
        )
        for index, needs in enumerate(traced)
    )


def needed_definitions(
    stages: Sequence[tuple[str, Sequence[CellFacts]]],
    *,
    exclude: Collection[str] = (),
) -> dict[str, tuple[tuple[str, str], ...]]:
    """Per stage: (name, provider_stage) of imports, defs and classes from earlier
    stages that the stage uses, sorted by name.

    Followed transitively: a function that uses another function, a class or an
    imported module brings those along. The provider is the nearest earlier
    stage binding the name, judged from the stage that uses it (a function
    looks its globals up when called). Names in `exclude` are left out.
    """
    names = [name for name, _ in stages]
    traced = _trace_stages(stages, exclude)
    return {
        names[index]: tuple(sorted((name, names[p]) for name, p in needs.definitions.items()))
        for index, needs in enumerate(traced)
    }
