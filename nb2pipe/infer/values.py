"""What an expression holds, as far as the text shows (`evaluate`): a known text (a string, a
number, a path, where `${name}` stands for the value of parameter `name`), an open file or buffer,
a path only the run will know, or nothing known. Used by constants.py to follow paths held in
variables and parameters: strings, numbers, `+`, `/`, `%`, f-strings, `str.format`,
`os.path.join`, `Path(...)`, `.joinpath`, `str()`, and paths taken apart (`.parent`, `.name`,
`.stem`, `.suffix`, `.with_suffix()`, `.with_name()`, `os.path.dirname/basename`).
"""

from __future__ import annotations

import ast
import enum
import posixpath
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass

from nb2pipe.infer.files import PATH_CONSTRUCTORS, PATH_JOINERS, dotted_name


@dataclass(frozen=True)
class Known:
    """A value the text shows: `text` is what str() of it gives, with `${p}` for parameter p."""

    text: str
    is_text: bool  # a string or a path, not a number


class Opaque(enum.Enum):
    FILE = "an open file or buffer"
    PATH = "a path known only at run time"


Value = Known | Opaque | None

# Calls giving an open file, a buffer or a writer object rather than a path.
FILE_OBJECT_MAKERS = frozenset(
    {"open", "StringIO", "BytesIO", "TemporaryFile", "NamedTemporaryFile", "SpooledTemporaryFile",
     "urlopen", "ExcelWriter", "ExcelFile", "HDFStore", "ZipFile", "TarFile", "fdopen"}
)
STANDARD_STREAMS = frozenset({"sys.stdout", "sys.stderr", "sys.stdin"})
_PRINTF_FIELD = re.compile(r"%(?:([sdi])|(%)|.)")


# --- evaluating an expression ------------------------------------------------------------------


def evaluate(node: ast.expr, env: Mapping[str, Value]) -> Value:
    """What `node` holds, as far as constants and the environment show."""
    if isinstance(node, ast.Constant):
        return _constant(node.value)
    if isinstance(node, ast.Name):
        return env.get(node.id)
    if isinstance(node, ast.Attribute):
        if dotted_name(node) in STANDARD_STREAMS:
            return Opaque.FILE
        return _path_part(node.attr, evaluate(node.value, env)) if node.attr in PATH_PARTS else None
    if isinstance(node, ast.JoinedStr):
        return _f_string(node, env)
    if isinstance(node, ast.BinOp):
        return _binary(node, env)
    if isinstance(node, ast.Call):
        return _call(node, env)
    return None


def _constant(value: object) -> Value:
    if isinstance(value, str):  # text holding `${` would read as a parameter's template
        return Opaque.PATH if "${" in value else Known(value, True)
    if isinstance(value, (int, float)):  # bool included: f"{True}" is "True"
        return Known(str(value), False)
    return None


def _f_string(node: ast.JoinedStr, env: Mapping[str, Value]) -> Value:
    parts: list[str] = []
    for value in node.values:
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            parts.append(value.value)
            continue
        known = evaluate(value.value, env) if isinstance(value, ast.FormattedValue) else None
        plain = isinstance(value, ast.FormattedValue) and value.conversion in (-1, ord("s")) and value.format_spec is None
        if not (plain and isinstance(known, Known)):
            return Opaque.PATH
        parts.append(known.text)
    return Known("".join(parts), True)


def _binary(node: ast.BinOp, env: Mapping[str, Value]) -> Value:
    left, right = evaluate(node.left, env), evaluate(node.right, env)
    if isinstance(node.op, ast.Mod) and isinstance(left, Known) and left.is_text:
        return _printf(left.text, node.right, env)
    if not isinstance(node.op, (ast.Add, ast.Div)):
        return None
    if isinstance(left, Known) and isinstance(right, Known):
        if isinstance(node.op, ast.Add):
            return Known(left.text + right.text, True) if left.is_text and right.is_text else None
        return Known(posixpath.join(left.text, right.text), True) if left.is_text or right.is_text else None
    texts = [v for v in (left, right) if (isinstance(v, Known) and v.is_text) or v is Opaque.PATH]
    return Opaque.PATH if texts else None


def _printf(template: str, right: ast.expr, env: Mapping[str, Value]) -> Value:
    """`"%s/%d.csv" % (folder, n)`: only %s, %d, %i and %%."""
    items = right.elts if isinstance(right, ast.Tuple) else [right]
    values = [evaluate(item, env) for item in items]
    if not all(isinstance(v, Known) for v in values):
        return Opaque.PATH
    texts = iter([v.text for v in values if isinstance(v, Known)])
    out: list[str] = []
    position = 0
    for match in _PRINTF_FIELD.finditer(template):
        out.append(template[position : match.start()])
        position = match.end()
        if match.group(2):
            out.append("%")
        elif match.group(1):
            text = next(texts, None)
            if text is None:
                return Opaque.PATH
            out.append(text)
        else:
            return Opaque.PATH
    out.append(template[position:])
    return Opaque.PATH if next(texts, None) is not None else Known("".join(out), True)


