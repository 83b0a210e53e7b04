"""What `nb2pipe show` prints: a pipeline's stages, files, params and edges, as data and as text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nb2pipe.graph import order, upstream
from nb2pipe.spec import load_params, load_pipeline


def describe(path: Path) -> dict[str, Any]:
    """The pipeline at `path` as JSON-ready data, stages in dependency order."""
    pipeline = load_pipeline(path)
    edges = upstream(pipeline)
    stages = []
    for name in order(pipeline, edges):
        stage = pipeline.stage(name)
        stages.append(
            {
                "name": name,
                "script": stage.script,
                "cmd": list(stage.cmd) if stage.cmd else None,
                "cells": list(stage.cells),
                "deps": list(stage.deps),
                "outs": list(stage.outs),
                "metrics": list(stage.metrics),
                "params": list(stage.params),
                "upstream": edges[name],
                "meta": {k: list(v) for k, v in stage.meta},
            }
        )
    return {
        "pipeline": str(path),
        "source": pipeline.source_notebook,
        "wdir": pipeline.wdir,
        "params": load_params(pipeline),
        "stages": stages,
    }


def as_text(info: dict[str, Any]) -> str:
    lines = [f"pipeline {info['pipeline']}"]
    if info["source"]:
        lines.append(f"  from      {info['source']}  (stages run in {info['wdir']})")
    if info["params"]:
        lines.append("  params    " + ", ".join(f"{k}={v!r}" for k, v in info["params"].items()))
    lines.append("")
    width = max(len(s["name"]) for s in info["stages"])
    for stage in info["stages"]:
        lines.append(f"{stage['name']:<{width}}  {stage['script'] or ' '.join(stage['cmd'])}")
        for key in ("upstream", "deps", "outs", "metrics", "params"):
            if stage[key]:
                label = "after" if key == "upstream" else key
                lines.append(f"{'':<{width}}    {label + ':':<9}{', '.join(stage[key])}")
    edges = [(up, s["name"]) for s in info["stages"] for up in s["upstream"]]
    if edges:
        lines.append("")
        lines.append("edges: " + ", ".join(f"{a} -> {b}" for a, b in edges))
    return "\n".join(lines) + "\n"
