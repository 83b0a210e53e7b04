"""What the CLI, the server and the widget read about a pipeline: its status and its run history.

Each function takes a pipeline folder, a notebook (its `pipelines/<name>/`), or a pipeline
already loaded (the server loads it first, to check its paths before anything is read). Nothing
here runs notebook code, and nothing imports papermill or a Jupyter server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2pipe import model as m
from nb2pipe.api.tracked import folder_of

if TYPE_CHECKING:  # loaded on use: `nb2pipe status` must not load the run history's module
    from nb2pipe.state import PipelineStatus
    from nb2pipe.track import RunStore


def load(target: str | os.PathLike[str] | m.Pipeline) -> m.Pipeline:
    """The pipeline of a folder or notebook (or the pipeline itself)."""
    if isinstance(target, m.Pipeline):
        return target
    from nb2pipe.spec import load_pipeline

    return load_pipeline(folder_of(target))


def status(
    target: str | os.PathLike[str] | m.Pipeline, params: Mapping[str, Any] | None = None, running: set[str] | None = None
) -> PipelineStatus:
    """Each stage's state and reasons (a `state.PipelineStatus`), as if run with `params` over
    params.yaml. `running`: the stages running now (default: what the run registry says)."""
    from nb2pipe.spec import effective_params
    from nb2pipe.state import pipeline_status

    pipeline = load(target)
    values = effective_params(pipeline, dict(params or {}))
    if running is None:
        from nb2pipe.run.registry import running_stages

        running = running_stages(Path(pipeline.root))
    return pipeline_status(pipeline, values, running)


def open_history(target: str | os.PathLike[str] | m.Pipeline) -> RunStore:
    """The pipeline's run history (`track.RunStore`); use it in a `with` block, so runs.db is
    closed at once."""
    from nb2pipe.track import RunStore

    return RunStore(load(target))


def history(target: str | os.PathLike[str] | m.Pipeline, limit: int | None = None) -> list[dict[str, Any]]:
    """The newest `limit` runs (all when None), newest first, as `nb2pipe runs --json` shows them."""
    with open_history(target) as store:
        return store.runs(limit)
