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
from dataclasses import dataclass

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
# Other calls whose first argument is a file they read: images (`plt.imread`, `cv2.imread`...) and
# a file's size or time (`os.path.getsize`), which a later stage can only see once it is written.
READ_FUNCTIONS = frozenset({"imread", "getsize", "getmtime"})
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


def dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        prefix = dotted_name(node.value)
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
        if dotted_name(node.func) not in PATH_CONSTRUCTORS | PATH_JOINERS:
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


def clean_path(path: str | None) -> str | None:
    """A path as nb2pipe records it (no leading './'); None for a URL or nothing."""
    if not path or "://" in path:
        return None
    while path.startswith("./"):
        path = path[2:]
    return path or None


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


@dataclass(frozen=True)
class PathSite:
    """Where a call names a file: the arguments that may hold its path (the path is the first of
    them that is a string), how the call touches the file, and whether the argument is surely a
    path or a file object (`open`'s first, `read_csv`'s first) rather than one of several
    candidates (`joblib.dump(value, path)`)."""

    candidates: tuple[ast.expr, ...]
    access: str
    certain: bool
    naming: str = ""  # how the library names the file it writes: see written_name
    # `x.open(...)` on a name: when x holds a path, the call opens x (this site) instead
    receiver_site: PathSite | None = None


def path_sites(call: ast.Call) -> Iterator[PathSite]:
    """Every place where `call` names a file it reads, writes or updates (paths not evaluated)."""
    func = call.func
    if isinstance(func, ast.Name):
        if func.id == "open":
            yield from _open_like_site(call, certain=True)
        return
    if not isinstance(func, ast.Attribute):
        return
    method, receiver = func.attr, func.value
    if method in PATH_READ_METHODS | PATH_WRITE_METHODS or (method == "open" and _is_path_expression(receiver)):
        yield from _path_method_site(call, method, receiver)
    elif method == "open":
        # `gzip.open(path)`, or `p.open("w")` on a name holding a path: which one the resolver tells
        opened = _path_method_site(call, method, receiver) if isinstance(receiver, ast.Name) else iter(())
        alternative = next(opened, None)
        for site in _open_like_site(call, certain=dotted_name(receiver) == "io"):
            yield PathSite(site.candidates, site.access, site.certain, receiver_site=alternative)
        if alternative is not None and not call.args:
            yield PathSite((), READ, certain=False, receiver_site=alternative)
    elif _reads_first_argument(method, receiver):
        yield from _site_at(call, 0, READ)
    elif method in WRITE_METHODS:
        yield from _site_at(call, 0, _writer_access(call), naming=_naming(call, method))
    elif method in SAVE_METHODS:
        candidates = [a for a in call.args[:2] if not isinstance(a, ast.Starred)]
        candidates += [k.value for k in call.keywords if k.arg in PATH_KEYWORDS]
        if candidates:
            yield PathSite(tuple(candidates), WRITE, certain=False, naming=_naming(call, method))


def _reads_first_argument(method: str, receiver: ast.expr) -> bool:
    """`x.read_csv(path)`, `x.open_dataset(path)`, `joblib.load(path)`: the first argument is read."""
    reader = method.startswith(("read_", "open_")) and method not in NOT_FILE_READERS
    loader = method in LOAD_METHODS and root_name(receiver) not in MODULES_LOADING_NO_PATH
    return reader or loader or method in READ_FUNCTIONS


def _is_path_expression(node: ast.expr) -> bool:
    """`Path(...)` or `a / b`: an expression whose `.open()`, `.read_text()`... touch the path it is."""
    if isinstance(node, ast.Call):
        return dotted_name(node.func) in PATH_CONSTRUCTORS
    return isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)


def _site_at(call: ast.Call, position: int, access: str, naming: str = "") -> Iterator[PathSite]:
    node = _argument(call, position, PATH_KEYWORDS)
    if node is not None:
        yield PathSite((node,), access, certain=True, naming=naming)


def _open_like_site(call: ast.Call, certain: bool) -> Iterator[PathSite]:
    node = _argument(call, 0, PATH_KEYWORDS)
    access = _open_mode_access(call, 1)
    if node is not None and access is not None:
        yield PathSite((node,), access, certain)


def _path_method_site(call: ast.Call, method: str, receiver: ast.expr) -> Iterator[PathSite]:
    """`Path("p").read_text()`, `p.write_text(...)`, `(root / "x").open("w")`: the receiver is the path."""
    if method in PATH_READ_METHODS:
        yield PathSite((receiver,), READ, certain=False)
    elif method in PATH_WRITE_METHODS:
        yield PathSite((receiver,), WRITE, certain=False)
    else:
        access = _open_mode_access(call, 0)
        if access is not None:
            yield PathSite((receiver,), access, certain=False)


# --- files named by convention: the name a library gives the file it writes -------------------

NUMPY_MODULES = frozenset({"np", "numpy"})
NUMPY_SUFFIXES = {"save": ".npy", "savez": ".npz", "savez_compressed": ".npz"}
DEFAULT_FIGURE_FORMAT = "png"  # matplotlib's rcParams["savefig.format"]


def _naming(call: ast.Call, method: str) -> str:
    """How the writer names its file: `np.save` adds `.npy` (`savez` `.npz`) unless the name ends so;
    `savefig` adds `.png` to a name without a suffix unless `format=` is given; others write it as named."""
    func = call.func
    receiver = func.value if isinstance(func, ast.Attribute) else None
    if method in NUMPY_SUFFIXES and receiver is not None and dotted_name(receiver) in NUMPY_MODULES:
        return NUMPY_SUFFIXES[method]
    if method == "savefig" and not any(k.arg == "format" for k in call.keywords) and len(call.args) < 2:
        return "." + DEFAULT_FIGURE_FORMAT
    return ""


TEMPLATE_START = "${"


def written_name(path: str, naming: str) -> str | None:
    """The file a writer with `naming` (see _naming) writes when given `path`; None when that
    depends on a parameter's value (the file name ends in a `${...}` template)."""
    if not naming:
        return path
    last = posixpath.basename(path)
    templated = TEMPLATE_START in last
    if naming in NUMPY_SUFFIXES.values():  # numpy: `if not file.endswith('.npy'): file += '.npy'`
        if path.endswith(naming):
            return path
        return None if templated and last.endswith("}") else path + naming
    # matplotlib: the format from the name's suffix, else the default format added to the name
    tail = last.rpartition("}")[2] if templated else last
    if templated and not posixpath.splitext("x" + tail)[1][1:]:
        return None
    return path if posixpath.splitext(path)[1][1:] else path.rstrip(".") + naming


def literal_path(node: ast.expr) -> str | None:
    """The path a literal expression names: 'a.csv', f'a.csv', Path('a') / 'b', ..."""
    return clean_path(_raw_literal_path(node))


def file_accesses(call: ast.Call) -> Iterator[tuple[ast.expr, str, str]]:
    """(path node, path, READ | WRITE | UPDATE) for each literal file path the call touches."""
    for site in path_sites(call):
        for node in site.candidates:
            path = literal_path(node)
            if path:
                name = written_name(path, site.naming)
                if name:
                    yield node, name, site.access
                break


def magic_file_argument(line: str) -> str | None:
    """The path of `%%writefile [-a] path`."""
    words = [word for word in line.split() if not word.startswith("-")]
    return clean_path(words[-1].strip("'\"")) if words else None


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
