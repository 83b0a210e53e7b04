"""Hidden state a fresh kernel per stage cannot see, and how it is carried from stage to stage.

The notebook runs in one kernel, so a stage sees what earlier code left in it beside variables:
the global random generators (`random`, `np.random`, `torch`), `os.environ`, `sys.path` and the
working folder. The pipeline carries it exactly (`plan_hidden_state`):

1. Each cell is read once (`cell_state_uses`), with the imports seen so far (`np` is `numpy`),
   for calls that seed or draw from a global generator (scikit-learn draws from numpy's when
   given no `random_state`), edits of `os.environ`, `sys.path` and `os.chdir` / `%cd`.
2. A global generator is carried only when the notebook seeds it somewhere (else its draws
   differ from run to run anyway): a stage that uses it restores the state the nearest earlier
   stage using it left, and that stage saves its state at its end.
3. `os.environ` (the keys the notebook sets, by name), `sys.path` and the working folder are
   restored in every stage after the first that changes them; a stage that changes one saves it.
   An environment change whose key is not a literal cannot be carried exactly: a warning names
   the stage, the cell and the kind of state.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass, field

from nb2pipe.infer.ipython import ipython_method, parse_cell_once, string_arguments

RANDOM, NUMPY_RANDOM, TORCH_RANDOM = "random", "numpy.random", "torch"
ENVIRON, SYS_PATH, WORKING_FOLDER = "os.environ", "sys.path", "working folder"
KINDS = (RANDOM, NUMPY_RANDOM, TORCH_RANDOM, ENVIRON, SYS_PATH, WORKING_FOLDER)
GENERATORS = (RANDOM, NUMPY_RANDOM, TORCH_RANDOM)
# seeded here, but their state cannot be read back to carry it: a warning
_UNCARRIED_SEEDS = {
    "tensorflow.random.set_seed": "global random state (tensorflow)",
    "tensorflow.keras.utils.set_random_seed": "global random state (tensorflow)",
    "torch.cuda.manual_seed": "global random state (torch.cuda)",
    "torch.cuda.manual_seed_all": "global random state (torch.cuda)",
}
LABELS = {
    RANDOM: "global random state (random)",
    NUMPY_RANDOM: "global random state (numpy.random)",
    TORCH_RANDOM: "global random state (torch)",
    ENVIRON: "os.environ",
    SYS_PATH: "sys.path",
    WORKING_FOLDER: "working folder",
}

_SEEDS = {
    "random.seed": RANDOM,
    "numpy.random.seed": NUMPY_RANDOM,
    "torch.manual_seed": TORCH_RANDOM,
    "torch.random.manual_seed": TORCH_RANDOM,
    "torch.seed": TORCH_RANDOM,
}
# calls under these prefixes use a global generator; the names after them that do not
_DRAWS = {"random.": RANDOM, "numpy.random.": NUMPY_RANDOM, "torch.": TORCH_RANDOM, "sklearn.": NUMPY_RANDOM}
_OWN_GENERATORS = frozenset(
    {
        "random.Random", "random.SystemRandom", "numpy.random.default_rng", "numpy.random.Generator",
        "numpy.random.RandomState", "numpy.random.SeedSequence", "numpy.random.PCG64", "numpy.random.MT19937",
        "numpy.random.Philox", "numpy.random.SFC64", "torch.Generator",
    }
)
_ENVIRON_CALLS = frozenset({"update", "setdefault", "pop", "clear", "popitem", "__setitem__", "__delitem__"})


@dataclass(frozen=True)
class StateUse:
    """One cell's use of one kind of hidden state."""

    kind: str
    seeds: bool = False  # random.seed(...) and the like
    changes: bool = False  # os.environ, sys.path or the working folder edited
    keys: frozenset[str] = frozenset()  # os.environ: the keys set or removed
    exact: bool = True  # False: cannot be carried (an os.environ key that is not a literal, tensorflow's seed)


