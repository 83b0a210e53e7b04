"""Which files a call reads or writes: literal paths given to well-known readers and writers.

`file_accesses(call)` gives (path node, path, READ | WRITE | UPDATE) for every literal path a call
touches: `open` with its mode, `pd.read_*`, `DataFrame.to_*`, `np.load/save`, `joblib.dump`,
`Path(...).read_text()`, `plt.savefig`, ... A file opened in a mode that keeps its content and
writes to it (`"a"`, `"a+"`, `"r+"`, `to_csv(mode="a")`, `%%writefile -a`) is *updated*: both read
and written, its old content feeding the new.
"""

from __future__ import annotations

import ast
import posixpath
from collections.abc import Collection, Iterator

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

# How a call touches a file: reads it, writes it anew, or updates it (keeps its content and writes).
READ, WRITE, UPDATE = "read", "write", "update"


def _dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        prefix = _dotted_name(node.value)
        return f"{prefix}.{node.attr}" if prefix else None
    return None


def root_name(node: ast.expr) -> str | None:
    """`x` for `x`, `x.a.b`, `x[k].a`; None when the chain starts elsewhere."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _raw_literal_path(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, ast.JoinedStr):
        parts = _all_literal_paths(node.values)
        return None if parts is None else "".join(parts)
    if isinstance(node, ast.Call):
        if node.keywords or not node.args:
            return None
        if _dotted_name(node.func) not in PATH_CONSTRUCTORS | PATH_JOINERS:
            return None
        parts = _all_literal_paths(node.args)
        return None if parts is None else posixpath.join(*parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        left, right = _raw_literal_path(node.left), _raw_literal_path(node.right)
        return None if left is None or right is None else posixpath.join(left, right)
    return None


def _all_literal_paths(nodes: list[ast.expr]) -> list[str] | None:
    """The literal path text of every node, or None when one is not literal."""
    parts = [_raw_literal_path(node) for node in nodes]
    known = [part for part in parts if part is not None]
    return known if len(known) == len(parts) else None


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

def _mode_access(mode: str) -> str:
    """open()'s mode as an access: "a"/"a+"/"r+" update, "w"/"x" (also "w+") write, else read."""
    if "a" in mode or ("+" in mode and not any(flag in mode for flag in "wx")):
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
    if node is None:
        return None
    path = _literal_path(node)
    return (node, path) if path else None


def file_accesses(call: ast.Call) -> Iterator[tuple[ast.expr, str, str]]:
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
    elif _reads_first_argument(method, receiver):
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


def _open_like_access(call: ast.Call, path_position: int, mode_position: int) -> Iterator[tuple[ast.expr, str, str]]:
    found = _path_at(call, path_position)
    access = _open_mode_access(call, mode_position)
    if found and access is not None:
        yield found[0], found[1], access


def _reads_first_argument(method: str, receiver: ast.expr) -> bool:
    """`x.read_csv(path)`, `x.open_dataset(path)`, `joblib.load(path)`: the first argument is read."""
    reader = method.startswith(("read_", "open_")) and method not in NOT_FILE_READERS
    loader = method in LOAD_METHODS and root_name(receiver) not in MODULES_LOADING_NO_PATH
    return reader or loader


def _path_method_access(call: ast.Call, method: str, receiver: ast.expr, path: str) -> Iterator[tuple[ast.expr, str, str]]:
    if method in PATH_READ_METHODS:
        yield receiver, path, READ
    elif method in PATH_WRITE_METHODS:
        yield receiver, path, WRITE
    elif method == "open":
        access = _open_mode_access(call, 0)
        if access is not None:
            yield receiver, path, access


def magic_file_argument(line: str) -> str | None:
    """The path of `%%writefile [-a] path`."""
    words = [word for word in line.split() if not word.startswith("-")]
    return _clean_path(words[-1].strip("'\"")) if words else None


def files_updated(accesses: list[tuple[str, str]]) -> tuple[str, ...]:
    """Paths whose first access reads existing content (an update, or a read) and which are
    written too, from (path, access) pairs in execution order."""
    first: dict[str, str] = {}
    written: set[str] = set()
    for path, access in accesses:
        first.setdefault(path, access)
        if access != READ:
            written.add(path)
    return tuple(p for p, access in first.items() if p in written and access != WRITE)
