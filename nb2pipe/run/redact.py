"""The one place every text a stage prints passes through before nb2pipe writes or shows it.

The runner sends each line of a stage's output (stdout, stderr, the placeholders of rich
outputs), a failed stage's error and traceback, and the kernels' own output through `redact`
before they reach the stage's log file, the run's events, the sidebar and kernels.log. The
executed notebook papermill writes goes through it too: a stage with secrets has its notebook
written through `RedactingWriter`, a papermill I/O handler, at every save.

1. The values of the secrets of the stages running in this process are held (`hold`, `release`:
   counted, so two runs sharing a value do not drop it for each other). The runner holds those
   of every stage it will run; an executor holds those of the stage it runs (a dask worker is
   another process).
2. `redact` replaces each held value, longest first, with `***`, also as it appears escaped in
   JSON; a value of several lines (a key file) also line by line (lines of MIN_LINE characters
   or more), since output reaches the logs, the events and the notebook's JSON a line at a time.
   With nothing held (no stage has a secret) it returns the text as it is.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Iterable

REDACTED = "***"
MIN_LINE = 6  # shorter lines of a multi-line secret are left alone ("-----", "}")
REDACTING_SCHEME = "nb2pipe-redacted:"  # papermill I/O paths `nb2pipe-redacted:/abs/path.ipynb`

_held: Counter[str] = Counter()
_lock = threading.Lock()
_needles: tuple[str, ...] = ()  # the held values and their JSON-escaped forms, longest first


def hold(values: Iterable[str]) -> tuple[str, ...]:
    """Redact `values` from now on, until `release`d; returns what to release."""
    held = tuple(value for value in values if value)
    with _lock:
        _held.update(held)
        _refresh()
    return held


def release(values: Iterable[str]) -> None:
    with _lock:
        _held.subtract(values)
        for value in [v for v, count in _held.items() if count <= 0]:
            del _held[value]
        _refresh()


def _refresh() -> None:
    global _needles
    parts = {*_held, *(line.strip() for value in _held if "\n" in value for line in value.splitlines() if len(line.strip()) >= MIN_LINE)}
    forms = {form for part in parts for form in (part, json.dumps(part)[1:-1], json.dumps(part, ensure_ascii=False)[1:-1])}
    _needles = tuple(sorted(forms, key=len, reverse=True))


def redact(text: str) -> str:
    """`text` as nb2pipe may write it: every held secret value replaced by `***`."""
    for needle in _needles:
        if needle in text:
            text = text.replace(needle, REDACTED)
    return text


def redact_bytes(data: bytes) -> bytes:
    """`redact` for bytes (a kernel's own output), decoded as UTF-8 with replacements."""
    return redact(data.decode("utf-8", "replace")).encode() if _needles else data


def redacting_path(path: str | os.PathLike[str]) -> str:
    """The papermill output path that writes `path` through RedactingWriter."""
    return REDACTING_SCHEME + os.path.abspath(path)


class RedactingWriter:
    """A papermill I/O handler (papermill.iorw.papermill_io.register(REDACTING_SCHEME, ...)):
    each save of the executed notebook is redacted before it lands on disk, under its real path
    (also the path papermill notes in the notebook's metadata)."""

    @staticmethod
    def write(buf: str, path: str) -> None:
        target = path.removeprefix(REDACTING_SCHEME)
        temporary = f"{target}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(redact(buf).replace(REDACTING_SCHEME, ""))
        os.replace(temporary, target)

    @staticmethod
    def read(path: str) -> str:
        with open(path.removeprefix(REDACTING_SCHEME), encoding="utf-8") as f:
            return f.read()

    @staticmethod
    def listdir(path: str) -> list[str]:
        return os.listdir(path.removeprefix(REDACTING_SCHEME))

    @staticmethod
    def pretty_path(path: str) -> str:
        return path.removeprefix(REDACTING_SCHEME)
