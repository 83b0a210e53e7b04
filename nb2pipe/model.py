"""The data nb2pipe works with, as frozen dataclasses, and every tag and file key spelled once.

Notebook cells become a `NotebookPlan` (notebook.py); export turns the plan into a pipeline folder
whose `nb2pipe.yaml` loads back as a `Pipeline` of `Stage`s (spec.py). Staleness is a list of
`Reason`s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# --- cell tags (DESIGN §1). Kale's spellings are accepted as aliases. -------------------------
PARAMETERS_TAGS = ("parameters", "pipeline-parameters")
INJECTED_PARAMETERS_TAG = "injected-parameters"
STAGE_TAG_PREFIXES = ("stage:", "step:", "block:")
AFTER_TAG_PREFIXES = ("after:", "prev:")
SETUP_TAGS = ("setup", "imports", "functions")
SKIP_TAGS = ("skip",)
METRICS_TAGS = ("metrics", "pipeline-metrics")
IN_TAG_PREFIX = "in:"
OUT_TAG_PREFIX = "out:"
# Kale's per-step settings: kept in the stage's `meta` for the Kubeflow export.
KALE_SETTING_PREFIXES = ("image:", "limit:", "annotation:", "label:", "cache:", "report:")
# Per-stage settings (settings.py): tags `timeout:30m`, `retries:2`, `allow-failure`, ...; the same
# names are the keys of their structured form (cell.metadata.nb2pipe, notebook metadata
# nb2pipe.defaults) and of `settings:` / `defaults:` in nb2pipe.yaml.
S_TIMEOUT, S_CELL_TIMEOUT, S_RETRIES, S_MEMORY = "timeout", "cell-timeout", "retries", "memory"
S_ALLOW_FAILURE, S_KERNEL, S_ENV, S_SECRET, S_TRACK_ENV = "allow-failure", "kernel", "env", "secret", "track-env"
SETTING_KEYS = (S_TIMEOUT, S_CELL_TIMEOUT, S_RETRIES, S_MEMORY, S_ALLOW_FAILURE, S_KERNEL, S_ENV, S_SECRET, S_TRACK_ENV)
FLAG_SETTINGS = (S_ALLOW_FAILURE, S_TRACK_ENV)  # tags without a value
META_DEFAULTS = "defaults"  # notebook metadata nb2pipe.defaults: pipeline-wide settings
# Structured cell metadata written by the JupyterLab extension: cell.metadata.nb2pipe.
CELL_METADATA_KEY = "nb2pipe"
META_STAGE, META_DEPS, META_OUTS, META_AFTER = "stage", "deps", "outs", "after"

STAGE_NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,63}$")
STAGE_NAME_RULE = "a stage name is lowercase letters, digits, '_' and '-', starting with a letter or '_'"

# --- the pipeline folder (DESIGN §3) ----------------------------------------------------------
PIPELINE_FILE = "nb2pipe.yaml"
PARAMS_FILE = "params.yaml"
LOCK_FILE = "nb2pipe.lock"
STAGES_DIR = "stages"
METRICS_DIR = "metrics"
STATE_DIR = ".nb2pipe"
PIPELINES_DIR = "pipelines"
SPEC_VERSION = 1

# keys of nb2pipe.yaml
K_VERSION, K_SOURCE, K_NOTEBOOK, K_HASH = "version", "source", "notebook", "hash"
K_WDIR, K_PARAMS, K_STAGES, K_KERNEL = "wdir", "params", "stages", "kernel"
K_SCRIPT, K_CMD, K_DEPS, K_OUTS, K_METRICS = "script", "cmd", "deps", "outs", "metrics"
K_AFTER, K_META, K_CELLS = "after", "meta", "cells"
K_SETTINGS, K_DEFAULTS = "settings", "defaults"
K_LOADS, K_SAVES, K_INFERRED = "loads", "saves", "inferred"
# how the notebook was exported (`nb2pipe export --format --split-level`), so re-exports do the same
K_EXPORT, K_FORMAT, K_SPLIT_LEVEL = "export", "format", "split_level"
STAGE_FORMATS = ("py", "ipynb")  # the first is the default
HEADING_LEVELS = range(1, 7)
VARS_DIR = "vars"  # under STATE_DIR: variables handed between stages


@dataclass(frozen=True)
class Cell:
    """One notebook cell as nb2pipe sees it. `number` is 1-based, as a user counts cells."""

    number: int
    kind: str  # "code" | "markdown" | "raw"
    source: str
    tags: tuple[str, ...] = ()

    @property
    def first_line(self) -> str:
        lines = [line.strip() for line in self.source.splitlines() if line.strip()]
        line = next((x for x in lines if not x.startswith("#")), lines[0] if lines else "(empty)")
        return line if len(line) <= 60 else line[:57] + "..."

    @property
    def label(self) -> str:
        """How messages name the cell: `cell 12 ('df = load()')`."""
        return f"cell {self.number} ({self.first_line!r})"


@dataclass(frozen=True)
class Settings:
    """A stage's settings (settings.py reads and writes them); None and () mean "not set"."""

    timeout: float | None = None  # seconds, for the whole stage
    cell_timeout: float | None = None  # seconds, for each cell
    retries: int | None = None
    memory: int | None = None  # bytes
    allow_failure: bool | None = None
    kernel: str | None = None  # a kernelspec name
    env: tuple[tuple[str, str | None], ...] = ()  # (name, value); None: passed through from the caller
    secrets: tuple[str, ...] = ()  # names of environment variables given at run time, never written
    track_env: bool | None = None


