"""`nb2pipe sweep ... --export airflow`: an Airflow 3 DAG running every trial of a sweep, `dags/<name>_sweep.py`.

The DAG of `nb2pipe export --to airflow` (exporters/airflow.py), with the trial set: a stage that
reads no swept parameter (nor follows one that does) is a plain task, run once in the notebook's
folder by `python -m nb2pipe.run.single`; every other stage is a mapped task
(`PythonOperator.partial(...).expand(op_kwargs=[one per trial])`), each instance, labelled
`trial N` in Airflow's UI, running its trial's stage through `python -m nb2pipe.api.trial_stage`
in the trial's own folder, so the trials never write each other's files. Edges are the
pipeline's: a mapped stage waits for its shared upstream tasks and for every instance of its
mapped upstream tasks.

Trial values reach the file only inside one JSON string literal (`repr(json.dumps(...))`), read
with `json.loads` when Airflow parses the DAG.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nb2pipe import graph
from nb2pipe.exporters import STAGE_MODULE, docstring, pipeline_name
from nb2pipe.exporters.airflow import DAGS_DIR, dag_id
from nb2pipe.exporters.sweep import SHARES, TrialSet, trials_json
from nb2pipe.model import Pipeline
from nb2pipe.spec import stage_param_values

EXPORTS_PIPELINE_TOO = False
TRIAL_MODULE = "nb2pipe.api.trial_stage"

_DOC = """Airflow DAG of a sweep of the nb2pipe pipeline '{name}', written by `nb2pipe export --to airflow`
(`nb2pipe sweep --export airflow`): sweep {sweep_id}, {count} trials.

What runs once and what per trial: {shares}.
Shared stages: {shared}. Mapped over the trials: {mapped}.
The trials' parameter values are TRIALS below; the DAG's params (params.yaml's values, overridden
per run with --conf) fill in the rest. Re-export instead of editing this file.
"""

_TEMPLATE = '''\
{doc}

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Param

PIPELINE = Path(__file__).resolve().parent / {pipeline_from_dag}
PARAMS_FILE = PIPELINE / {params_file}
SWEEP = {sweep_id}
SHARED = json.loads({shared})
COMMON = json.loads({common})  # the values every trial sets alike: the shared stages run with them too
TRIALS = json.loads({trials})  # each trial's parameter values, trial 1 first
JSON_TYPES = {{bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}}


def param(value: object) -> Param:
    """A DAG param whose default is the value in the params file, typed like it."""
    kind = JSON_TYPES.get(type(value))
    return Param(value, type=kind) if kind else Param(value)


def run_stage(stage: str, params: dict) -> None:
    """A shared stage: once, in the notebook's folder, with this run's parameter values and COMMON's."""
    command = [
        sys.executable, "-m", {stage_module}, str(PIPELINE), stage,
        "--engine", "airflow", "--params-json", json.dumps({{**dict(params), **COMMON}}, sort_keys=True),
    ]
    subprocess.run(command, check=True)


def run_trial_stage(stage: str, trial: int, params: dict) -> None:
    """A stage of trial number `trial`, in the trial's own folder: this run's values, the trial's on top."""
    values = {{**dict(params), **TRIALS[trial - 1]}}
    command = [
        sys.executable, "-m", {trial_module}, str(PIPELINE), stage, "--sweep", SWEEP, "--trial", str(trial),
        "--engine", "airflow", "--params-json", json.dumps(values, sort_keys=True),
    ]
    for name in SHARED:
        command += ["--shared", name]
    subprocess.run(command, check=True)


TRIAL_LABEL = "trial {{{{ task.op_kwargs['trial'] }}}}"  # what Airflow's UI shows for each mapped instance


def each_trial(stage: str) -> list[dict]:
    return [{{"stage": stage, "trial": number}} for number in range(1, len(TRIALS) + 1)]


with DAG(
    dag_id={dag_id},
    schedule=None,
    catchup=False,
    tags=["nb2pipe", "nb2pipe-sweep"],
    doc_md=__doc__,
    params={{name: param(value) for name, value in (yaml.safe_load(PARAMS_FILE.read_text()) or {{}}).items()}},
):
    tasks = {{{tasks}
    }}
{edges}'''


def render_sweep(pipeline: Pipeline, params: dict[str, Any], trial_set: TrialSet, base: Path) -> dict[str, str]:
    name = pipeline_name(pipeline)
    identifier = dag_id(f"{name}_sweep")
    dags = base / DAGS_DIR
    pipeline_from_dag = os.path.relpath(Path(pipeline.root).resolve(), dags.resolve()).replace(os.sep, "/")
    edges = graph.upstream(pipeline)
    ordered = graph.order(pipeline, edges)
    for each in pipeline.stages:
        stage_param_values(pipeline, each, params)  # each has a value
    shared = [s for s in ordered if s in trial_set.shared]
    mapped = [s for s in ordered if s not in trial_set.shared]
    tasks = []
    for stage in ordered:
        if stage in trial_set.shared:
            operator = f"PythonOperator(task_id={stage!r}, python_callable=run_stage, op_kwargs={{'stage': {stage!r}}})"
        else:
            operator = (
                f"PythonOperator.partial(task_id={stage!r}, python_callable=run_trial_stage, map_index_template=TRIAL_LABEL)"
                f".expand(op_kwargs=each_trial({stage!r}))"
            )
        tasks.append(f"\n        {stage!r}: {operator},")
    edge_lines = [f"    tasks[{up!r}] >> tasks[{stage!r}]\n" for stage in ordered for up in edges[stage]]
    doc = _DOC.format(
        sweep_id=trial_set.sweep_id, count=len(trial_set.trials), name=name, shares=SHARES["airflow"],
        shared=", ".join(shared) or "none", mapped=", ".join(mapped) or "none",
    )  # fmt: skip
    text = _TEMPLATE.format(
        doc=docstring(doc),
        pipeline_from_dag=repr(pipeline_from_dag),
        params_file=repr(pipeline.params_file),
        sweep_id=repr(trial_set.sweep_id),
        shared=repr(json.dumps(shared)),
        common=repr(json.dumps(trial_set.common, sort_keys=True, ensure_ascii=False)),
        trials=repr(trials_json(trial_set)),
        stage_module=json.dumps(STAGE_MODULE),
        trial_module=json.dumps(TRIAL_MODULE),
        dag_id=repr(identifier),
        tasks="".join(tasks),
        edges="".join(edge_lines),
    )
    return {f"{DAGS_DIR}/{identifier}.py": text}
