"""`nb2pipe sweep ... --export kubeflow`: a compiled Kubeflow Pipelines spec running every trial of a
sweep, `kubeflow/<name>-sweep.yaml`.

The spec of `nb2pipe export --to kubeflow` (exporters/kubeflow.py: the same components, inputs,
images, Kale settings and volume), with the trial set: the stages that read no swept parameter
run once, outside the loop; every other stage runs inside one `dsl.ParallelFor` over the trials
(items: JSON texts `{"trial": N, "values": {name: value}}`, at most `--jobs` at once; text, since
kfp carries a mapping as a protobuf Struct, whose numbers are all floats), through
`python -m nb2pipe.api.trial_stage` in the trial's own folder, with the pipeline's inputs and the
trial's values on top. Export runs no generated code, as for `--to kubeflow`; the trial values
reach the spec only through kfp's serialization of the loop's items.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nb2pipe.exporters.kubeflow import (
    DEFAULT_IMAGE,
    DEFAULT_MOUNT_PATH,
    OUT_DIR,
    PIPELINE_INPUT,
    _function_name,
    _Plan,
    _type,
    add_task,
    compile_spec,
    component_source,
    header,
    plan_pipeline,
    signed_pipeline,
)
from nb2pipe.exporters.sweep import TrialSet, trials_json
from nb2pipe.model import Pipeline, Stage

EXPORTS_PIPELINE_TOO = False
OPTIONS = ("image", "packages", "pvc", "mount_path")
TRIAL_INPUT = "nb2pipe_trial"
TRIAL_MODULE = "nb2pipe.api.trial_stage"

# The body of a stage in the loop: as kubeflow.py's, with the trial's values over the inputs.
_TRIAL_BODY = """\
    _nb2pipe_inputs = dict(locals())
    import json as _nb2pipe_json, subprocess as _nb2pipe_subprocess, sys as _nb2pipe_sys

    _nb2pipe_pipeline = _nb2pipe_inputs.pop({pipeline_input})
    _nb2pipe_trial = _nb2pipe_json.loads(_nb2pipe_inputs.pop({trial_input}))
    _nb2pipe_values = {{**_nb2pipe_inputs, **_nb2pipe_trial["values"]}}
    _nb2pipe_command = [
        _nb2pipe_sys.executable, "-m", {trial_module}, _nb2pipe_pipeline, {stage}, "--sweep", {sweep},
        "--trial", str(_nb2pipe_trial["trial"]), "--engine", "kubeflow", "--params-json", _nb2pipe_json.dumps(_nb2pipe_values),
    ]
    for _nb2pipe_shared in _nb2pipe_json.loads({shared}):
        _nb2pipe_command += ["--shared", _nb2pipe_shared]
    _nb2pipe_subprocess.run(_nb2pipe_command, check=True)
"""


def trial_component_source(stage: Stage, params: dict[str, Any], trial_set: TrialSet) -> str:
    """The source of a stage's component inside the loop. Only identifiers, type names and JSON
    string literals are put into it."""
    args = ", ".join([f"{PIPELINE_INPUT}: str", f"{TRIAL_INPUT}: str"] + [f"{p}: {_type(params, p).__name__}" for p in stage.params])
    body = _TRIAL_BODY.format(
        pipeline_input=json.dumps(PIPELINE_INPUT), trial_input=json.dumps(TRIAL_INPUT), trial_module=json.dumps(TRIAL_MODULE),
        stage=json.dumps(stage.name), sweep=json.dumps(trial_set.sweep_id), shared=json.dumps(json.dumps(list(trial_set.shared))),
    )  # fmt: skip
    return f"def {_function_name(stage.name)}({args}):\n    {json.dumps(f'Run stage {stage.name} of one trial of a sweep.')}\n" + body


def render_sweep(pipeline: Pipeline, params: dict[str, Any], trial_set: TrialSet, base: Path, *, image: str | None = None,
                 packages: tuple[str, ...] | list[str] = (), pvc: str | None = None, mount_path: str | None = None) -> dict[str, str]:
    plan = plan_pipeline(pipeline, params, image or DEFAULT_IMAGE, tuple(packages or ()), pvc, mount_path or DEFAULT_MOUNT_PATH)
    if TRIAL_INPUT in params:
        from nb2pipe.errors import SpecError

        raise SpecError(f"parameter '{TRIAL_INPUT}' cannot be a Kubeflow pipeline input; rename it in the notebook")
    trials = json.loads(trials_json(trial_set))
    items = [json.dumps({"trial": number, "values": values}, sort_keys=True) for number, values in enumerate(trials, 1)]
    by_name = {s.name: s for s in pipeline.stages}
    sources = {
        step.stage: component_source(by_name[step.stage], params) if step.stage in trial_set.shared
        else trial_component_source(by_name[step.stage], params, trial_set)
        for step in plan.steps
    }  # fmt: skip
    extra: dict[str, dict[str, type]] = {step.stage: {TRIAL_INPUT: str} for step in plan.steps if step.stage not in trial_set.shared}
    compiled = compile_spec(plan, sources, extra, lambda components: _looping_pipeline(plan, components, items, trial_set))
    written_by = "`nb2pipe export --to kubeflow` for `nb2pipe sweep --export kubeflow`"
    from nb2pipe.exporters.sweep import SHARES

    note = f"# Sweep {trial_set.sweep_id}, {len(items)} trials: {SHARES['kubeflow']}.\n"
    return {f"{OUT_DIR}/{plan.name}-sweep.yaml": header(plan.name, written_by) + note + compiled}


def _looping_pipeline(plan: _Plan, components: dict[str, Any], items: list[str], trial_set: TrialSet) -> Any:
    """The shared stages' tasks, then a ParallelFor over the trials holding every other stage's."""

    def add_tasks(values: dict[str, Any]) -> None:
        from kfp import dsl

        tasks: dict[str, Any] = {}
        shared_values = {**values, **trial_set.common}  # the values every trial sets alike, as constants
        for step in plan.steps:
            if step.stage in trial_set.shared:
                add_task(plan, step, components[step.stage], shared_values, tasks)
        looped = [step for step in plan.steps if step.stage not in trial_set.shared]
        if not looped:
            return
        with dsl.ParallelFor(items=items, parallelism=trial_set.jobs) as trial:
            for step in looped:
                add_task(plan, step, components[step.stage], values, tasks, **{TRIAL_INPUT: trial})

    return signed_pipeline(plan, add_tasks)
