"""A tracked run: what `nb2pipe run`, the server's runs and the widget's buttons all do.

`run(target, ...)`:
1. Check the arguments, the parameters file and the target (a notebook that cannot be exported,
   a folder that is not a pipeline): one error each, before anything is written.
2. Take the pipeline's run lock, then export the notebook if it changed (never under a running
   pipeline).
3. Open the run history (a damaged one is a warning and the run goes on unrecorded) and record
   the run in it; mirror it into MLflow when MLFLOW_TRACKING_URI is set.
4. Run the stages, close the history and the lock, and return a `RunReport`: the outcome of each
   planned stage, a `StageError` for each failed one, and the summary line.

Warnings and notes ("exported ...", a damaged history) go to the reporters as `message` events,
so the CLI prints them, `--events jsonl` carries them, and the server ignores them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2pipe.errors import Nb2PipeError, SpecError, StageError
from nb2pipe.run.events import Reporter, message_to
from nb2pipe.vocabulary import Outcome

if TYPE_CHECKING:  # loaded when a run starts, not when the API is imported
    from nb2pipe import model as m
    from nb2pipe.run.pool import KernelPool
    from nb2pipe.run.runner import RunOptions
    from nb2pipe.track import RunStore


@dataclass(frozen=True)
class RunReport:
    """What a run did: per planned stage its outcome, the failed stages' errors, the summary."""

    run_id: str
    pipeline: Path  # the pipeline folder
    outcomes: dict[str, Outcome]
    errors: dict[str, StageError]  # in the order the stages failed
    summary: str  # "N ran, M up to date, K restored from cache, F failed"
    ok: bool  # no stage failed or was left unrun
    recorded: bool  # recorded in runs.db (not: a dry run, record=False, or a history that could not be opened)

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "pipeline": str(self.pipeline),
            "outcomes": dict(self.outcomes),
            "errors": [error.to_json() for error in self.errors.values()],
            "summary": self.summary,
            "ok": self.ok,
            "recorded": self.recorded,
        }


def folder_of(target: str | os.PathLike[str]) -> Path:
    """A notebook's pipeline folder (`pipelines/<name>/` beside it); anything else is taken as
    the pipeline folder itself."""
    target = Path(target)
    if target.suffix == ".ipynb":
        from nb2pipe.export import default_folder

        return default_folder(target)
    return target


def run(
    target: str | os.PathLike[str],
    *,
    stages: Sequence[str] = (),
    from_stage: str | None = None,
    downstream: bool = False,
    force: bool = False,
    keep_going: bool = False,
    dry_run: bool = False,
    jobs: int | None = None,
    params: Mapping[str, Any] | None = None,
    params_file: str | os.PathLike[str] | None = None,
    params_from: str | None = None,
    kernel: str | None = None,
    wait: bool = False,
    executor: str = "local",
    scheduler: str | None = None,
    reporters: Sequence[Reporter] = (),
    command: Sequence[str] | None = None,
    record: bool = True,
    cancel: threading.Event | None = None,
    kernel_pool: KernelPool | None = None,
) -> RunReport:
    """Run the pipeline of `target` (a pipeline folder, or a notebook exported first when it
    changed), recorded in its run history unless `record` is false or it is a dry run.

    `params` override `params_file`, which overrides `params_from` (an earlier run's values),
    which override params.yaml. `command` is what the history keeps as the command line (default:
    the equivalent `nb2pipe run` command, without the parameter values, which are kept apart).
    `cancel`, set from another thread, stops the run as Ctrl-C does. `kernel_pool`: kernels the
    'local' executor takes instead of booting its own (shared by a sweep's trials)."""
    from nb2pipe.run import RunOptions
    from nb2pipe.run.executors import check_executor

    target = Path(target)
    if jobs is not None and jobs < 1:
        raise SpecError(f"--jobs {jobs} is not a number of stages; use 1 or more")
    check_executor(executor, scheduler=scheduler)  # before the lock: a wrong name or option is one error
    values = {**(read_params_file(Path(params_file)) if params_file else {}), **dict(params or {})}
    options = RunOptions(
        stages=tuple(stages), from_stage=from_stage, downstream=downstream, force=force, keep_going=keep_going,
        dry_run=dry_run, jobs=jobs, params=values, kernel=kernel, wait=wait, executor=executor, scheduler=scheduler,
        cancel=cancel, kernel_pool=kernel_pool,
    )
    folder = checked_folder(target)
    command = list(command) if command is not None else equivalent_command(target, options)
    return _run_locked(target, folder, options, list(reporters), command, record and not dry_run, params_from)


def checked_folder(target: Path) -> Path:
    """The pipeline folder of `target`, once it is known that the run can start: a damaged
    notebook or a folder that is not a pipeline is one error, before anything is written."""
    if target.suffix == ".ipynb":
        from nb2pipe.export import plan_export

        plan_export(target, None)
        return folder_of(target)
    from nb2pipe.spec import load_pipeline

    return Path(load_pipeline(target).root)


