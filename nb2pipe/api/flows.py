"""What flows into and out of each stage, read from the pipeline files (what `nb2pipe explain`
prints, without reading the notebook): the variables a stage loads (and from which stage) and
saves (and for which stages), the files it reads (and the stage writing each) and writes, its
parameters and its `after:` ordering. The sidebar's Explain and the pipeline graph's edges and
details pane show it; the server adds it to each stage of `GET status`.

Variables travel as files under `.nb2pipe/vars/`; those files are the variables' carriers, so
they are left out of the files lists (the variables name them).
"""

from __future__ import annotations

from typing import Any

from nb2pipe import model as m
from nb2pipe.graph import dep_producers

_VARS_PART = f"{m.STATE_DIR}/{m.VARS_DIR}/"


def carries_a_variable(path: str) -> bool:
    """Whether `path` is a variable's hand-off file (under `.nb2pipe/vars/`), not a user's file."""
    return path.startswith(_VARS_PART) or f"/{_VARS_PART}" in path


def stage_flows(pipeline: m.Pipeline) -> dict[str, dict[str, Any]]:
    """For each stage: `loads` [{name, from}], `saves` [{name, to}], `deps` [{path, from, how}]
    (`from`: the stages writing it, empty for an input of the pipeline), `outs` [{path, how}]
    (metrics files included), `params` and `after`. `how` is `declared` or `inferred`."""
    producers = dep_producers(pipeline)
    consumers: dict[tuple[str, str], list[str]] = {}
    for stage in pipeline.stages:
        for var, provider in stage.loads:
            consumers.setdefault((provider, var), []).append(stage.name)
    flows: dict[str, dict[str, Any]] = {}
    for stage in pipeline.stages:
        how = {path: "inferred" if path in stage.inferred else "declared" for path in stage.deps + stage.produced}
        flows[stage.name] = {
            "loads": [{"name": var, "from": provider} for var, provider in stage.loads],
            "saves": [{"name": var, "to": consumers.get((stage.name, var), [])} for var in stage.saves],
            "deps": [
                {"path": path, "from": producers[stage.name][path], "how": how[path]}
                for path in stage.deps
                if not carries_a_variable(path)
            ],
            "outs": [{"path": path, "how": how[path]} for path in stage.produced if not carries_a_variable(path)],
            "params": list(stage.params),
            "after": list(stage.after),
        }
    return flows