@dataclass
class _CellReader(ast.NodeVisitor):
    aliases: dict[str, str]
    uses: list[StateUse] = field(default_factory=list)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                root = alias.name.split(".")[0]
                self.aliases[root] = root

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and not node.level:
            for alias in node.names:
                self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def dotted(self, node: ast.expr) -> str | None:
        """`numpy.random.seed` for `np.random.seed` after `import numpy as np`."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            outer = self.dotted(node.value)
            return None if outer is None else f"{outer}.{node.attr}"
        return None

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        name = self.dotted(node.func)
        if name is None:
            self._magic(node)
            return
        if name in _SEEDS:
            self.uses.append(StateUse(_SEEDS[name], seeds=True))
        elif name in _UNCARRIED_SEEDS:
            self.uses.append(StateUse(_UNCARRIED_SEEDS[name], seeds=True, exact=False))
        elif name not in _OWN_GENERATORS and (kind := next((k for p, k in _DRAWS.items() if name.startswith(p)), None)):
            self.uses.append(StateUse(kind))
        if name in ("os.chdir", "os.fchdir"):
            self.uses.append(StateUse(WORKING_FOLDER, changes=True))
        elif name.startswith("sys.path."):
            self.uses.append(StateUse(SYS_PATH, changes=True))
        elif name in ("os.putenv", "os.unsetenv") or name.startswith("os.environ."):
            self._environ_call(node, name)

    def _environ_call(self, node: ast.Call, name: str) -> None:
        method = name.rsplit(".", 1)[1]
        if name.startswith("os.environ.") and method not in _ENVIRON_CALLS:
            return  # os.environ.get(...) and other reads
        keys = [a.value for a in node.args[:1] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if method == "update":
            keys = [k.arg for k in node.keywords if k.arg] + _dict_keys(node.args[0] if node.args else None)
            exact = len(node.args) <= 1 and all(k.arg for k in node.keywords) and (not node.args or _is_literal_dict(node.args[0]))
        else:
            exact = bool(keys) and method not in ("clear", "popitem")
        self.uses.append(StateUse(ENVIRON, changes=True, keys=frozenset(keys), exact=exact))

    def _magic(self, node: ast.Call) -> None:
        if ipython_method(node) != "run_line_magic":
            return
        args = string_arguments(node) or []
        if args[:1] == ["cd"]:
            self.uses.append(StateUse(WORKING_FOLDER, changes=True))
        elif args[:1] == ["env"] and len(args) > 1 and ("=" in args[1] or " " in args[1].strip()):
            key = args[1].replace("=", " ").split()[0]
            self.uses.append(StateUse(ENVIRON, changes=True, keys=frozenset({key})))

    def _target(self, target: ast.expr) -> None:
        if isinstance(target, ast.Subscript) and self.dotted(target.value) == "os.environ":
            key = target.slice
            keys = frozenset({key.value}) if isinstance(key, ast.Constant) and isinstance(key.value, str) else frozenset()
            self.uses.append(StateUse(ENVIRON, changes=True, keys=keys, exact=bool(keys)))
        elif self.dotted(target) == "sys.path" or (isinstance(target, ast.Subscript) and self.dotted(target.value) == "sys.path"):
            self.uses.append(StateUse(SYS_PATH, changes=True))
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._target(element)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        for target in node.targets:
            self._target(target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.generic_visit(node)
        self._target(node.target)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._target(target)


def _is_literal_dict(node: ast.expr) -> bool:
    return isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in node.keys)


def _dict_keys(node: ast.expr | None) -> list[str]:
    if not isinstance(node, ast.Dict):
        return []
    return [k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]


def cell_state_uses(source: str, aliases: dict[str, str]) -> list[StateUse]:
    """The hidden state one cell uses; `aliases` (local name -> module path) is updated with
    the cell's imports. A cell that does not parse uses none (its warning comes from analyze_cell)."""
    try:
        tree = parse_cell_once(source)[0]
    except (SyntaxError, ValueError, RecursionError):
        return []
    reader = _CellReader(aliases)
    try:
        reader.visit(tree)
    except RecursionError:
        return []
    return reader.uses


