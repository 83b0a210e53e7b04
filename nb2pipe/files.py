"""The files a user hands nb2pipe, read safely; the names that may reach generated files; and
the one rule for where outputs may go.

- `read_user_text` reads a notebook, nb2pipe.yaml or a params file: anything that is not a
  regular file (a FIFO would block, /dev/zero never ends) and anything absurdly big is refused
  before a byte is read, and bytes that are not UTF-8 are a one-line error, not a traceback.
- `check_name` refuses a name or path holding a control character or bytes that are not UTF-8,
  which could break a line of a generated file.
- `out_problem` says why a path cannot be an output. nb2pipe writes, caches and restores
  outputs, so an output must lie strictly inside the project (the working directory, i.e. the
  notebook's folder): not the project itself, not a parent of it, not outside it (absolute,
  `..`, or through a symlink), and not over the pipeline folder or the notebook.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from nb2pipe.errors import SpecError

# a line break, tab, NUL, other C0/C1 controls, U+2028/U+2029: each could break a line of a generated file
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def read_user_text(path: Path, *, what: str, limit: int, error: type[Exception], hint: str) -> str:
    """The UTF-8 text of the file at `path`, or an `error` that quotes the path and ends with `hint`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # opening a FIFO must not block
    except FileNotFoundError:
        raise error(f"{what} '{path}' does not exist; check the path") from None
    except OSError as e:
        raise error(f"cannot read {what} '{path}': {e.strerror}; {hint}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise error(f"{what} '{path}' is a folder, not a file; {hint}")
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{what} '{path}' is not a regular file (it is {special_kind(st)}); {hint}")
        if st.st_size > limit:
            raise error(f"{what} '{path}' is {_size(st.st_size)}, more than nb2pipe reads ({_size(limit)}); {hint}")
        data = _read_at_most(fd, limit + 1)
    except OSError as e:
        raise error(f"cannot read {what} '{path}': {e.strerror}; {hint}") from None
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew after the check
        raise error(f"{what} '{path}' is more than nb2pipe reads ({_size(limit)}); {hint}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{what} '{path}' is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); {hint}") from None


def _read_at_most(fd: int, count: int) -> bytes:
    chunks, left = [], count
    while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def special_kind(st: os.stat_result) -> str:
    """'a FIFO', 'a character device', ... for something that is neither a file nor a folder."""
    kinds = (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(st.st_mode)), "not a file")


def _size(count: int) -> str:
    return f"{count / (1 << 30):.1f} GB" if count >= 1 << 30 else f"{count / (1 << 20):.0f} MB"


def check_name(text: str, what: str, fix: str) -> None:
    """A SpecError naming `what` when `text` holds a control character (a line break, tab, NUL,
    other C0/C1 controls, U+2028/U+2029), which could break a line of a generated file, or bytes
    that are not UTF-8 (a file name can), which no generated file can hold."""
    found = _CONTROL_CHARACTERS.search(text)
    if found:
        shown = _CONTROL_CHARACTERS.sub(lambda c: f"\\u{ord(c.group()):04x}", text)
        raise SpecError(f"{what} '{shown}' contains a control character (U+{ord(found.group()):04X}); {fix}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = text.encode("utf-8", "backslashreplace").decode("utf-8")
        raise SpecError(f"{what} '{shown}' is not valid UTF-8; {fix}") from None


# --- where outputs may go ---------------------------------------------------------------------

OutChecker = Callable[[str], "str | None"]  # why a path cannot be an output (None when it can)


def out_problem(
    path: str, project: str | None, protected: Mapping[str, str] = {}, also_inside: Sequence[str] = ()
) -> str | None:
    """Why `path` cannot be an output of a pipeline working in `project`; None when it can.

    `path` is relative to `project` (or absolute). With `project` None only the path's text is
    judged (`.`, `..`, absolute); with a folder on disk, symlinks are followed too. `protected`
    names paths no output may be or hold, e.g. {"the pipeline folder": "pipelines/x"};
    `also_inside` are folders whose insides are fine even where a symlink takes them out of the
    project (the pipeline folder, which holds nb2pipe's own variables and metrics).
    """
    if "\0" in path:
        return "contains a control character (NUL)"
    if project is None:
        return _lexical_problem(path)
    base = os.path.abspath(project)
    target = os.path.normpath(os.path.join(base, path))
    if problem := _containment_problem(target, base):
        return problem
    real_base, real_target = os.path.realpath(base), os.path.realpath(target)
    problem = _containment_problem(real_target, real_base)
    if problem and not any(_is_strictly_inside(real_target, os.path.realpath(os.path.join(base, f))) for f in also_inside):
        return f"{problem}: through a symlink it is '{real_target}'"
    for label, kept in protected.items():
        kept_real = os.path.realpath(os.path.join(base, kept))
        if real_target == kept_real or kept_real.startswith(real_target.rstrip(os.sep) + os.sep):
            return f"is or holds {label}"
    return None


def _lexical_problem(path: str) -> str | None:
    if posixpath.isabs(path):
        return "is an absolute path, outside the project"
    return _containment_problem(posixpath.normpath(posixpath.join("/project", path)), "/project")


def _is_strictly_inside(target: str, folder: str) -> bool:
    return target.startswith(folder.rstrip(os.sep) + os.sep)


def _containment_problem(target: str, base: str) -> str | None:
    if target == base:
        return "is the project folder itself"
    if base.startswith(target.rstrip(os.sep) + os.sep):
        return "is a parent of the project folder"
    if not _is_strictly_inside(target, base):
        return "is outside the project"
    return None