@dataclass(frozen=True)
class StagePlan:
    """A stage as cut out of the notebook: its cells and what its tags declare."""

    name: str
    cells: tuple[Cell, ...]
    deps: tuple[str, ...] = ()
    outs: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    metrics_cells: tuple[int, ...] = ()  # numbers of the cells tagged `metrics`
    meta: tuple[tuple[str, tuple[str, ...]], ...] = ()
    settings: Settings = Settings()
    # configuration from cells of earlier stages (their imports and `plt.rc(...)`-like statements),
    # run at the top of this stage as the notebook's kernel had it (setup_code.replay_configuration)
    replayed: tuple[Cell, ...] = ()

    @property
    def code_cells(self) -> tuple[Cell, ...]:
        return tuple(c for c in self.cells if c.kind == "code")


@dataclass(frozen=True)
class NotebookPlan:
    """A notebook cut into setup code, parameters and stages (the output of notebook.py)."""

    name: str
    kernelspec: tuple[tuple[str, str], ...]
    setup: tuple[Cell, ...]
    parameters: Cell | None
    param_defaults: tuple[tuple[str, Any], ...]  # in the order the parameters cell gives them
    stages: tuple[StagePlan, ...]
    source_hash: str
    warnings: tuple[str, ...] = ()
    installs: tuple[Cell, ...] = ()  # cells whose install lines run in no stage (setup_code.take_out_installs)
    defaults: Settings = Settings()


@dataclass(frozen=True)
class Stage:
    """One stage of a pipeline, as declared in nb2pipe.yaml. Paths are relative to `wdir`."""

    name: str
    script: str | None = None  # relative to the pipeline folder
    cmd: tuple[str, ...] | None = None  # an argv list, for stages that are plain commands
    deps: tuple[str, ...] = ()
    outs: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    cells: tuple[int, ...] = ()
    meta: tuple[tuple[str, tuple[str, ...]], ...] = ()
    loads: tuple[tuple[str, str], ...] = ()  # (variable, providing stage), inferred
    saves: tuple[str, ...] = ()  # variables later stages load from this one
    inferred: tuple[str, ...] = ()  # deps and outs found by analysis rather than declared
    settings: Settings = Settings()  # the stage's own; `settings.effective` adds the pipeline's defaults

    @property
    def produced(self) -> tuple[str, ...]:
        """Everything the stage writes: its outs and its metrics files."""
        return self.outs + self.metrics


@dataclass(frozen=True)
class Pipeline:
    """A loaded pipeline folder. `root` is the folder holding nb2pipe.yaml."""

    root: str
    stages: tuple[Stage, ...]
    wdir: str = "."
    params_file: str = PARAMS_FILE
    source_notebook: str | None = None
    source_hash: str | None = None
    kernel: str | None = None
    version: int = SPEC_VERSION
    export_format: str | None = None  # the options it was exported with; None: not recorded
    split_level: int | None = None
    defaults: Settings = Settings()  # pipeline-wide settings (notebook metadata nb2pipe.defaults)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        from nb2pipe.errors import UnknownStageError

        raise UnknownStageError(name, self.names)


@dataclass(frozen=True)
class Reason:
    """Why a stage is not up to date: `kind` is a fixed phrase, `detail` says what."""

    kind: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


def meta_dict(meta: tuple[tuple[str, tuple[str, ...]], ...]) -> dict[str, list[str]]:
    return {key: list(values) for key, values in meta}


def freeze_meta(meta: dict[str, list[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple(sorted((key, tuple(values)) for key, values in meta.items()))

