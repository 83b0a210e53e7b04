"""Mirror nb2pipe runs into MLflow (the optional extra `pip install 'nb2pipe[mlflow]'`).

`nb2pipe run` uses it when MLFLOW_TRACKING_URI is set (a pipeline-config switch is not there yet):
`MlflowBridge` is a run reporter, fed the runner's events, and gives each stage's kernel the
MLflow run to log into through `stage_env`.

- One parent run per nb2pipe run (named by the nb2pipe run id): every parameter value, the
  metrics of every stage (`stage.name`, and `name` when one stage reports it, as in runs.db), tags
  `nb2pipe.run_id`, `nb2pipe.pipeline`, `mlflow.source.git.commit`, and nb2pipe.lock as artifact.
- One nested run per stage that executes, created when the stage starts, so code in the notebook
  that calls `mlflow.log_metric(...)` lands in it (the kernel gets MLFLOW_RUN_ID and an absolute
  MLFLOW_TRACKING_URI). It gets the stage's params, metrics, `nb2pipe.fingerprint`, and the
  executed notebook and metrics files as artifacts. Stages that are up to date or restored from
  the cache did not execute and get no nested run; their metrics are still on the parent.
- Statuses: FINISHED, FAILED (a stage failed), KILLED (Ctrl-C/SIGTERM). A run killed with
  kill -9 stays RUNNING in MLflow, as it stays `interrupted` in `nb2pipe runs`.
- The experiment is MLFLOW_EXPERIMENT_ID or MLFLOW_EXPERIMENT_NAME when set, else one named
  after the pipeline folder. Only MlflowClient is used (the fluent API is process-global).
- Setting up (importing MLflow, reaching the store, the experiment) fails before anything runs,
  as a one-line nb2pipe error. A tracking error during the run is a one-line warning and stops
  the mirroring; the pipeline run goes on.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from nb2pipe import lockfile
from nb2pipe import model as m
from nb2pipe.errors import Nb2PipeError
from nb2pipe.vocabulary import Outcome, RunStatus

INSTALL = "pip install 'nb2pipe[mlflow]'"
STATUS = {RunStatus.OK: "FINISHED", RunStatus.FAILED: "FAILED", RunStatus.INTERRUPTED: "KILLED"}
MAX_TAG = 5000  # MLflow tag values are limited; errors are cut to this


def enabled(environ: dict[str, str] | None = None) -> bool:
    """Whether runs are mirrored: MLFLOW_TRACKING_URI is set and not empty."""
    return bool((os.environ if environ is None else environ).get("MLFLOW_TRACKING_URI", "").strip())


def absolute_uri(uri: str, cwd: str | None = None) -> str:
    """The tracking URI with a relative local path made absolute: stage kernels run in the
    pipeline's wdir, not where `nb2pipe run` was started."""
    cwd = cwd or os.getcwd()
    match = re.fullmatch(r"(sqlite:///)([^/].*)", uri)
    if match:
        return match.group(1) + os.path.join(cwd, match.group(2))
    if "://" not in uri and not uri.startswith(("file:", "databricks")) and not os.path.isabs(uri):
        return os.path.join(cwd, uri)
    return uri


def _import_mlflow() -> Any:
    try:
        import mlflow  # noqa: F401
        from mlflow import MlflowClient
    except ImportError:
        raise Nb2PipeError(
            f"MLFLOW_TRACKING_URI is set but MLflow is not installed; install it with: {INSTALL} (or unset MLFLOW_TRACKING_URI)"
        ) from None
    return MlflowClient


def _ms(seconds: float | None) -> int:
    return int((seconds if seconds is not None else time.time()) * 1000)


