"""`nb2pipe sweep ... --export airflow|kubeflow|dvc`: plan the sweep's trials and write an engine's files.

Light to import, as sweep_cli.py: the trials are planned as `nb2pipe sweep` plans them
(nb2pipe.sweep); no stage runs and no notebook code is executed (a notebook is exported first,
as `nb2pipe export --to` does); nb2pipe.exporters.sweep renders the files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXPORT_HELP = (
    "write the sweep for another engine instead of running it: airflow (a DAG mapping each swept stage over the "
    "trials), kubeflow (a dsl.ParallelFor over the trials), dvc (dvc.yaml and a script of `dvc exp run --queue` "
    "commands); stages that read no swept parameter run once"
)


def add_export_options(sweep: argparse.ArgumentParser) -> None:
    sweep.add_argument("--export", metavar="ENGINE", help=EXPORT_HELP)
    sweep.add_argument("-o", "--output", type=Path, metavar="OUT", help="--export: the folder to write into (default: the notebook's)")
    sweep.add_argument("--force", action="store_true", help="--export: overwrite files that nb2pipe did not write")
    sweep.add_argument("--image", help="--export kubeflow: the default container image (default python:3.11-slim)")
    sweep.add_argument("--package", action="append", metavar="REQ", help="--export kubeflow: a pip requirement to install in each step")
    sweep.add_argument("--pvc", metavar="CLAIM", help="--export kubeflow: a PersistentVolumeClaim holding the notebook's folder")


def cmd_sweep_export(args: argparse.Namespace, trials: list[dict[str, Any]] | None) -> int:
    """Write the sweep's files for `args.export`; print each path written."""
    from nb2pipe.api.tracked import display_path
    from nb2pipe.errors import SpecError
    from nb2pipe.exporters.sweep import TrialSet, export_sweep, sweep_exporter
    from nb2pipe.spec import load_pipeline
    from nb2pipe.sweep import plan_sweep

    sweep_exporter(args.export)  # an unknown engine, before anything is read
    if trials is None:
        raise SpecError("--export needs the sweep's values; give -p name=v1,v2 (or --params-file) instead of --resume")
    if args.dry_run:
        raise SpecError("--export runs nothing already; drop --dry-run")
    folder = _pipeline_folder(args.target)
    plan = plan_sweep(load_pipeline(folder), trials)
    if not plan.swept:
        raise SpecError(
            "the sweep varies no parameter (every trial has the same values), so there is nothing to map over; "
            "give a parameter two values or more, e.g. -p name=v1,v2"
        )
    trial_set = TrialSet(plan.sweep_id, tuple(plan.trials), tuple(plan.shared), args.jobs)
    kubeflow = {"image": args.image, "packages": args.package, "pvc": args.pvc}
    for path in export_sweep(args.export, folder, trial_set, out_dir=args.output, force=args.force, **kubeflow):
        print(f"wrote {display_path(path)}")
    shared = ", ".join(plan.shared) or "none"
    print(f"sweep {plan.sweep_id}: {len(plan.trials)} trials for {args.export}; shared stages (run once): {shared}", file=sys.stderr)
    return 0


def _pipeline_folder(target: Path) -> Path:
    """The pipeline folder of `target`; a notebook is exported first (text only, nothing runs)."""
    from nb2pipe.errors import SpecError

    if target.suffix != ".ipynb":
        if not target.is_dir():
            raise SpecError(f"'{target}' is not a pipeline folder or a notebook; give pipelines/<name> or the .ipynb")
        return target
    from nb2pipe.export import export_notebook

    result = export_notebook(target)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return Path(result.folder)
