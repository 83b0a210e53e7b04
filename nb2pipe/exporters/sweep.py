"""Export a sweep to another engine: the pipeline's export (`nb2pipe export --to`) plus the trial set.

`nb2pipe sweep PIPELINE -p ... --export dvc|airflow|kubeflow` plans the trials as the sweep does
(nb2pipe.sweep), runs nothing, and calls `export_sweep` with the plan as data (a `TrialSet`).
Each engine's module renders its files from the pipeline and the trials:

- airflow: `dags/<name>_sweep.py`. Shared stages (they read no swept parameter) are plain tasks,
  run once in the notebook's folder; every other stage is a mapped task (`.expand`), one instance
  per trial, each trial in its own folder.
- kubeflow: `kubeflow/<name>-sweep.yaml`. Shared stages run once, outside a `dsl.ParallelFor`
  over the trials; every other stage runs inside it, once per trial, in the trial's own folder.
- dvc: `pipelines/<name>/dvc.yaml` (as `export --to dvc` writes it) and `dvc/<name>-sweep.sh`:
  `dvc repro` of the shared stages (once, into DVC's run-cache), `dvc exp run --queue -S ...` per
  trial, `dvc queue start -j N`. Each experiment restores the shared stages from the run-cache and
  reruns every other stage, in DVC's own temporary workspace.

Trial values are data everywhere: JSON inside Python string literals, `shlex.quote`d shell words
holding Hydra-quoted values (what `dvc exp run -S` parses), kfp's own serialization.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nb2pipe.errors import SpecError, close_match

SWEEP_EXPORTERS = {
    "airflow": "nb2pipe.exporters.sweep_airflow",
    "kubeflow": "nb2pipe.exporters.sweep_kubeflow",
    "dvc": "nb2pipe.exporters.sweep_dvc",
}

# What each engine shares and what it reruns: the generated files' headers and `--help` say it.
SHARES = {
    "airflow": "stages that read no swept parameter run once, as plain tasks in the notebook's folder; every other "
    "stage is a mapped task (.expand) with one instance per trial, run in the trial's own folder "
    ".nb2pipe/airflow-trials/<sweep>/trial-<N>/ (the shared stages' outputs linked in)",
    "kubeflow": "stages that read no swept parameter run once, outside the dsl.ParallelFor; every other stage runs "
    "inside it, once per trial, in the trial's own folder .nb2pipe/kubeflow-trials/<sweep>/trial-<N>/",
    "dvc": "`dvc repro` runs the stages that read no swept parameter once, before queueing; each queued experiment "
    "then restores them from DVC's run-cache and reruns every other stage, in DVC's own temporary workspace",
}


@dataclass(frozen=True)
class TrialSet:
    """A sweep's plan, as the exporters need it: plain data (nb2pipe.sweep lies above the exporters)."""

    sweep_id: str
    trials: tuple[dict[str, Any], ...]  # each trial's parameter overrides, in the plan's order (trial 1 first)
    shared: tuple[str, ...]  # the stages that read no swept parameter
    jobs: int = 1  # how many trials at once, where the engine takes a number (dvc queue start -j)

    @property
    def common(self) -> dict[str, Any]:
        """The values every trial sets alike (`-p b=5` beside `-p a=1,2`): the shared stages run with them too."""
        first, *rest = self.trials

        def same(name: str, value: Any) -> bool:
            key = json.dumps(value, sort_keys=True, default=str)
            return all(name in t and json.dumps(t[name], sort_keys=True, default=str) == key for t in rest)

        return {name: value for name, value in first.items() if same(name, value)}


def sweep_exporter(target: str) -> Any:
    if target not in SWEEP_EXPORTERS:
        raise SpecError(f"unknown export target '{target}'; {close_match(target, SWEEP_EXPORTERS, 'targets')}")
    return importlib.import_module(SWEEP_EXPORTERS[target])


def render_sweep(target: str, pipeline_dir: Path, trial_set: TrialSet, out_dir: Path | None = None,
                 **options: Any) -> dict[Path, str]:
    """The `target` files of the sweep, keyed by absolute path. The engine's own files go under
    `out_dir` (default: the notebook's folder, as `nb2pipe export --to` writes them); a dvc.yaml
    always goes into the pipeline folder, where DVC looks for it."""
    from nb2pipe.exporters import render, wdir_path
    from nb2pipe.spec import load_params, load_pipeline, resolved_pipeline

    module = sweep_exporter(target)
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(getattr(module, "OPTIONS", ())))
    if unknown:
        raise SpecError(f"option '{unknown[0]}' does not apply to --export {target} (only to --export kubeflow)")
    if not trial_set.trials:
        raise SpecError("the sweep has no trials to export; give -p name=v1,v2")
    pipeline = load_pipeline(Path(pipeline_dir))
    base = Path(out_dir).resolve() if out_dir is not None else wdir_path(pipeline)
    params = load_params(pipeline)
    files: dict[Path, str] = {}
    if module.EXPORTS_PIPELINE_TOO:  # the pipeline's own export, as `nb2pipe export --to` writes it
        wdir, rendered = render(target, pipeline_dir, **options)
        files.update({wdir / rel: text for rel, text in rendered.items()})
    if not getattr(module, "KEEPS_TEMPLATES", False):
        pipeline = resolved_pipeline(pipeline, params)
    files.update({base / rel: text for rel, text in module.render_sweep(pipeline, params, trial_set, base, **given).items()})
    return files


def export_sweep(target: str, pipeline_dir: Path, trial_set: TrialSet, *, out_dir: Path | None = None, force: bool = False,
                 **options: Any) -> list[Path]:
    """Write the sweep's `target` files; the paths written. A file there that nb2pipe did not
    write is refused unless `force`, as for `export_to`."""
    from nb2pipe.exporters import write_files

    return write_files(render_sweep(target, pipeline_dir, trial_set, out_dir, **options), force=force)


def trials_json(trial_set: TrialSet) -> str:
    """The trials as one JSON text (trial 1 first): how their values reach a generated file, as data."""
    for number, trial in enumerate(trial_set.trials, 1):
        for name, value in trial.items():
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError):
                raise SpecError(
                    f"trial {number}: the value {value!r} of '{name}' cannot go into an engine's file; "
                    "use a number, string, bool, null, list or mapping"
                ) from None
    return json.dumps(list(trial_set.trials), sort_keys=True, ensure_ascii=False)
