"""The per-stage settings (issue 17) as the exporters need them: each stage's effective settings,
in the units the engines take, and the one warning line naming what an engine cannot express.

Every engine runs a stage through `python -m nb2pipe.run.single`, which reads nb2pipe.yaml and
enforces the stage's timeout, cell-timeout, memory, kernel, env and secret itself (and its
retries, unless the engine retries the stage: `--no-retries`). An exporter maps the settings
its engine has a word for onto that word (Airflow's `execution_timeout`, Kubeflow's memory
limit, ...) and names the rest in `cannot_express`'s line.
"""

from __future__ import annotations

import math

from nb2pipe.model import Pipeline, Settings
from nb2pipe.settings import effective

# The flag of the stage command that leaves retrying to the engine (run/single.py).
NO_RETRIES_FLAG = "--no-retries"

_KUBERNETES_UNITS = (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10), ("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3))


def stage_settings(pipeline: Pipeline) -> dict[str, Settings]:
    """Each stage's effective settings (its own over the pipeline's defaults), by stage name."""
    return {stage.name: effective(pipeline, stage) for stage in pipeline.stages}


def kubernetes_quantity(size: int) -> str:
    """Bytes as a Kubernetes quantity, exactly: 4 GiB → '4Gi', 2 GB → '2G', else bytes."""
    for unit, factor in _KUBERNETES_UNITS:
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def whole_seconds(seconds: float) -> int:
    """A duration as the whole seconds an engine takes, never shorter than the setting."""
    return math.ceil(seconds)


def set_env(settings: Settings) -> dict[str, str]:
    """The `env:NAME=VALUE` variables (names passed through from the caller left out)."""
    return {name: value for name, value in settings.env if value is not None}


def passed_through(settings: Settings) -> list[str]:
    """The names of the `env:NAME` variables, passed through from the caller's environment."""
    return [name for name, value in settings.env if value is None]


def cannot_express(target: str, what: dict[str, list[str]], why: str) -> str | None:
    """The one warning line of `--to target`: `what` maps a setting to the stages that use it,
    `why` says what the engine does instead; None when no stage uses one."""
    named = [f"{setting} ({_stages(stages)})" for setting, stages in what.items() if stages]
    if not named:
        return None
    return f"--to {target} cannot express {', '.join(named)}: {why}"


def _stages(names: list[str]) -> str:
    quoted = ", ".join(f"'{name}'" for name in names)
    return f"stage {quoted}" if len(names) == 1 else f"stages {quoted}"