def _run_locked(
    target: Path, folder: Path, options: RunOptions, reporters: list[Reporter], command: list[str], record: bool, params_from: str | None
) -> RunReport:
    from nb2pipe.run.runner import RUNS_DIR, Runner
    from nb2pipe.run.starting import acquire_run_lock, new_run_id
    from nb2pipe.spec import load_pipeline

    run_id = new_run_id(taken=lambda candidate: (folder / RUNS_DIR / candidate).exists())
    # the run lock first: a second run of a notebook must not re-export under a running pipeline
    run_lock = acquire_run_lock(folder, options.wait, reporters, run_id)
    store = None
    try:
        if target.suffix == ".ipynb":
            export_if_needed(target, reporters)
        pipeline = load_pipeline(folder)
        store = _open_history(pipeline, reporters) if record or params_from else None
        if params_from:
            options.params = {**_params_of(store, params_from), **options.params}
        trackers = _trackers(pipeline, store, options, reporters, command) if record else []
        result = Runner(pipeline, options, reporters + trackers, lock=run_lock, run_id=run_id).run()
    finally:
        if store is not None:
            store.close()
        run_lock.release()
    recorded = store is not None and record
    return RunReport(result.run_id, folder, result.outcomes, result.errors, result.summary(), result.ok, recorded)


def _trackers(
    pipeline: m.Pipeline, store: RunStore | None, options: RunOptions, reporters: list[Reporter], command: list[str]
) -> list[Reporter]:
    """The reporters that track the run: the history's recorder, and the MLflow bridge when
    MLFLOW_TRACKING_URI is set (its stage_env points each stage's kernel at its MLflow run)."""
    trackers: list[Reporter] = []
    if store is not None:
        trackers.append(store.recorder(command, warn=lambda text: message_to(reporters, f"warning: {text}")))
    from nb2pipe import mlflow_bridge

    if mlflow_bridge.enabled():
        bridge = mlflow_bridge.MlflowBridge(pipeline, command=command)
        options.stage_env = bridge.stage_env
        trackers.append(bridge)
    return trackers


def _open_history(pipeline: m.Pipeline, reporters: list[Reporter]) -> RunStore | None:
    """The pipeline's run history, or None (with a warning) when it cannot be opened: a damaged
    history never stops a run."""
    from nb2pipe.track import RunStore

    store = RunStore(pipeline)
    try:
        store.open()
    except Nb2PipeError as error:
        store.close()
        message_to(reporters, f"warning: {error}; this run is not recorded")
        return None
    return store


def _params_of(store: RunStore | None, ref: str) -> dict[str, Any]:
    if store is None:
        raise SpecError("--params-from needs the run history, which cannot be read; see the warning above")
    return store.get(ref)["params"]


def export_if_needed(notebook: Path, reporters: Sequence[Reporter] = ()) -> bool:
    """Bring the notebook's pipeline folder up to date (only files that differ are written);
    True when something was written, which the reporters are told with the export's warnings."""
    from nb2pipe.export import export_notebook

    result = export_notebook(notebook)
    if not (result.written or result.removed):
        return False
    for warning in result.warnings:
        message_to(reporters, f"warning: {warning}")
    message_to(reporters, f"exported '{notebook}' -> {display_path(result.folder)}/")
    return True


def read_params_file(path: Path) -> dict[str, Any]:
    """A YAML file of parameter values (`--params-file`), checked: a mapping of names to values."""
    from nb2pipe.files import read_user_text
    from nb2pipe.spec import MAX_YAML_BYTES, check_params, parse_yaml

    fix = "fix the file or pass another one"
    text = read_user_text(path, what="--params-file", limit=MAX_YAML_BYTES, error=SpecError, hint=fix)
    data = parse_yaml(text, f"--params-file '{path}'", fix)
    if not isinstance(data, dict):
        raise SpecError(f"--params-file '{path}' must be a mapping of names to values")
    return check_params(data, f"--params-file '{path}'")


def equivalent_command(target: Path, options: RunOptions) -> list[str]:
    """The `nb2pipe run` command line that asks for this run (parameter values aside)."""
    argv = ["nb2pipe", "run", str(target)]
    for stage in options.stages:
        argv += ["--stage", stage]
    if options.from_stage:
        argv += ["--from", options.from_stage]
    flags = {"--downstream": options.downstream, "--force": options.force, "--keep-going": options.keep_going,
             "--dry-run": options.dry_run, "--wait": options.wait}
    argv += [flag for flag, on in flags.items() if on]
    for flag, value in (("--jobs", options.jobs), ("--kernel", options.kernel), ("--scheduler", options.scheduler)):
        if value is not None:
            argv += [flag, str(value)]
    if options.executor != "local":
        argv += ["--executor", options.executor]
    return argv


def display_path(path: Path) -> str:
    """`path` relative to the working folder when it is inside it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)
