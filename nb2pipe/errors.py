"""Every error nb2pipe raises for a user's mistake: one root class, one-line messages.

A message names the thing (file, cell, stage, tag) and says what to do next. The CLI prints
`error: <message>` and exits with `exit_code`; no traceback unless `--debug`.

`StageError` is not raised: it is the record of a stage that failed while a pipeline ran, carried
from the runner to the CLI, the events, the server's JSON and the sidebar.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any


class Nb2PipeError(Exception):
    """Root of nb2pipe's errors. `str(error)` is a single line meant for the user."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(message.split("\n")))

    @property
    def message(self) -> str:
        return str(self)


# file system errors a user can fix, and how (the CLI and the run worker print them in one line)
FILE_SYSTEM_FIXES = {
    errno.ENOSPC: "free some disk space and run again (outputs were put back; the next run finishes the job)",
    errno.EDQUOT: "free some of your disk quota and run again",
    errno.EROFS: "the file system is read-only: export or run where you can write",
    errno.EACCES: "you may not write there: check the folder's permissions",
    errno.EPERM: "you may not write there: check the folder's permissions",
}


def file_system_problem(error: OSError) -> str | None:
    """One line for an OSError a user can fix (a full disk, a read-only folder), else None."""
    fix = FILE_SYSTEM_FIXES.get(error.errno) if error.errno is not None else None
    if fix is None:
        return None
    where = f" ('{error.filename}')" if error.filename else ""
    return f"{error.strerror}{where}; {fix}"


def exit_status(command: Callable[[], int], debug: bool = False) -> int:
    """Run a command and turn what goes wrong into what its user reads: one `error: ...` line on
    stderr and the exit status (the error's own code, 2 for a file-system problem the user can
    fix, 130 when interrupted). `debug` lets the traceback through; an OSError nb2pipe cannot
    explain is a bug and always does."""
    try:
        return command()
    except Nb2PipeError as error:
        if debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as error:
        problem = file_system_problem(error)
        if debug or problem is None:
            raise
        print(f"error: {problem}", file=sys.stderr)
        return 2


class NotebookError(Nb2PipeError):
    """The notebook file cannot be read as a notebook."""


class SpecError(Nb2PipeError):
    """Tags, parameters or a pipeline file say something nb2pipe cannot accept."""


class CycleError(SpecError):
    """The stages depend on each other in a circle."""

    def __init__(self, cycle: list[str]):
        self.cycle = cycle
        super().__init__(
            f"the stages form a cycle: {' -> '.join(cycle)}; remove one of these edges "
            "(an after:/prev: tag, or a file that is both read and written)"
        )


def close_match(name: str, known: Iterable[str], what: str = "names") -> str:
    """The hint after an unknown `name`: `did you mean 'x'?` when one of `known` is close to it
    (ignoring case too: `TRAIN` is close to `train`), else `known <what>: a, b` (or `none`)."""
    import difflib

    known = list(known)
    close = difflib.get_close_matches(name, known, n=1)
    if not close:
        by_lower = {k.lower(): k for k in reversed(known)}  # the first of names equal but for case
        close = [by_lower[k] for k in difflib.get_close_matches(name.lower(), list(by_lower), n=1)]
    return f"did you mean '{close[0]}'?" if close else f"known {what}: {', '.join(known) or 'none'}"


class UnknownStageError(SpecError):
    """A stage name that the pipeline does not have."""

    def __init__(self, name: str, known: list[str], where: str = ""):
        self.name = name
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}unknown stage '{name}'; {close_match(name, known, 'stages')}")


class OverwriteError(Nb2PipeError):
    """Export would overwrite something the user wrote."""


class KernelStartError(Nb2PipeError):
    """The stages' Jupyter kernel dies at start or never answers (a broken or too slow kernelspec)."""


class StageFailed(Nb2PipeError):
    """A stage's code raised while the pipeline ran."""

    exit_code = 1


class PipelineLocked(Nb2PipeError):
    """Another run of the same pipeline holds its lock."""

    exit_code = 1


# the enames of the stages nb2pipe stopped for a limit (run/limits.py) whose evalue is the whole story
STOPPED_BY_LIMIT = ("StageTimeout", "OutOfMemory")


@dataclass(frozen=True)
class StageError:
    """A stage that failed: where (stage, cell), what (exception type and value), and the
    executed notebook to open. Paths are as the producer saw them (the runner: relative to
    where the run started); `rebased` re-expresses them for another folder."""

    stage: str
    ename: str = ""
    evalue: str = ""
    cell: str | None = None  # the failing cell's title, e.g. "analysis.ipynb cell 5" (its number in the notebook)
    script: str | None = None  # the stage script holding that cell
    notebook: str | None = None  # the executed notebook
    traceback: str | None = None  # the failing cell's traceback as plain text (no colours), redacted; shown on request

    @property
    def exception(self) -> str:
        """`ValueError: boom`, or `failed` when nothing is known."""
        text = f"{self.ename or 'Error'}: {self.evalue}".strip().rstrip(":") if (self.ename or self.evalue) else ""
        return text or "failed"

    @property
    def message(self) -> str:
        """One line: stage, failing cell (and its script), exception, executed notebook. A stage a
        limit stopped says so in its own words: `stage 'x' timed out after 30m in cell 4; open ...`."""
        if self.ename in STOPPED_BY_LIMIT:
            return f"stage '{self.stage}' {self.evalue}" + (f"; open {self.notebook}" if self.notebook else "")
        where = ""
        if self.cell:
            where = f" in {self.cell}" + (f" ({self.script})" if self.script else "")
        opening = f"; open {self.notebook}" if self.notebook else ""
        return f"stage '{self.stage}' failed{where}: {self.exception}{opening}"

    def __str__(self) -> str:
        return self.message

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "exception": self.exception, "message": self.message}

    @classmethod
    def from_json(cls, data: Any) -> StageError | None:
        """The error a `to_json` dict describes; None for anything else (a torn or foreign record)."""
        if not isinstance(data, dict) or not isinstance(data.get("stage"), str):
            return None
        return cls(**{f.name: data[f.name] for f in fields(cls) if isinstance(data.get(f.name), str)})

    def rebased(self, old: str | os.PathLike[str], new: str | os.PathLike[str], inside: str | os.PathLike[str] | None = None) -> StageError:
        """The same error with its paths relative to folder `new` instead of `old`; a path that
        does not lie inside `inside` (when given) is dropped."""

        def move(path: str | None) -> str | None:
            if path is None:
                return None
            full = os.path.normpath(os.path.join(old, path))
            if inside is not None and os.path.commonpath([os.path.realpath(full), os.path.realpath(inside)]) != os.path.realpath(inside):
                return None
            return os.path.relpath(full, new).replace(os.sep, "/")

        return replace(self, script=move(self.script), notebook=move(self.notebook))
