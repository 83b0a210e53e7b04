"""The stage graph: edges from files and `after:`, a dependency order, cycles, selections.

1. Every file a stage produces (outs and metrics) has exactly one producer.
2. A stage depends on the producer of each of its deps (a dep inside a produced folder counts,
   and so does a produced file inside a dep folder), and on each stage named by `after:`.
3. `graphlib.TopologicalSorter` orders the stages; its CycleError becomes a message that prints
   the cycle. Ties keep the order of nb2pipe.yaml, so the order is deterministic.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable

from nb2pipe.errors import CycleError, SpecError, UnknownStageError
from nb2pipe.model import Pipeline, Stage


def _contains(folder: str, path: str) -> bool:
    folder = folder.rstrip("/")
    return path == folder or path.startswith(folder + "/")


def producers(pipeline: Pipeline) -> dict[str, str]:
    """Which stage produces each output path (a folder declared `data/` is `data`); two producers
    of one path is an error."""
    owner: dict[str, str] = {}
    for stage in pipeline.stages:
        for declared in stage.produced:
            path = declared.rstrip("/") or declared
            if path in owner and owner[path] != stage.name:
                raise SpecError(
                    f"'{declared}' is declared as an output of both stage '{owner[path]}' and stage "
                    f"'{stage.name}'; a file has one producer: remove one of the out: tags"
                )
            owner[path] = stage.name
    return owner


def upstream(pipeline: Pipeline) -> dict[str, list[str]]:
    """For each stage, the stages it depends on (sorted by pipeline order)."""
    owner = producers(pipeline)
    inside = _folder_index(owner)
    names = pipeline.names
    position = {name: i for i, name in enumerate(names)}
    edges: dict[str, list[str]] = {}
    for stage in pipeline.stages:
        found: set[str] = set()
        for target in stage.after:
            if target not in position:
                raise UnknownStageError(target, names, where=f"stage '{stage.name}', after")
            found.add(target)
        found.update(_data_upstream(stage, owner, inside))
        edges[stage.name] = sorted(found, key=position.__getitem__)
    return edges


def dep_producers(pipeline: Pipeline) -> dict[str, dict[str, list[str]]]:
    """For each stage, each of its deps with the other stages producing it (sorted by pipeline
    order; empty for a file no stage writes)."""
    owner = producers(pipeline)
    inside = _folder_index(owner)
    position = {name: i for i, name in enumerate(pipeline.names)}
    return {
        stage.name: {
            dep: sorted((p for p in _producers_of(dep, owner, inside) if p != stage.name), key=position.__getitem__)
            for dep in stage.deps
        }
        for stage in pipeline.stages
    }


def after_only(pipeline: Pipeline) -> dict[str, set[str]]:
    """For each stage, the stages it follows by `after:` alone: they produce none of its deps."""
    owner = producers(pipeline)
    inside = _folder_index(owner)
    return {stage.name: set(stage.after) - _data_upstream(stage, owner, inside) for stage in pipeline.stages}


def _data_upstream(stage: Stage, owner: dict[str, str], inside: dict[str, set[str]]) -> set[str]:
    """The other stages producing one of `stage`'s deps."""
    found: set[str] = set()
    for dep in stage.deps:
        found.update(p for p in _producers_of(dep, owner, inside) if p != stage.name)
    return found


def _folder_index(owner: dict[str, str]) -> dict[str, set[str]]:
    """For every folder above a produced path, the stages producing something inside it."""
    index: dict[str, set[str]] = {}
    for path, producer in owner.items():
        parts = path.rstrip("/").split("/")
        for depth in range(1, len(parts)):
            index.setdefault("/".join(parts[:depth]), set()).add(producer)
    return index


def _producers_of(dep: str, owner: dict[str, str], inside: dict[str, set[str]]) -> set[str]:
    """Stages producing `dep`, a folder holding it, or something inside it."""
    dep = dep.rstrip("/")
    found = set(inside.get(dep, ()))
    parts = dep.split("/")
    for depth in range(1, len(parts) + 1):
        producer = owner.get("/".join(parts[:depth]))
        if producer:
            found.add(producer)
    return found


def order(pipeline: Pipeline, edges: dict[str, list[str]] | None = None) -> list[str]:
    """The stages in an order where every stage comes after the stages it depends on."""
    edges = upstream(pipeline) if edges is None else edges
    sorter = graphlib.TopologicalSorter({name: edges[name] for name in pipeline.names})
    try:
        sorter.prepare()
    except graphlib.CycleError as e:
        cycle = list(e.args[1])
        raise CycleError(cycle) from None
    position = {name: i for i, name in enumerate(pipeline.names)}
    result: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        result.extend(ready)
        sorter.done(*ready)
    return result


def ancestors(edges: dict[str, list[str]], roots: Iterable[str]) -> set[str]:
    """Every stage `roots` depend on, directly or not (not `roots` themselves)."""
    return _reachable(edges, [up for root in roots for up in edges[root]])


def downstream(edges: dict[str, list[str]], roots: Iterable[str]) -> set[str]:
    """`roots` and every stage that depends on them, directly or not."""
    dependants: dict[str, list[str]] = {name: [] for name in edges}
    for name, ups in edges.items():
        for up in ups:
            dependants[up].append(name)
    return _reachable(dependants, roots)


def _reachable(links: dict[str, list[str]], start: Iterable[str]) -> set[str]:
    """`start` and every stage reached from it through `links`."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(links[name])
    return seen


def select(
    pipeline: Pipeline,
    stages: Iterable[str] = (),
    *,
    from_stage: str | None = None,
    with_downstream: bool = False,
) -> list[str]:
    """The stages a command acts on, in dependency order: all of them by default; `stages` (and,
    with `with_downstream`, what depends on them); or `from_stage` and everything after it."""
    edges = upstream(pipeline)
    ordered = order(pipeline, edges)
    chosen = list(stages)
    for name in chosen + ([from_stage] if from_stage else []):
        if name not in edges:
            raise UnknownStageError(name, pipeline.names)
    if from_stage:
        chosen.append(from_stage)
        with_downstream = True
    if not chosen:
        return ordered
    wanted = downstream(edges, chosen) if with_downstream else set(chosen)
    return [name for name in ordered if name in wanted]


def mermaid(pipeline: Pipeline) -> str:
    """The DAG as a Mermaid flowchart; edges carrying files are labelled with them."""
    edges = upstream(pipeline)
    owner = producers(pipeline)
    lines = ["flowchart TD"]
    for name in order(pipeline, edges):
        lines.append(f"    {_node(name)}[\"{name}\"]")
    for stage in pipeline.stages:
        for up in edges[stage.name]:
            files = [d for d in stage.deps if any(owner.get(o) == up and (_contains(o, d) or _contains(d, o)) for o in owner)]
            label = f"|\"{', '.join(files)}\"|" if files else ""
            lines.append(f"    {_node(up)} -->{label} {_node(stage.name)}")
    return "\n".join(lines) + "\n"


def _node(name: str) -> str:
    return "s_" + name.replace("-", "__")