class MlflowBridge:
    """A run reporter (call it with each event) that mirrors the run into MLflow, and the
    `stage_env` hook that points a stage's kernel at its nested MLflow run."""

    def __init__(self, pipeline: m.Pipeline, tracking_uri: str | None = None, command: list[str] | None = None):
        client_class = _import_mlflow()
        self.pipeline = pipeline
        self.uri = absolute_uri(tracking_uri or os.environ["MLFLOW_TRACKING_URI"])
        self.command = command or []
        try:
            self.client = client_class(tracking_uri=self.uri)
            self.experiment_id = self._experiment()
        except Exception as e:  # the store cannot be reached: say so before anything runs
            raise Nb2PipeError(f"cannot reach MLflow at {self.uri}: {_one_line(e)}") from None
        self.parent: str | None = None
        self.run_id: str | None = None
        self.commit: str | None = None
        self.params: dict[str, Any] = {}
        self.stage_runs: dict[str, str] = {}  # stage -> its open nested MLflow run
        self.metrics: list[dict[str, Any]] = []  # per stage, as track.flat_metrics takes them
        self.failed = False

    # --- setting up ---

    def _experiment(self) -> str:
        if os.environ.get("MLFLOW_EXPERIMENT_ID"):
            return os.environ["MLFLOW_EXPERIMENT_ID"]
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or f"nb2pipe-{Path(self.pipeline.root).resolve().name}"
        found = self.client.get_experiment_by_name(name)
        return found.experiment_id if found else self.client.create_experiment(name)

    # --- the two hooks ---

    def __call__(self, event: dict[str, Any]) -> None:
        handler = getattr(self, "_on_" + event["event"], None)
        if handler is None or self.failed:
            return
        try:
            handler(event)
        except Exception as e:  # tracking must never break the pipeline run
            self.failed = True
            print(f"warning: MLflow logging stopped: {_one_line(e)}", file=sys.stderr)

    def stage_env(self, stage: str) -> dict[str, str]:
        """Environment for the stage's kernel: its nested run, so the notebook's own
        mlflow.log_* calls land there."""
        run = self.stage_runs.get(stage)
        if run is None or self.failed:
            return {}
        env = {"MLFLOW_RUN_ID": run}
        # the kernel inherits MLFLOW_TRACKING_URI; hand it over only when nb2pipe rewrote it (a
        # relative sqlite path made absolute), never a URI that could carry credentials into the
        # executed notebook
        if self.uri != os.environ.get("MLFLOW_TRACKING_URI"):
            env["MLFLOW_TRACKING_URI"] = self.uri
        return env

    # --- events ---

    def _on_run_started(self, event: dict[str, Any]) -> None:
        from nb2pipe.provenance import git_info

        self.run_id = event["run"]
        self.params = dict(event.get("params") or {})
        commit, dirty = git_info(Path(self.pipeline.root))
        self.commit = commit
        tags = {
            "nb2pipe.run_id": self.run_id,
            "nb2pipe.pipeline": str(Path(self.pipeline.root).resolve()),
            "nb2pipe.stages": ", ".join(event.get("stages") or []),
            "mlflow.source.name": str(Path(self.pipeline.root).resolve()),
            "mlflow.note.content": " ".join(self.command),
        }
        if commit:
            tags.update({"mlflow.source.git.commit": commit, "nb2pipe.git_dirty": str(bool(dirty)).lower()})
        run = self.client.create_run(self.experiment_id, start_time=_ms(event.get("time")), tags=tags, run_name=self.run_id)
        self.parent = run.info.run_id
        self._log(self.parent, params=self.params)

    def _on_stage_started(self, event: dict[str, Any]) -> None:
        name = event["stage"]
        stage = self.pipeline.stage(name)
        tags = {"mlflow.parentRunId": self.parent, "nb2pipe.run_id": self.run_id, "nb2pipe.stage": name}
        if self.commit:
            tags["mlflow.source.git.commit"] = self.commit
        run = self.client.create_run(self.experiment_id, start_time=_ms(event.get("time")), tags=tags, run_name=name)
        self.stage_runs[name] = run.info.run_id
        self._log(run.info.run_id, params={p: self.params[p] for p in stage.params if p in self.params})

    def _on_stage_finished(self, event: dict[str, Any]) -> None:
        name, metrics = event["stage"], event.get("metrics") or {}
        if metrics:
            self.metrics.append({"name": name, "metrics": metrics})
        run = self.stage_runs.pop(name, None)
        if run is None:  # up to date, restored from the cache, or not run: nothing executed
            return
        tags = {"nb2pipe.outcome": event.get("outcome", ""), "nb2pipe.fingerprint": event.get("fingerprint") or ""}
        duration = {"nb2pipe.duration_s": event["duration"]} if isinstance(event.get("duration"), (int, float)) else {}
        self._log(run, metrics={**metrics, **duration}, tags=tags, at=event.get("time"))
        self._artifacts(run, name, event.get("notebook"))
        self.client.set_terminated(run, "FINISHED", end_time=_ms(event.get("time")))

    def _on_stage_failed(self, event: dict[str, Any]) -> None:
        name = event["stage"]
        run = self.stage_runs.pop(name, None)
        if run is None:
            return
        self._log(
            run, tags={"nb2pipe.outcome": Outcome.FAILED, "nb2pipe.error": str(event.get("error", ""))[:MAX_TAG]}, at=event.get("time")
        )
        self._artifacts(run, name, event.get("notebook"), metrics_files=False)
        self.client.set_terminated(run, "KILLED" if event.get("interrupted") else "FAILED", end_time=_ms(event.get("time")))

    def _on_run_finished(self, event: dict[str, Any]) -> None:
        status = STATUS.get(event.get("status", RunStatus.OK), "FAILED")
        for run in self.stage_runs.values():  # stages cut short by Ctrl-C or SIGTERM
            self.client.set_terminated(run, "KILLED", end_time=_ms(event.get("time")))
        self.stage_runs.clear()
        if self.parent is None:
            return
        from nb2pipe.track import flat_metrics

        tags = {"nb2pipe.status": event.get("status", RunStatus.OK)}
        if event.get("summary"):
            tags["nb2pipe.summary"] = event["summary"]
        self._log(self.parent, metrics=flat_metrics(self.metrics), tags=tags, at=event.get("time"))
        lock = lockfile.lock_path(self.pipeline)
        if lock.exists():
            self.client.log_artifact(self.parent, str(lock))
        self.client.set_terminated(self.parent, status, end_time=_ms(event.get("time")))

    # --- helpers ---

    def _log(
        self,
        run: str,
        params: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        at: float | None = None,
    ) -> None:
        from mlflow.entities import Metric, Param, RunTag

        numbers = {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.client.log_batch(
            run,
            metrics=[Metric(k, float(v), _ms(at), 0) for k, v in numbers.items()],
            params=[Param(k, str(v)[:MAX_TAG]) for k, v in (params or {}).items()],
            tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
        )

    def _artifacts(self, run: str, name: str, notebook: str | None, metrics_files: bool = True) -> None:
        """The executed notebook, and the stage's metrics files under metrics/."""
        if notebook and Path(notebook).is_file():
            self.client.log_artifact(run, notebook)
        if metrics_files:
            for path in self.pipeline.stage(name).metrics:
                file = lockfile.resolve(self.pipeline, path)
                if file.is_file():
                    self.client.log_artifact(run, str(file), artifact_path="metrics")


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."
