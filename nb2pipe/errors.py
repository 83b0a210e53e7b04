"""Every error nb2pipe raises for a user's mistake: one root class, one-line messages.

A message names the thing (file, cell, stage, tag) and says what to do next. The CLI prints
`error: <message>` and exits with `exit_code`; no traceback unless `--debug`.
"""

from __future__ import annotations

from collections.abc import Iterable


class Nb2PipeError(Exception):
    """Root of nb2pipe's errors. `str(error)` is a single line meant for the user."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(message.split("\n")))

    @property
    def message(self) -> str:
        return str(self)


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
