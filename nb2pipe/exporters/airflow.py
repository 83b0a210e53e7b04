"""`nb2pipe export --to airflow`: an Airflow 3 DAG file, `dags/<name>.py` in the notebook's folder.

One PythonOperator per stage, with the pipeline's edges (graph.upstream). The pipeline's
parameters are the DAG's params, with params.yaml's values as defaults; a run overrides them
with `--conf '{"alpha": 0.5}'` (Airflow merges a run's conf into its params). Each task runs its
stage in a subprocess, `python -m nb2pipe.run.single`, with the Python that runs the
task, so nb2pipe and the notebook's libraries must be installed where the tasks run.

The DAG finds the pipeline folder relative to its own (symlink-resolved) path, so keep the
file in the repository and point Airflow's dags folder (or a DAG bundle) at `dags/`, or
symlink the file. Stages hand files to each other through the filesystem: run the tasks on one
machine (LocalExecutor) or on workers that share the notebook's folder.

Per-stage settings (issue 17; stage_settings.py): `timeout:` is the task's `execution_timeout`
(the task stops the stage's command, which stops its kernel); `retries:` the task's `retries`
(no delay, as `nb2pipe run` retries; the command then tries once: `--no-retries`); `env:NAME=VALUE`
is set in the command's environment, `env:NAME` passes through from the worker's; `secret:NAME` is
read from the Airflow Variable NAME when the task runs (Airflow's secrets backends or
`AIRFLOW_VAR_NAME`), never written into the DAG; without that Variable, the worker's environment or
`.env` gives it as for `nb2pipe run`. `allow-failure`: when the stage's last try fails, the task
ends as skipped, so its dependants are skipped (the default trigger rule) and the DAG run succeeds,
the failure in the task's log. `kernel:`, `cell-timeout:` and `memory:` are applied by the stage
command itself; Airflow's local executors have no memory limit of their own, which the export's
warning names.

Names reach the DAG file only as Python string literals (json.dumps, `docstring`); the DAG id is
the pipeline's name with any character Airflow does not accept in an id replaced by `_`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from typing import Any

from nb2pipe import graph
from nb2pipe.exporters import STAGE_MODULE, docstring, pipeline_from_wdir, pipeline_name
from nb2pipe.exporters.stage_settings import cannot_express, set_env, stage_settings, whole_seconds
from nb2pipe.model import Pipeline, Settings
from nb2pipe.spec import stage_param_values

OPTIONS: tuple[str, ...] = ()
DAGS_DIR = "dags"

_DOC = """Airflow DAG of the nb2pipe pipeline '{name}', written by `nb2pipe export --to airflow`.

One task per stage; each runs `python -m {stage_module} {pipeline_rel} <stage>` in the
notebook's folder. The DAG's params are the pipeline's parameters, read from its params file
when the DAG is parsed; override them per run, e.g. `airflow dags test {dag_id} --conf '{conf_example}'`.
Re-export after changing the notebook instead of editing this file.
"""

_TEMPLATE = '''\
{doc}

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import yaml
from airflow.sdk.exceptions import AirflowSkipException
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Param, Variable

PIPELINE = Path(__file__).resolve().parent / {pipeline_from_dag}
PARAMS_FILE = PIPELINE / {params_file}
JSON_TYPES = {{bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}}


def param(value: object) -> Param:
    """A DAG param whose default is the value in the params file, typed like it."""
    kind = JSON_TYPES.get(type(value))
    return Param(value, type=kind) if kind else Param(value)


def run_stage(stage: str, params: dict, ti, env: dict | None = None, secrets: tuple = (), allow_failure: bool = False) -> None:
    """Run one stage with this run's parameter values (the DAG's params merged with the run's conf),
    its `env:` values and its secrets (from Airflow Variables, when set there). Airflow retries it."""
    command = [
        sys.executable, "-m", {stage_module}, str(PIPELINE), stage,
        "--engine", "airflow", "--params-json", json.dumps(dict(params), sort_keys=True), "--no-retries",
    ]
    environment = {{**os.environ, **(env or {{}})}}
    for name in secrets:
        value = Variable.get(name, default=None)
        if value is not None:
            environment[name] = value
    process = subprocess.Popen(command, env=environment)
    try:
        status = process.wait()
    except BaseException:  # the task's execution_timeout, or the task stopped: SIGTERM stops the stage's kernel
        process.terminate()
        process.wait()
        raise
    if status and allow_failure and ti.try_number > ti.max_tries:
        raise AirflowSkipException(f"stage {{stage!r}} failed and allows failure: its dependants are skipped")
    if status:
        raise subprocess.CalledProcessError(status, command)


with DAG(
    dag_id={dag_id},
    schedule=None,
    catchup=False,
    tags=["nb2pipe"],
    doc_md=__doc__,
    params={{name: param(value) for name, value in (yaml.safe_load(PARAMS_FILE.read_text()) or {{}}).items()}},
):
    tasks = {{{tasks}
    }}
{edges}'''


def _q(text: str) -> str:
    """A Python string literal holding `text` exactly (repr escapes what Python source cannot hold)."""
    return repr(text)


_NOT_IN_DAG_ID = re.compile(r"[^A-Za-z0-9_.-]")


def dag_id(name: str) -> str:
    """The pipeline's name as an Airflow DAG id (letters, digits, '_', '.', '-'; at most 250)."""
    return _NOT_IN_DAG_ID.sub("_", name)[:250] or "nb2pipe"


