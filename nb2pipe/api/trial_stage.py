"""Run one stage of one sweep trial for another engine: `python -m nb2pipe.api.trial_stage PIPELINE STAGE
--sweep ID --trial N`.

The Airflow and Kubeflow exports of a sweep (`nb2pipe sweep ... --export`) run every stage that
reads a swept parameter through this command, once per trial; the shared stages run once through
`python -m nb2pipe.run.single`, in the workspace, as `nb2pipe export --to` runs every stage.

1. The trial's workspace is `<pipeline>/.nb2pipe/<engine>-trials/<ID>/trial-<N>/`, standing for the
   working folder as a scratch workspace does (api/scratch.py): the pipeline file, params file and
   stage scripts copied, the deps that no stage makes linked, and the outs of the shared stages
   (`--shared NAME`, made once in the workspace) copied (a link would lead an out outside the
   trial's folder, which nb2pipe refuses). Every stage of the trial sets it up before it runs
   (under a lock, adding what is new), so a shared stage that ended meanwhile is brought in too.
2. The stage runs there as run/single.py runs it (a fresh kernel, papermill, params.yaml's values
   overridden by `--params-json`); its outs, metrics and executed notebook
   (`.nb2pipe/<engine>-runs/<stage>.ipynb`) stay in the trial's workspace, so trials never write
   each other's files and the workspace's own outs are only the shared stages'.
3. Exit status as run/single.py's: 0 ok, 1 the stage failed, 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from nb2pipe import model as m
from nb2pipe.api.scratch import Scratch, copy_specs, folder_inside_wdir, link_inputs
from nb2pipe.errors import SpecError

COMMAND = "python -m nb2pipe.api.trial_stage"
TRIALS_DIR = "{engine}-trials"
_PLAIN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def trial_workspace(pipeline_dir: Path, sweep: str, trial: int, engine: str, shared: list[str]) -> Path:
    """The trial's pipeline folder, set up (or brought up to date) as the module describes."""
    from nb2pipe import lockfile
    from nb2pipe.spec import load_pipeline

    for what, value in (("--sweep", sweep), ("--engine", engine)):
        if not _PLAIN.fullmatch(value):
            raise SpecError(f"{what} {value!r} must be a plain name (letters, digits, '_' or '-'): it names a folder")
    if trial < 1:
        raise SpecError(f"--trial {trial} is not a trial number; trials count from 1")
    pipeline = load_pipeline(Path(pipeline_dir))
    for name in shared:
        pipeline.stage(name)  # a known stage, or the error naming the known ones
    root = lockfile.state_dir(pipeline) / TRIALS_DIR.format(engine=engine) / sweep / f"trial-{trial}"
    scratch = Scratch(root, root / folder_inside_wdir(pipeline))
    scratch.folder.mkdir(parents=True, exist_ok=True)
    with open(root / ".setup.lock", "w") as lock:  # parallel stages of one trial set it up one at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (scratch.folder / m.PIPELINE_FILE).exists():
            copy_specs(pipeline, scratch.folder)
        link_inputs(pipeline, scratch)
        _copy_shared_outs(pipeline, shared, root)
    return scratch.folder


def _copy_shared_outs(pipeline: m.Pipeline, shared: list[str], root: Path) -> None:
    """The outs of the shared stages that exist in the workspace, copied into the trial's folder
    `root` where it has none yet."""
    from nb2pipe import lockfile
    from nb2pipe.spec import load_params, resolved_pipeline

    pipeline = resolved_pipeline(pipeline, load_params(pipeline))
    for name in shared:
        for out in pipeline.stage(name).produced:
            real, copy = lockfile.resolve(pipeline, out), Path(os.path.normpath(root / out))
            if os.path.lexists(copy) or not real.exists():
                continue
            copy.parent.mkdir(parents=True, exist_ok=True)
            if real.is_dir():
                shutil.copytree(real, copy, symlinks=True)
            else:
                shutil.copy2(real, copy)


def main(argv: list[str] | None = None) -> int:
    from nb2pipe.run.single import overrides_from_json, reported, run_stage

    parser = argparse.ArgumentParser(prog=COMMAND, description="Run one stage of one trial of a sweep (the sweep exports call this).")
    parser.add_argument("pipeline", type=Path, help="the pipeline folder (holding nb2pipe.yaml)")
    parser.add_argument("stage", help="the stage to run")
    parser.add_argument("--sweep", required=True, help="the sweep's id: names the folder of its trials")
    parser.add_argument("--trial", type=int, required=True, metavar="N", help="the trial's number (from 1)")
    parser.add_argument("--shared", action="append", default=[], metavar="STAGE", help="a shared stage, whose outs are linked in")
    parser.add_argument("--params-json", default="{}", metavar="JSON", help="the trial's parameter values, as a JSON object")
    parser.add_argument("--engine", default="export", help="names the folders .nb2pipe/<engine>-trials/ and <engine>-runs/")
    args = parser.parse_args(argv)

    def run() -> Path:
        overrides: dict[str, Any] = overrides_from_json(args.params_json)
        folder = trial_workspace(args.pipeline, args.sweep, args.trial, args.engine, args.shared)
        return run_stage(folder, args.stage, overrides, engine=args.engine)

    return reported(f"stage '{args.stage}' of trial {args.trial}", run)


if __name__ == "__main__":
    sys.exit(main())
