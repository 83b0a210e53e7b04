"""Run one stage of a pipeline for another engine: `python -m nb2pipe.run.single PIPELINE STAGE`.

DVC, Airflow and Kubeflow run every stage through this command (`nb2pipe export --to ...` writes
it into their files). The stage runs as `nb2pipe run` runs it: a StageJob on the 'local'
executor (a fresh kernel that answered before the stage starts, papermill, the pipeline's
`wdir`, the same parameter values; a `cmd:` stage as its argv). Nothing else: no staleness
check, no lock file, no output cache, no restore on failure (the engine owns all of that).

1. Parameters: the values in params.yaml, overridden by `--params-json '{...}'` (Airflow's DAG
   params, Kubeflow's pipeline inputs); an unknown name is an error. Only the parameters the
   stage reads are injected.
2. The executed notebook goes to `<pipeline>/.nb2pipe/<engine>-runs/<stage>.ipynb` (a command
   stage's output to `<stage>.log` there), never an output of the stage.
3. SIGINT or SIGTERM (the engine cancelling the task) kills the stage's kernel or command, and
   whatever the command started.
4. The stage's settings (nb2pipe.yaml's, its own over the pipeline's defaults) go with the job, as
   `nb2pipe run` gives them; `kernel:` chooses its kernel. A failed stage is tried again as its
   `retries:` says, in a fresh kernel each time, unless `--no-retries`: the engine retries the
   task itself (Airflow, Kubeflow). An interrupt is never retried.
5. Exit status 0 on success; 1 when the stage fails, with one line naming the stage, the cell,
   the exception and the file to open, as `nb2pipe run` words it; 2 for a usage or pipeline
   error; 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nb2pipe import lockfile, state
from nb2pipe import model as m
from nb2pipe.errors import Nb2PipeError, SpecError, StageFailed
from nb2pipe.run import redact as redaction
from nb2pipe.run.executors import INTERRUPTED, StageJob, executor
from nb2pipe.run.runner import stage_error
from nb2pipe.run.starting import result_of, signals_interrupt
from nb2pipe.settings import effective

COMMAND = "python -m nb2pipe.run.single"
ENGINE_NAME = re.compile(r"[A-Za-z0-9_-]+")


def run_stage(
    pipeline_dir: Path, stage_name: str, overrides: dict[str, Any] | None = None, engine: str = "export", retries: bool = True
) -> Path:
    """Run one stage; the executed notebook (a command stage: its log). Raises StageFailed, and
    KeyboardInterrupt on SIGINT or SIGTERM once the stage is stopped. `retries` False: one try,
    whatever the stage's `retries:` says."""
    from nb2pipe.run.kernels import choose_kernel, stage_environments, stage_notebook
    from nb2pipe.spec import effective_params, load_pipeline

    if not ENGINE_NAME.fullmatch(engine):
        raise SpecError(
            f"--engine {engine!r} must be a plain name such as dvc (letters, digits, '_' or '-'): "
            "it names the folder .nb2pipe/<engine>-runs/"
        )
    pipeline = load_pipeline(Path(pipeline_dir))
    stage = pipeline.stage(stage_name)
    params = state.param_values(pipeline, stage, effective_params(pipeline, overrides or {}))
    output = Path(pipeline.root) / m.STATE_DIR / f"{engine}-runs" / f"{stage.name}.ipynb"
    output.parent.mkdir(parents=True, exist_ok=True)
    settings = effective(pipeline, stage)
    job = StageJob(
        name=stage.name, notebook=None if stage.cmd else stage_notebook(pipeline, stage), parameters=params,
        output=output, on_cell=lambda index, count: None, cmd=stage.cmd, settings=settings,
        kernel_env=stage_environments(pipeline, [stage.name])[stage.name],
    )  # fmt: skip
    held = redaction.hold(job.kernel_env[name] for name in job.settings.secrets)  # out of the error message too
    # a command stage needs no kernel: none is chosen, and none boots (stages=0)
    kernel = "" if stage.cmd else choose_kernel(pipeline, settings.kernel, lambda message: print(message, file=sys.stderr))
    tries = 1 + ((settings.retries or 0) if retries else 0)
    with signals_interrupt():
        # started for it by the executor (run/pool.py KernelPools)
        own_kernel = bool(job.kernel_env) or settings.kernel not in (None, kernel)
        runs_on = executor("local", kernel, lockfile.wdir(pipeline), 1, stages=0 if stage.cmd or own_kernel else 1)
        try:
            for attempt in range(1, tries + 1):
                outcome = result_of(runs_on.submit(job))
                if outcome.ok or attempt == tries or (outcome.error or {}).get("evalue") == INTERRUPTED:
                    break
                print(f"stage '{stage.name}' failed (try {attempt} of {tries}); trying again in a fresh kernel", file=sys.stderr)
        except KeyboardInterrupt:
            runs_on.interrupt()
            raise
        finally:
            runs_on.close()
    opened = output.with_suffix(".log") if stage.cmd else output
    try:
        if not outcome.ok:
            raise StageFailed(stage_error(pipeline, stage, outcome.error or {}, os.path.relpath(opened)).message)
    finally:
        redaction.release(held)
    return opened


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description="Run one stage of an nb2pipe pipeline (the DVC, Airflow and Kubeflow exports call this).",
    )
    parser.add_argument("pipeline", type=Path, help="the pipeline folder (holding nb2pipe.yaml)")
    parser.add_argument("stage", help="the stage to run")
    parser.add_argument("--params-json", default="{}", metavar="JSON", help="parameter values overriding params.yaml, as a JSON object")
    parser.add_argument("--engine", default="export", help="names the folder of executed notebooks: .nb2pipe/<engine>-runs/")
    parser.add_argument("--no-retries", action="store_true", help="try the stage once: the engine retries it itself (its retries: setting)")
    args = parser.parse_args(argv)
    return reported(
        f"stage '{args.stage}'",
        lambda: run_stage(
            args.pipeline, args.stage, overrides_from_json(args.params_json), engine=args.engine, retries=not args.no_retries
        ),
    )


def reported(what: str, run: Callable[[], Path]) -> int:
    """The exit status of an engine's stage command running `run` (which returns the executed
    notebook): an error is one line, an interrupt says `what` was interrupted (130)."""
    try:
        output = run()
    except Nb2PipeError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{what} interrupted", file=sys.stderr)
        return 130
    print(f"{what} done; output in {os.path.relpath(output)}")
    return 0


def overrides_from_json(text: str) -> dict[str, Any]:
    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"--params-json is not valid JSON ({e}); pass an object, e.g. '{{\"alpha\": 0.5}}'") from None
    if not isinstance(overrides, dict):
        raise SpecError("--params-json must be a JSON object of parameter names to values, e.g. '{\"alpha\": 0.5}'")
    return overrides


if __name__ == "__main__":
    sys.exit(main())