def _call(node: ast.Call, env: Mapping[str, Value]) -> Value:
    name = dotted_name(node.func)
    if name in PATH_CONSTRUCTORS and not node.args and not node.keywords:
        return Known(".", True)  # Path(): the working folder
    if name in PATH_CONSTRUCTORS or name in PATH_JOINERS:
        return _joined([evaluate(a, env) for a in node.args]) if node.args and not node.keywords else None
    if name in ("str", "os.fspath") and len(node.args) == 1 and not node.keywords:
        value = evaluate(node.args[0], env)
        return Known(value.text, True) if isinstance(value, Known) else value
    if name is not None and name.rpartition(".")[2] in FILE_OBJECT_MAKERS:
        return Opaque.FILE
    if name in PATH_FUNCTIONS and len(node.args) == 1 and not node.keywords:
        return _path_part(PATH_FUNCTIONS[name], evaluate(node.args[0], env))
    if isinstance(node.func, ast.Attribute) and node.func.attr in ("with_suffix", "with_name") and len(node.args) == 1:
        return _renamed(node.func.attr, evaluate(node.func.value, env), evaluate(node.args[0], env))
    if isinstance(node.func, ast.Attribute):
        receiver = evaluate(node.func.value, env)
        if node.func.attr == "format" and isinstance(receiver, Known) and receiver.is_text:
            return _format(receiver.text, node, env)
        if node.func.attr == "joinpath" and receiver is not None and receiver is not Opaque.FILE:
            return _joined([receiver, *(evaluate(a, env) for a in node.args)])
    return None


# `Path` attributes and `os.path` functions taking a path apart
PATH_PARTS = frozenset({"parent", "name", "stem", "suffix"})
PATH_FUNCTIONS = {"os.path.dirname": "dirname", "os.path.basename": "name", "path.dirname": "dirname",
                  "path.basename": "name", "osp.dirname": "dirname", "osp.basename": "name"}


def _path_part(part: str, base: Value) -> Value:
    """`p.parent` (`os.path.dirname(p)`, "dirname"), `p.name` (`basename`), `p.stem`, `p.suffix`
    of a known path; unknown when the last component depends on a parameter's value."""
    if not (isinstance(base, Known) and base.is_text):
        return Opaque.PATH if base is Opaque.PATH else None
    text = base.text.rstrip("/") if part != "dirname" else base.text
    last = posixpath.basename(text)
    if "${" in last:
        return Opaque.PATH
    stem, suffix = posixpath.splitext(last)
    parts = {"parent": posixpath.dirname(text) or ".", "dirname": posixpath.dirname(text), "name": last,
             "stem": stem, "suffix": suffix}
    return Known(parts[part], True)


def _renamed(how: str, base: Value, new: Value) -> Value:
    """`p.with_suffix(".csv")`, `p.with_name("x.csv")` of a known path."""
    parent, stem = _path_part("parent", base), _path_part("stem", base)
    if not (isinstance(parent, Known) and isinstance(stem, Known) and isinstance(new, Known) and new.is_text):
        return Opaque.PATH if base is not None else None
    last = stem.text + new.text if how == "with_suffix" else new.text
    return Known(last if parent.text == "." else posixpath.join(parent.text, last), True)


def _joined(parts: list[Value]) -> Value:
    if all(isinstance(p, Known) for p in parts):
        return Known(posixpath.join(*(p.text for p in parts if isinstance(p, Known))), True)
    return Opaque.PATH


def _format(template: str, call: ast.Call, env: Mapping[str, Value]) -> Value:
    """`"{}/{name}.csv".format(folder, name=stem)`: plain fields only (no attribute, index,
    conversion or format spec)."""
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return None
    positional = [evaluate(a, env) for a in call.args]
    named = {k.arg: evaluate(k.value, env) for k in call.keywords if k.arg}
    out: list[str] = []
    auto = 0
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        return None
    for literal, field, spec, conversion in fields:
        out.append(literal)
        if field is None:
            continue
        if spec or conversion:
            return Opaque.PATH
        if field == "":
            value, auto = (positional[auto] if auto < len(positional) else None), auto + 1
        elif field.isdigit():
            value = positional[int(field)] if int(field) < len(positional) else None
        else:
            value = named.get(field)
        if not isinstance(value, Known):
            return Opaque.PATH
        out.append(value.text)
    return Known("".join(out), True)
