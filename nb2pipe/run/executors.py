"""Executors: what runs a stage job, behind one small protocol, found by name in a registry.

The runner, the exports' single-stage command and the Dask workers all run stages the same way:
they make a StageJob (a stage notebook or command, its parameters, where the executed notebook
goes) and hand it to an executor, which returns a Future of the StageOutcome.

1. `Executor` is the protocol: `submit(job) -> Future[StageOutcome]`, `interrupt()`, `close()`.
2. An executor is made by a factory called as
   `factory(kernel_name, wdir, jobs, *, stages=None, log=None, **options)`: the kernel the
   notebook stages run on, the folder they run in, how many run at once, how many stages will
   be submitted (when known), a file for the kernels' own output (when wanted), and the options
   this executor declares (e.g. dask's `scheduler`). The executor classes are their own factories.
3. `register_executor(name, factory, options)` adds one; `executor(name, ...)` makes one, and
   refuses an unknown name or an option the executor does not take with a SpecError that names
   what it knows. Built-in factories are named as "module:attribute" and imported on first use,
   so listing the names (`nb2pipe --help`) imports no kernel machinery.

This module imports nothing heavy: the StageJob and StageOutcome types live here, so code that
only builds jobs or names executors does not load papermill or jupyter_client.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from nb2pipe.errors import SpecError, close_match
from nb2pipe.model import Settings

if TYPE_CHECKING:
    from concurrent.futures import Future  # imported by the executors themselves, after the first stage started

INTERRUPTED = "interrupted"  # the evalue of every stage an interrupt ended


@dataclass
class StageJob:
    """One stage to run: a notebook (papermill) or a command (an argv list, never a shell string)."""

    name: str
    notebook: Any  # nbformat.NotebookNode; None for a command stage
    parameters: dict[str, Any]
    output: Path  # the executed notebook; a command stage's stdout and stderr go to output.with_suffix(".log")
    on_cell: Callable[[int, int], None]  # (index, count) as each code cell starts
    cmd: tuple[str, ...] | None = None
    # (cell title, stream, text of whole lines) as a notebook stage prints (run/stage_output.py)
    on_output: Callable[[str, str, str], None] | None = None
    on_cell_title: Callable[[str], None] | None = None  # the title of each code cell, just before its on_cell
    on_kernel: Callable[[int], None] | None = None  # the pid of the stage's kernel, once it has one (this machine)
    env: dict[str, str] = field(default_factory=dict)  # set in the kernel before the stage's code
    # the stage's settings (nb2pipe/settings.py effective: its own over the pipeline's defaults);
    # kernel None: the executor's kernel (--kernel or the notebook's)
    settings: Settings = field(default_factory=Settings)
    # what the stage's kernel process starts with (env: values and secrets, run/kernels.stage_environments);
    # a notebook stage with any runs on a kernel started for its kernelspec and environment
    kernel_env: dict[str, str] = field(default_factory=dict)


@dataclass
class StageOutcome:
    name: str
    ok: bool
    duration: float
    error: dict[str, Any] | None = None  # ename, evalue, cell_index, source, title


def interrupted(name: str, duration: float) -> StageOutcome:
    """The outcome of a stage that an interrupt ended, or kept from starting."""
    return StageOutcome(name, False, duration, {"ename": "KeyboardInterrupt", "evalue": INTERRUPTED})


class Executor(Protocol):
    """What the runner needs from an executor.

    - `submit(job)`: run the job; the future resolves with its StageOutcome, also when the stage
      fails (ok False, `error` names the exception and, for a notebook, the cell). `job.on_cell`
      has been called for each code cell that started, and `job.on_output` (when set) for what
      the cells printed, before the future resolves.
    - `interrupt()`: kill the kernels and commands of the stages that run; their futures resolve
      soon as failed with evalue "interrupted", and so does every job submitted afterwards,
      without running.
    - `close()`: release kernels, threads and clusters; it waits for the stages still running
      (interrupt first to stop them).
    """

    def submit(self, job: StageJob) -> Future[StageOutcome]: ...

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


class ExecutorFactory(Protocol):
    def __call__(
        self, kernel_name: str, wdir: Path, jobs: int, *, stages: int | None = None, log: Path | None = None, **options: Any
    ) -> Executor: ...


@dataclass(frozen=True)
class _Registered:
    factory: ExecutorFactory | str  # a callable, or "module:attribute" imported on first use
    options: tuple[str, ...]  # the keyword options it takes besides the common ones


_REGISTRY: dict[str, _Registered] = {
    "local": _Registered("nb2pipe.run.local:LocalExecutor", ()),
    "dask": _Registered("nb2pipe.run.dask_executor:DaskExecutor", ("scheduler",)),
}


def register_executor(name: str, factory: ExecutorFactory | str, options: tuple[str, ...] = ()) -> None:
    """Make `factory` the executor called `name` (replacing one of that name). `options` names the
    keyword options it takes besides kernel_name, wdir, jobs, stages and log."""
    if not isinstance(name, str) or not name.strip():
        raise SpecError(f"an executor's name must be a non-empty string, not {name!r}")
    _REGISTRY[name] = _Registered(factory, tuple(options))


def executor_names() -> tuple[str, ...]:
    """The names `executor` knows, built-in first."""
    return tuple(_REGISTRY)


def check_executor(name: str, **options: Any) -> None:
    """A SpecError unless `name` is a known executor and takes every option given (None: not given)."""
    _registered(name, options)


def executor(
    name: str, kernel_name: str, wdir: Path, jobs: int, *, stages: int | None = None, log: Path | None = None,
    pool: Any = None, **options: Any,
) -> Executor:
    """A new executor `name` for stages that run in `wdir` on kernel `kernel_name`, `jobs` at once.
    Options set to None are left out, so a caller can pass every option it has. `pool`: a kernel
    pool (run/pool.py) shared with other runs, a sweep's trials; passed on, as `pool`, when given."""
    registered, given = _registered(name, options)
    if pool is not None:
        given["pool"] = pool
    factory = registered.factory
    if isinstance(factory, str):
        module, _, attribute = factory.partition(":")
        factory = getattr(importlib.import_module(module), attribute)
    return factory(kernel_name, Path(wdir), jobs, stages=stages, log=log, **given)


def _registered(name: str, options: dict[str, Any]) -> tuple[_Registered, dict[str, Any]]:
    if name not in _REGISTRY:
        raise SpecError(f"unknown executor '{name}'; {close_match(name, executor_names(), 'executors')}")
    registered = _REGISTRY[name]
    given = {key: value for key, value in options.items() if value is not None}
    for option in given:
        if option not in registered.options:
            takes = f"it takes: {', '.join(registered.options)}" if registered.options else "it takes no options"
            others = [n for n, r in _REGISTRY.items() if option in r.options]
            fix = f"leave it out, or use executor '{others[0]}'" if others else "leave it out"
            raise SpecError(f"option '{option}' does not apply to executor '{name}' ({takes}); {fix}")
    return registered, given
