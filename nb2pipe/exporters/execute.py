"""Run one stage of a pipeline for another engine: `python -m nb2pipe.exporters.execute PIPELINE STAGE`.

DVC, Airflow and Kubeflow all run a stage through this module. It does what `nb2pipe run` does
for a single stage and nothing else: no staleness check, no lock file, no output cache, no
restore on failure (the engine owns all of that).

1. Parameters: the values in the pipeline's params.yaml, overridden by `--params-json '{...}'`
   (Airflow's DAG params, Kubeflow's pipeline inputs); an unknown name is an error. Only the
   parameters the stage reads are injected.
2. A script stage runs through papermill in a fresh kernel with cwd = the pipeline's `wdir`;
   the executed notebook goes to `<pipeline>/.nb2pipe/<engine>-runs/<stage>.ipynb` (never an
   output of the stage). A `cmd:` stage runs its argv in `wdir`.
3. Exit status 0 on success, 1 when the stage fails (one line names the cell, the exception and
   the executed notebook), 2 for a usage or pipeline error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from nb2pipe import model as m
from nb2pipe.errors import Nb2PipeError, SpecError, StageFailed


def stage_params(pipeline: m.Pipeline, stage: m.Stage, overrides: dict[str, Any]) -> dict[str, Any]:
    """The values of the parameters `stage` reads: params.yaml overridden by `overrides`."""
    from nb2pipe.spec import effective_params, stage_param_values

    return stage_param_values(pipeline, stage, effective_params(pipeline, overrides))


def run_stage(pipeline_dir: Path, stage_name: str, overrides: dict[str, Any] | None = None, engine: str = "export") -> Path | None:
    """Run one stage; the executed notebook's path (None for a `cmd:` stage). Raises StageFailed."""
    from nb2pipe.spec import load_pipeline

    pipeline = load_pipeline(Path(pipeline_dir))
    stage = pipeline.stage(stage_name)
    wdir = Path(os.path.normpath(Path(pipeline.root) / pipeline.wdir))
    if stage.cmd:
        result = subprocess.run(list(stage.cmd), cwd=wdir)
        if result.returncode:
            raise StageFailed(f"stage '{stage.name}' failed: {' '.join(stage.cmd)} exited with status {result.returncode}")
        return None

    from nb2pipe.run.kernels import choose_kernel, stage_notebook
    from nb2pipe.run.local import LocalExecutor, StageJob

    params = stage_params(pipeline, stage, overrides or {})
    notebook = stage_notebook(pipeline, stage)
    kernel = choose_kernel(pipeline, None, lambda message: print(message, file=sys.stderr))
    output = Path(pipeline.root) / m.STATE_DIR / f"{engine}-runs" / f"{stage.name}.ipynb"
    output.parent.mkdir(parents=True, exist_ok=True)
    # the local executor's kernel: one that answered before the stage starts, and a dead kernel
    # reported with its cell; its start-up chatter goes nowhere (cell output comes over ZMQ)
    executor = LocalExecutor(kernel, wdir, jobs=1, pool_size=1, budget=1)
    try:
        job = StageJob(name=stage.name, notebook=notebook, parameters=params, output=output, on_cell=lambda index, count: None)
        outcome = executor.submit(job).result()
    finally:
        executor.close()
    if not outcome.ok:
        error = outcome.error or {}
        where = f" in {error['title']}" if error.get("title") else ""
        cell = f" (cell {error['cell_index'] + 1} of the executed notebook '{output}')" if error.get("cell_index") is not None else ""
        raise StageFailed(f"stage '{stage.name}' failed{where}: {error.get('ename', 'Error')}: {error.get('evalue', '')}{cell}")
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nb2pipe.exporters.execute",
        description="Run one stage of an nb2pipe pipeline (used by the DVC, Airflow and Kubeflow exports).",
    )
    parser.add_argument("pipeline", type=Path, help="the pipeline folder (holding nb2pipe.yaml)")
    parser.add_argument("stage", help="the stage to run")
    parser.add_argument("--params-json", default="{}", metavar="JSON", help="parameter values overriding params.yaml, as a JSON object")
    parser.add_argument("--engine", default="export", help="names the folder of executed notebooks: .nb2pipe/<engine>-runs/")
    args = parser.parse_args(argv)
    try:
        try:
            overrides = json.loads(args.params_json)
        except json.JSONDecodeError as e:
            raise SpecError(f"--params-json is not valid JSON: {e}") from None
        if not isinstance(overrides, dict):
            raise SpecError("--params-json must be a JSON object of parameter names to values")
        output = run_stage(args.pipeline, args.stage, overrides, engine=args.engine)
    except Nb2PipeError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    where = f"; executed notebook: {output}" if output else ""
    print(f"stage '{args.stage}' done{where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