def _operator(stage: str, settings: Settings) -> str:
    """The task of one stage: its command's arguments and the settings Airflow has a word for."""
    kwargs: dict[str, Any] = {"stage": stage}
    if set_env(settings):
        kwargs["env"] = set_env(settings)
    if settings.secrets:
        kwargs["secrets"] = tuple(settings.secrets)
    if settings.allow_failure:
        kwargs["allow_failure"] = True
    task = [f"task_id={_q(stage)}", "python_callable=run_stage", f"op_kwargs={kwargs!r}"]
    if settings.timeout is not None:
        task.append(f"execution_timeout=timedelta(seconds={whole_seconds(settings.timeout)})")
    if settings.retries:
        task += [f"retries={settings.retries}", "retry_delay=timedelta(0)"]
    return f"PythonOperator({', '.join(task)})"


def unexpressed(pipeline: Pipeline) -> str | None:
    """The warning line: Airflow's local executors limit no task's memory."""
    settings = stage_settings(pipeline)
    memory = [name for name, s in settings.items() if s.memory is not None]
    return cannot_express(
        "airflow", {"memory": memory}, "Airflow's local executors limit no task's memory; nb2pipe stops the stage's kernel above it"
    )


def render(pipeline: Pipeline, params: dict[str, Any]) -> dict[str, str]:
    name = pipeline_name(pipeline)
    prefix = pipeline_from_wdir(pipeline)
    identifier = dag_id(name)
    path = f"{DAGS_DIR}/{identifier}.py"
    pipeline_from_dag = os.path.normpath(os.path.join("..", prefix)).replace(os.sep, "/")
    edges = graph.upstream(pipeline)
    ordered = graph.order(pipeline, edges)
    for stage in pipeline.stages:
        stage_param_values(pipeline, stage, params)  # each has a value
    settings = stage_settings(pipeline)
    task_lines = [f"\n        {_q(stage)}: {_operator(stage, settings[stage])}," for stage in ordered]
    edge_lines = [
        f"    tasks[{_q(up)}] >> tasks[{_q(stage)}]\n" for stage in ordered for up in edges[stage]
    ]
    example = next(iter(params), None)
    conf_example = json.dumps({str(example): "<value>"}).replace('"<value>"', "<value>") if example is not None else "{}"
    doc = _DOC.format(name=name, stage_module=STAGE_MODULE, pipeline_rel=shlex.quote(prefix), dag_id=identifier, conf_example=conf_example)
    text = _TEMPLATE.format(
        doc=docstring(doc.rstrip("\n") + "\n"),
        pipeline_from_dag=_q(pipeline_from_dag),
        stage_module=json.dumps(STAGE_MODULE),
        dag_id=_q(identifier),
        params_file=_q(pipeline.params_file),
        tasks="".join(task_lines),
        edges="".join(edge_lines),
    )
    return {path: text}
