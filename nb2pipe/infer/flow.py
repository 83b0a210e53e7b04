"""What flows between stages: the values each stage loads from earlier ones, and the imports,
functions and classes it must re-create (`trace_stages`, once for all stages).

1. Walk the stages in notebook order, keeping for every name its provider: the nearest stage that
   bound or mutated it, and whether that binding was an import/def/class (a *definition*, which
   is re-created, never handed over) or a value (which is handed over, see nb2pipe.handoff).
2. A stage reads a name when one of its cells reads it before an earlier cell of the same stage
   binds it. A value read that way is an input; a definition read that way is a needed
   definition, and the names that definition reads or changes are followed in turn, so a
   function defined in stage `a` and called in stage `c` brings along the globals and imports
   it uses.
3. A stage that loads a value from stage P also re-creates the notebook's classes P could see
   (followed like any definition it uses): a value is saved with its classes by reference, so an
   instance of a class defined in the notebook loads only where that class exists.
4. A stage's outputs are the values that later stages take from it.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from nb2pipe.infer.cells import CellFacts
from nb2pipe.infer.scopes import BUILTIN_NAMES


@dataclass(frozen=True)
class StageFlow:
    """The values one stage loads from earlier stages and hands to later ones, and the
    definitions (imports, functions, classes) it takes from earlier stages."""

    stage: str
    inputs: tuple[tuple[str, str], ...]  # (name, provider_stage), sorted by name
    outputs: tuple[str, ...]  # names later stages take from this one, sorted
    definitions: tuple[tuple[str, str], ...] = ()  # (name, provider_stage), sorted by name
    # excluded names (parameters, setup) that the definitions it takes from earlier stages read, sorted
    read_through_definitions: tuple[str, ...] = ()
    # the definitions a loaded value needs to load (classes, with what they need), sorted: re-created
    # before the loads; the others after them, as their defaults and decorators may read loaded values
    needed_to_load: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Provider:
    stage: int
    is_definition: bool
    reads: frozenset[str] = frozenset()  # for definitions: what using it reads
    changes: frozenset[str] = frozenset()  # for definitions: what calling it changes
    is_class: bool = False


@dataclass
class _StageNeeds:
    inputs: dict[str, int]  # value name -> provider stage index
    definitions: dict[str, int]  # import/def/class name -> provider stage index
    excluded_reads: set[str] = field(default_factory=set)  # parameters, setup names read by those definitions
    needed_to_load: set[str] = field(default_factory=set)  # definitions a loaded value needs


def _needs_of_cell(
    cell: CellFacts, providers: dict[str, _Provider], bound_in_stage: set[str], excluded: frozenset[str], needs: _StageNeeds
) -> set[str]:
    """Record what one cell takes from earlier stages; return names it changes
    through definitions it uses."""
    read = [name for name in cell.reads | cell.builtin_reads if name not in bound_in_stage]
    return _follow(read, providers, bound_in_stage, excluded, needs)


def _follow(
    names: Iterable[str],
    providers: dict[str, _Provider],
    bound_in_stage: set[str],
    excluded: frozenset[str],
    needs: _StageNeeds,
    reached: set[str] | None = None,
) -> set[str]:
    """Record the values and definitions that using `names` takes from earlier stages, following
    definitions transitively (adding them to `reached`); return the names those definitions change."""
    changed: set[str] = set()
    pending = [(name, False) for name in names]  # (name, read by a definition)
    seen: set[str] = set()
    while pending:
        name, through_definition = pending.pop()
        if through_definition and name in excluded and name not in bound_in_stage:
            needs.excluded_reads.add(name)  # a parameter the copied definition reads
        if name in seen or name in excluded or name in bound_in_stage:
            continue
        seen.add(name)
        provider = providers.get(name)
        if provider is None:
            continue
        if provider.is_definition:
            needs.definitions.setdefault(name, provider.stage)
            if reached is not None:
                reached.add(name)
            pending.extend((used, True) for used in provider.reads)
            pending.extend((used, True) for used in provider.changes)  # it changes them, so it needs them first
            changed.update(provider.changes)
        else:
            needs.inputs.setdefault(name, provider.stage)
    return changed


def _classes_for_loads(
    needs: _StageNeeds, classes_after: list[frozenset[str]], providers: dict[str, _Provider], excluded: frozenset[str]
) -> set[str]:
    """Re-create, before the loads, the classes each provider of a loaded value could see (and
    what they need, which may load more values); return the names those definitions change."""
    changed: set[str] = set()
    done: set[int] = set()
    while todo := set(needs.inputs.values()) - done:
        for stage in sorted(todo):
            done.add(stage)
            visible = [name for name in sorted(classes_after[stage]) if (p := providers.get(name)) is not None and p.is_class]
            changed |= _follow(visible, providers, set(), excluded, needs, needs.needed_to_load)
    return changed


@functools.lru_cache(maxsize=1024)
def _is_class_statement(text: str) -> bool:
    try:
        body = ast.parse(text).body
    except SyntaxError:
        return False
    return len(body) == 1 and isinstance(body[0], ast.ClassDef)


def _class_names(cell: CellFacts) -> set[str]:
    return {name for name, text in cell.definition_sources if name in cell.definitions and _is_class_statement(text)}


def _record_providers(
    providers: dict[str, _Provider], stage: int, cells: Sequence[CellFacts], changed_by_calls: set[str], excluded: frozenset[str]
) -> None:
    """After a stage: it provides what it binds, and the values it mutates."""

    def note_value_change(name: str) -> None:
        current = providers.get(name)
        if name in excluded or (current is not None and current.is_definition):
            return  # mutating a module or a function does not make it data
        if current is None and name in BUILTIN_NAMES:
            return  # `str.join(...)`: a builtin the notebook never rebound is no data
        providers[name] = _Provider(stage, is_definition=False)

    for cell in cells:
        reads_of = dict(cell.definition_reads)
        changes_of = dict(cell.definition_changes)
        classes = _class_names(cell)
        for name in cell.binds:
            if name in excluded:
                continue
            is_definition = name in cell.imports or name in cell.definitions
            providers[name] = _Provider(
                stage,
                is_definition,
                reads_of.get(name, frozenset()),
                changes_of.get(name, frozenset()),
                is_class=name in classes,
            )
        for name in cell.mutates - cell.binds:
            note_value_change(name)
    for name in changed_by_calls:
        note_value_change(name)


def _trace_stages(stages: Sequence[tuple[str, Sequence[CellFacts]]], exclude: Collection[str]) -> list[_StageNeeds]:
    excluded = frozenset(exclude)
    providers: dict[str, _Provider] = {}
    traced: list[_StageNeeds] = []
    classes_after: list[frozenset[str]] = []  # per stage: the notebook's classes visible at its end
    for index, (_, cells) in enumerate(stages):
        needs = _StageNeeds(inputs={}, definitions={})
        bound_in_stage: set[str] = set()
        changed_by_calls: set[str] = set()
        for cell in cells:
            changed_by_calls |= _needs_of_cell(cell, providers, bound_in_stage, excluded, needs)
            bound_in_stage |= cell.binds
        changed_by_calls |= _classes_for_loads(needs, classes_after, providers, excluded)
        _record_providers(providers, index, cells, changed_by_calls, excluded)
        classes_after.append(frozenset(name for name, p in providers.items() if p.is_class))
        traced.append(needs)
    return traced


def trace_stages(
    stages: Sequence[tuple[str, Sequence[CellFacts]]],
    *,
    exclude: Collection[str] = (),
) -> tuple[StageFlow, ...]:
    """Per stage, in order: the values it loads (and from where), the values it hands on, and
    the definitions it takes from earlier stages.

    `stages` are (name, cell facts) in notebook order; names are unique. Imports, functions and
    classes are never inputs or outputs. A value that a definition used by the stage reads (a
    function's global) is an input of the stage. Definitions are followed transitively: a
    function that uses another function, a class or an imported module brings those along; the
    provider is the nearest earlier stage binding the name, judged from the stage that uses it
    (a function looks its globals up when called). Names in `exclude` are left out.
    """
    names = [name for name, _ in stages]
    traced = _trace_stages(stages, exclude)
    outputs: list[set[str]] = [set() for _ in stages]
    for needs in traced:
        for name, provider in needs.inputs.items():
            outputs[provider].add(name)
    return tuple(
        StageFlow(
            stage=names[index],
            inputs=_with_stage_names(needs.inputs, names),
            outputs=tuple(sorted(outputs[index])),
            definitions=_with_stage_names(needs.definitions, names),
            read_through_definitions=tuple(sorted(needs.excluded_reads)),
            needed_to_load=tuple(sorted(needs.needed_to_load)),
        )
        for index, needs in enumerate(traced)
    )


def _with_stage_names(providers: dict[str, int], names: list[str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((name, names[index]) for name, index in providers.items()))


def infer_flow(
    stages: Sequence[tuple[str, Sequence[CellFacts]]],
    *,
    exclude: Collection[str] = (),
) -> tuple[StageFlow, ...]:
    """Which values each stage loads (and from where) and hands on: see :func:`trace_stages`."""
    return trace_stages(stages, exclude=exclude)


def needed_definitions(
    stages: Sequence[tuple[str, Sequence[CellFacts]]],
    *,
    exclude: Collection[str] = (),
) -> dict[str, tuple[tuple[str, str], ...]]:
    """Per stage: (name, provider_stage) of imports, defs and classes from earlier stages that
    the stage uses, sorted by name: see :func:`trace_stages`."""
    return {flow.stage: flow.definitions for flow in trace_stages(stages, exclude=exclude)}