@dataclass(frozen=True)
class HiddenState:
    """What one stage restores at its start and saves at its end."""

    restores: tuple[tuple[str, str], ...] = ()  # (kind, provider stage)
    saves: tuple[str, ...] = ()  # kinds
    environ_keys: tuple[str, ...] = ()  # os.environ keys it saves, sorted


@dataclass
class _Kinds:
    """Per stage, per kind: whether it uses the state, and whether it changes it."""

    uses: list[set[str]]
    changes: list[set[str]]
    seeded: set[str]
    environ_keys: list[set[str]]


def _read_stages(
    setup: Sequence[str], stages: Sequence[tuple[str, Sequence[tuple[str, str]]]]
) -> tuple[_Kinds, list[str]]:
    aliases: dict[str, str] = {}
    kinds = _Kinds([], [], set(), [])
    for source in setup:
        kinds.seeded.update(use.kind for use in cell_state_uses(source, aliases) if use.seeds)
    warnings: list[str] = []
    for index, (stage, cells) in enumerate(stages):
        uses: set[str] = set()
        changes: set[str] = set()
        keys: set[str] = set()
        for label, source in cells:
            for use in cell_state_uses(source, aliases):
                uses.add(use.kind)
                if use.seeds:
                    kinds.seeded.add(use.kind)
                if use.changes:
                    changes.add(use.kind)
                keys |= use.keys
                if not use.exact and index + 1 < len(stages):
                    warnings.append(f"stage '{stage}', {label}: {_why_not_carried(use.kind)}")
        kinds.uses.append(uses)
        kinds.changes.append(changes)
        kinds.environ_keys.append(keys)
    return kinds, warnings


def _why_not_carried(kind: str) -> str:
    if kind == ENVIRON:
        return (
            "os.environ is changed with a key that is not a literal string, so later stages cannot be given that "
            "change; set it with a literal key (os.environ['NAME'] = ...)"
        )
    return f"{kind} is seeded here, but nb2pipe cannot carry it to later stages; seed it in each stage that draws from it"


def plan_hidden_state(
    setup: Sequence[str], stages: Sequence[tuple[str, Sequence[tuple[str, str]]]]
) -> tuple[dict[str, HiddenState], list[str]]:
    """Per stage, what hidden state it restores (and from which stage) and saves, and warnings.
    `setup` is the source of the setup cells; `stages` are (name, [(cell label, source)]) in
    notebook order."""
    kinds, warnings = _read_stages(setup, stages)
    names = [name for name, _ in stages]
    restores: list[list[tuple[str, str]]] = [[] for _ in stages]
    saves: list[set[str]] = [set() for _ in stages]
    for kind in KINDS:
        if kind in GENERATORS and kind not in kinds.seeded:
            continue  # never seeded: its draws differ from run to run in the notebook too
        last: int | None = None  # the nearest earlier stage that left this state
        for index in range(len(stages)):
            if kind in GENERATORS and kind not in kinds.uses[index]:
                continue
            if last is not None:
                restores[index].append((kind, names[last]))
                saves[last].add(kind)
            if kind in GENERATORS or kind in kinds.changes[index]:
                last = index
    return _hidden_states(names, restores, saves, kinds), warnings


def _hidden_states(names: list[str], restores: list[list[tuple[str, str]]], saves: list[set[str]], kinds: _Kinds) -> dict[str, HiddenState]:
    result = {}
    keys_so_far: set[str] = set()
    for index, name in enumerate(names):
        keys_so_far |= kinds.environ_keys[index]
        result[name] = HiddenState(
            restores=tuple(restores[index]),
            saves=tuple(kind for kind in KINDS if kind in saves[index]),
            environ_keys=tuple(sorted(keys_so_far)) if ENVIRON in saves[index] else (),
        )
    return result
