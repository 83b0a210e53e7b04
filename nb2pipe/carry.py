"""What export adds to carry more than plain variables from stage to stage, and what `explain`
says about it before any run.

1. Hidden state (infer/state_kinds.py): a stage that uses a global random generator, os.environ,
   sys.path or the working folder after an earlier stage left it restores it in a generated cell
   after its loads; the stage that left it saves it in a generated cell at its end (both print
   nothing). Each kind is a folder beside the stage's variables, so it is an out of the provider
   and a dep of the consumer: staleness, caching and the order of stages treat it like a variable.
2. Values: a variable bound to a lambda, or holding the notebook's own functions, is saved with
   cloudpickle (handoff.py); one bound to a generator or an open file cannot be saved at all, and
   export says so, naming the stage and the cell.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nb2pipe.infer.ipython import parse_cell_once
from nb2pipe.infer.state_kinds import ENVIRON, LABELS, HiddenState

FolderOf = Callable[[str, str], str]  # (stage, name) -> its folder, relative to wdir


def state_folder_name(kind: str) -> str:
    """The folder name of a kind of hidden state: never a Python name, so never a variable's."""
    return "nb2pipe-state-" + kind.replace(".", "-").replace(" ", "-")


@dataclass(frozen=True)
class HiddenStateCells:
    prelude: str  # restores the state (empty: none)
    postlude: str  # saves the state (empty: none)
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    notes: tuple[str, ...]  # what explain says


def hidden_state_cells(stage: str, hidden: HiddenState, folder_of: FolderOf) -> HiddenStateCells:
    """The generated cells of one stage that restore and save hidden state, and their folders."""
    if not hidden.restores and not hidden.saves:
        return HiddenStateCells("", "", (), (), ())
    deps = tuple(folder_of(provider, state_folder_name(kind)) for kind, provider in hidden.restores)
    outs = tuple(folder_of(stage, state_folder_name(kind)) for kind in hidden.saves)
    prelude = ["from nb2pipe.handoff import note_working_folder as _nb2pipe_note_working_folder"]
    if hidden.restores:
        prelude.append("from nb2pipe.handoff import restore_state as _nb2pipe_restore_state")
    prelude.append("_nb2pipe_note_working_folder()")
    prelude += [f"_nb2pipe_restore_state({kind!r}, {folder!r})" for (kind, _), folder in zip(hidden.restores, deps, strict=True)]
    postlude = ["from nb2pipe.handoff import save_state as _nb2pipe_save_state"] if hidden.saves else []
    for kind, folder in zip(hidden.saves, outs, strict=True):
        keys = f", keys={list(hidden.environ_keys)!r}" if kind == ENVIRON else ""
        postlude.append(f"_nb2pipe_save_state({kind!r}, {folder!r}{keys})")
    notes = tuple(f"restores {LABELS[kind]} from stage '{provider}'" for kind, provider in hidden.restores)
    notes += tuple(f"saves {LABELS[kind]} for later stages" for kind in hidden.saves)
    return HiddenStateCells("\n".join(prelude), "\n".join(postlude), deps, outs, notes)


# --- values pickle cannot carry --------------------------------------------------------------


def _how_it_travels(value: ast.expr, functions: set[str]) -> str | None:
    """'cloudpickle' or why the value cannot be saved, judged from the expression bound to it;
    None when pickle carries it (as far as the text tells)."""
    if isinstance(value, ast.GeneratorExp):
        return "a generator, which cannot be saved; make it a list"
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "open":
        return "an open file, which cannot be saved; open the file in the stage that uses it"
    for node in ast.walk(value):
        if isinstance(node, ast.Lambda):
            return "cloudpickle (it holds a lambda)"
        if isinstance(node, ast.Name) and node.id in functions and isinstance(node.ctx, ast.Load) and node is not value:
            return f"cloudpickle (it holds the notebook's function '{node.id}')"
        if node is value and isinstance(node, ast.Name) and node.id in functions:
            return f"cloudpickle (it is the notebook's function '{node.id}')"
    return None


def notebook_functions(sources: Sequence[str]) -> set[str]:
    """The names of the functions the cells define at top level."""
    names: set[str] = set()
    for source in sources:
        try:
            tree = parse_cell_once(source)[0]
        except (SyntaxError, ValueError, RecursionError):
            continue
        names.update(node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return names


def _last_bindings(sources: Sequence[tuple[str, str]]) -> dict[str, tuple[str, ast.expr]]:
    """Name -> (cell label, expression) of the last top-level `name = expression` in the cells."""
    found: dict[str, tuple[str, ast.expr]] = {}
    for label, source in sources:
        try:
            tree = parse_cell_once(source)[0]
        except (SyntaxError, ValueError, RecursionError):
            continue
        for node in tree.body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found[target.id] = (label, node.value)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.pop(node.name, None)
    return found


def value_notes(stage: str, sources: Sequence[tuple[str, str]], saves: Sequence[str], functions: set[str]) -> tuple[list[str], list[str]]:
    """(notes for explain, warnings) about the variables a stage saves that pickle cannot carry.
    `sources` are (cell label, source) of the stage; `functions` the notebook's top-level defs."""
    bindings = _last_bindings(sources)
    notes: list[str] = []
    warnings: list[str] = []
    for name in saves:
        if name not in bindings:
            continue
        label, value = bindings[name]
        how = _how_it_travels(value, functions)
        if how is None:
            continue
        if how.startswith("cloudpickle"):
            notes.append(f"saves {name} with {how}")
        else:
            what, fix = how.split("; ", 1)
            warnings.append(f"stage '{stage}', {label}: variable '{name}' is {what}, but a later stage reads it; {fix}")
    return notes, warnings
