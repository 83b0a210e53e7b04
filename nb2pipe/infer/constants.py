"""Which paths a notebook's names hold, cell after cell (`resolve_cells`): constants and parameters
are followed, so a path kept in a variable or given as a parameter is a dep or an out.

1. The cells are walked in notebook order with an environment: what each module-level name holds,
   as far as the text shows it (values.py). A name holds a known text (a string, a number, a path; `${name}`
   stands for the value of parameter `name`, as DVC's templating writes it), an open file or
   buffer, a path that only the run will know, or nothing known. The parameters cell gives each
   parameter its template `${name}`.
2. Each top-level statement: first every call in it that names a file (files.path_sites) is
   resolved with the environment as it was before the statement; then the names it binds are
   updated. A plain assignment evaluates its value (strings, numbers, `+`, `/`, `%`, f-strings,
   `str.format`, `os.path.join`, `Path(...)`, `.joinpath`, `str()`, `.parent`, `.name`, `.stem`,
   `.suffix`, `.with_suffix()`, `.with_name()`, `os.path.dirname/basename`); any other binding (a loop
   or `with` target, an import, a definition, a name bound inside a branch or a loop, a name a
   function declares `global`) makes the name unknown.
3. Where a function, lambda or class is defined, its body is left to the cell walker (which takes
   its literal paths): its names are looked up when it is called. A call of one of the notebook's
   own functions is followed into its body, the parameters bound to the call's arguments (two
   calls deep at most): the files it touches are the calling cell's.
4. A call whose path is not known (a loop variable, a value computed at run time, a file name
   that depends on a parameter's suffix) is reported as unresolved, with its line.
5. A writer's file is named as the library names it (files.written_name): `np.save("a")` writes
   `a.npy`; `savefig("f")` adds the format the notebook last set in `rcParams["savefig.format"]`
   (png unless set). For the calls resolved here, this pass replaces the cell walker's literal
   reading (with_paths).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from nb2pipe import model as m
from nb2pipe.infer.cells import CellFacts
from nb2pipe.infer.files import (
    DEFAULT_FIGURE_FORMAT,
    READ,
    WRITE,
    PathSite,
    clean_path,
    dotted_name,
    file_accesses,
    files_updated,
    path_sites,
    written_name,
)
from nb2pipe.infer.ipython import parse_cell_once
from nb2pipe.infer.values import Known, Opaque, Value, evaluate


@dataclass(frozen=True)
class CellPaths:
    """The files one cell touches, paths resolved: (path, READ | WRITE | UPDATE) in the order
    they run; and (line, what) for each call whose path only the run knows."""

    accesses: tuple[tuple[str, str], ...] = ()
    unresolved: tuple[tuple[int, str, str], ...] = ()  # (line, call, access)
    # the literal paths the cell walker finds for the calls resolved here (this pass knows better)
    shadowed: frozenset[str] = frozenset()


def parameter_template(name: str) -> str:
    return "${" + name + "}"


def resolve_cells(sources: Sequence[str], parameters: Mapping[str, Any]) -> list[CellPaths]:
    """The files each cell touches, for cells in notebook order run after the parameters cell."""
    env: dict[str, Value] = {
        name: Known(parameter_template(name), isinstance(value, str))
        for name, value in parameters.items()
        if isinstance(value, (str, int, float))
    }
    walk = _Walk(env)
    return [walk.cell(source) for source in sources]


def with_paths(facts: CellFacts, paths: CellPaths) -> CellFacts:
    """`facts` with the files `paths` found (resolved paths), keeping what only the cell walker
    sees (literal paths inside functions and magics)."""
    resolved = [(path, access) for path, access in paths.accesses]
    read = [p for p, access in resolved if access != WRITE]
    written = [p for p, access in resolved if access != READ]

    def literal(found: tuple[str, ...]) -> list[str]:  # what only the walker sees; `${` is no template
        return [p for p in found if "${" not in p and p not in paths.shadowed]

    return replace(
        facts,
        files_read=tuple(dict.fromkeys([*read, *literal(facts.files_read)])),
        files_written=tuple(dict.fromkeys([*written, *literal(facts.files_written)])),
        files_updated=tuple(dict.fromkeys([*files_updated(resolved), *literal(facts.files_updated)])),
    )


# --- walking the cells -------------------------------------------------------------------------

_NESTED_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_SIMPLE_BINDINGS = (ast.Assign, ast.AnnAssign, ast.AugAssign)


def _in_this_scope(node: ast.AST) -> Iterator[ast.AST]:
    """Every node under `node` that runs at module level, in source order: a function, lambda or
    class is there itself, with its decorators, but not its body."""
    for child in ast.iter_child_nodes(node):
        yield child
        if isinstance(child, _NESTED_SCOPES):
            for decorator in getattr(child, "decorator_list", []):
                yield decorator
                yield from _in_this_scope(decorator)
        else:
            yield from _in_this_scope(child)


_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _calls_as_they_run(node: ast.AST) -> Iterator[ast.Call]:
    """The calls under `node` that run at module level, a call's arguments before the call."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, _NESTED_SCOPES):
            for decorator in getattr(child, "decorator_list", []):
                yield from _calls_as_they_run(decorator)
                if isinstance(decorator, ast.Call):
                    yield decorator
            continue
        yield from _calls_as_they_run(child)
        if isinstance(child, ast.Call):
            yield child


def _bound_names(top: ast.Module) -> set[str]:
    """The module-level names the statements of `top` bind, anywhere in them (not a
    comprehension's targets, nor names local to a function or class body)."""
    nodes = list(_in_this_scope(top))
    comprehension_targets = {
        id(n) for c in nodes if isinstance(c, _COMPREHENSIONS) for g in c.generators for n in ast.walk(g.target)
    }
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load) and id(node) not in comprehension_targets:
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (*_DEFINITIONS, ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
    return names


def _with_targets(top: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in _in_this_scope(top):
        if isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if isinstance(item.optional_vars, ast.Name):
                    names.add(item.optional_vars.id)
    return names


def _declared_global(statement: ast.stmt) -> set[str]:
    """Names a function or class in `statement` declares `global`: a call may rebind them."""
    return {name for node in ast.walk(statement) if isinstance(node, ast.Global) for name in node.names}


class _Walk:
    """The environment carried from cell to cell, and what each cell's calls touch."""

    def __init__(self, env: dict[str, Value]) -> None:
        self.env = env
        self.volatile: set[str] = set()
        self.figure_format = DEFAULT_FIGURE_FORMAT
        self.functions: dict[str, ast.FunctionDef] = {}  # the notebook's own functions, by name
        self.calling: list[ast.Call] = []  # the calls of those functions being followed, outermost first

    def cell(self, source: str) -> CellPaths:
        try:
            tree, _ = parse_cell_once(source)
        except Exception:  # the cell walker reports what does not parse
            return CellPaths()
        self.accesses: list[tuple[str, str]] = []
        self.unresolved: list[tuple[int, str, str]] = []
        self.shadowed: set[str] = set()
        try:
            for statement in tree.body:
                self.statement(statement)
        except Exception:  # too deep (RecursionError), or a bug: the walker's literal paths stand, nothing is known after
            self.env.clear()
            return CellPaths()
        return CellPaths(tuple(self.accesses), tuple(self.unresolved), frozenset(self.shadowed))

    def statement(self, statement: ast.stmt) -> None:
        top = ast.Module(body=[statement], type_ignores=[])  # a def's body is not module level
        bound = _bound_names(top)
        rebound_by_calls = _declared_global(statement)
        self.volatile |= rebound_by_calls
        self.forget(rebound_by_calls)
        simple = isinstance(statement, (*_SIMPLE_BINDINGS, ast.Expr, ast.Return, ast.Raise, ast.Assert, ast.Delete))
        if not simple:  # a loop, a branch, a with block: what it binds is not one known value
            self.forget(bound)
        for call in _calls_as_they_run(top):
            if not self.calling:
                self.shadowed.update(path for _, path, _ in file_accesses(call))
            for site in path_sites(call):
                self.resolve(call, site)
            if isinstance(call.func, ast.Name) and call.func.id in self.functions:
                self.follow_call(call, self.functions[call.func.id])
        for name in bound:
            self.functions.pop(name, None)
        if isinstance(statement, ast.FunctionDef):
            self.functions[statement.name] = statement
        if simple:
            self.bind(statement, bound)
            self.figure_format = figure_format_set(statement) or self.figure_format
        for name in _with_targets(top):
            self.env[name] = Opaque.FILE

    def follow_call(self, call: ast.Call, function: ast.FunctionDef) -> None:
        """The files a call of the notebook's own function touches, as the calling cell's: its
        body walked with its parameters bound to the call's arguments (two calls deep at most)."""
        if len(self.calling) >= MAX_CALL_DEPTH:
            return
        outer, functions = self.env, dict(self.functions)
        self.env = {**outer, **_arguments(function.args, call, outer)}
        for name in _parameter_names(function.args):
            if name not in self.env or self.env[name] is None:
                self.env.pop(name, None)
        self.calling.append(call)
        try:
            for statement in function.body:
                self.statement(statement)
        finally:
            self.calling.pop()
            self.env, self.functions = outer, functions
            self.forget(self.volatile)  # what the function declares global it may have changed

    def figure_naming(self, naming: str) -> str:
        """savefig's default suffix is the figure format the notebook set (rcParams)."""
        return "." + self.figure_format if naming == "." + DEFAULT_FIGURE_FORMAT else naming

    def forget(self, names: set[str]) -> None:
        for name in names:
            self.env.pop(name, None)

    def bind(self, statement: ast.stmt, bound: set[str]) -> None:
        values: dict[str, Value] = {}
        if isinstance(statement, ast.Assign):
            value = evaluate(statement.value, self.env)
            for target in statement.targets:
                values.update(_assigned(target, statement.value, value, self.env))
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None and isinstance(statement.target, ast.Name):
            values[statement.target.id] = evaluate(statement.value, self.env)
        elif isinstance(statement, ast.AugAssign) and isinstance(statement.target, ast.Name):
            as_binary = ast.BinOp(ast.Name(statement.target.id, ast.Load()), statement.op, statement.value)
            values[statement.target.id] = evaluate(as_binary, self.env)
        self.forget(bound)
        for name, value in values.items():
            if value is not None and name not in self.volatile:
                self.env[name] = value

    def resolve(self, call: ast.Call, site: PathSite) -> None:
        accesses, unresolved = self.accesses, self.unresolved
        line = (self.calling[0] if self.calling else call).lineno  # the line of the cell that runs it
        if site.receiver_site is not None:
            receiver = evaluate(site.receiver_site.candidates[0], self.env)
            if (isinstance(receiver, Known) and receiver.is_text) or receiver is Opaque.PATH:
                site = site.receiver_site
        called = f"{dotted_name(call.func) or getattr(call.func, 'attr', 'a call')}()"
        for node in site.candidates:
            value = evaluate(node, self.env)
            if isinstance(value, Known) and value.is_text:
                path = clean_path(value.text)
                if path is not None:
                    name = written_name(path, self.figure_naming(site.naming))
                    if name is None:
                        what = f"the name of the file {called} writes (a parameter's value decides its suffix)"
                        unresolved.append((line, what, site.access))
                    else:
                        accesses.append((name, site.access))
                return
            if value is Opaque.FILE or isinstance(value, Known):
                if site.certain:
                    return
                continue
            if value is Opaque.PATH or site.certain:
                unresolved.append((line, f"the path given to {called}", site.access))
                return


MAX_CALL_DEPTH = 2


def _parameter_names(arguments: ast.arguments) -> list[str]:
    every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg]
    return [a.arg for a in every if a is not None]


def _arguments(arguments: ast.arguments, call: ast.Call, env: Mapping[str, Value]) -> dict[str, Value]:
    """A function's parameters bound to a call's arguments (a default where none is given; None,
    unknown, where a starred argument or a **mapping leaves it open)."""
    positional = [*arguments.posonlyargs, *arguments.args]
    bound: dict[str, Value] = {}
    defaults = dict(zip([a.arg for a in positional[len(positional) - len(arguments.defaults):]], arguments.defaults, strict=True))
    defaults.update({a.arg: d for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True) if d is not None})
    for name, default in defaults.items():
        bound[name] = evaluate(default, env)
    open_ended = any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords)
    for parameter, argument in zip(positional, call.args, strict=False):
        if isinstance(argument, ast.Starred):
            break
        bound[parameter.arg] = evaluate(argument, env)
    for keyword in call.keywords:
        if keyword.arg is not None:
            bound[keyword.arg] = evaluate(keyword.value, env)
    if open_ended:
        bound = {name: None for name in _parameter_names(arguments)}
    return bound


def figure_format_set(statement: ast.stmt) -> str | None:
    """The format `statement` makes matplotlib's default for savefig, if it sets one:
    `plt.rcParams["savefig.format"] = "svg"`, `plt.rc("savefig", format="svg")`,
    `mpl.rcParams.update({"savefig.format": "svg"})`."""
    if isinstance(statement, ast.Assign):
        for target in statement.targets:
            if isinstance(target, ast.Subscript) and _is_rc_params(target.value) and _text(target.slice) == "savefig.format":
                return _text(statement.value)
        return None
    call = statement.value if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call) else None
    if call is None or not isinstance(call.func, ast.Attribute):
        return None
    if call.func.attr == "rc" and call.args and _text(call.args[0]) == "savefig":
        return next((_text(k.value) for k in call.keywords if k.arg == "format"), None)
    if call.func.attr == "update" and _is_rc_params(call.func.value) and call.args and isinstance(call.args[0], ast.Dict):
        pairs = zip(call.args[0].keys, call.args[0].values, strict=True)
        return next((_text(v) for k, v in pairs if k is not None and _text(k) == "savefig.format"), None)
    return None


def _is_rc_params(node: ast.expr) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "rcParams") or (isinstance(node, ast.Name) and node.id == "rcParams")


def _text(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _assigned(target: ast.expr, node: ast.expr, value: Value, env: Mapping[str, Value]) -> dict[str, Value]:
    """Name -> value for an assignment target: a name, or a tuple unpacking a tuple of the same size."""
    if isinstance(target, ast.Name):
        return {target.id: value}
    if isinstance(target, (ast.Tuple, ast.List)) and isinstance(node, (ast.Tuple, ast.List)):
        plain = all(not isinstance(e, ast.Starred) for e in (*target.elts, *node.elts))
        if plain and len(target.elts) == len(node.elts):
            found: dict[str, Value] = {}
            for element, part in zip(target.elts, node.elts, strict=True):
                found.update(_assigned(element, part, evaluate(part, env), env))
            return found
    return {}


# --- a notebook plan's stages ------------------------------------------------------------------


@dataclass(frozen=True)
class Unresolved:
    """A call whose path only the run knows, in `cell` of `stage`."""

    stage: str
    cell: m.Cell
    line: int
    what: str
    access: str

    @property
    def warning(self) -> str:
        return (
            f"stage '{self.stage}', {self.cell.label}, line {self.line}: {self.what} is computed at run time, "
            "so nb2pipe cannot track that file; the stage runs after every earlier stage that writes files"
        )


def resolve_plan_paths(
    plan: m.NotebookPlan, stage_facts: Mapping[str, list[CellFacts]]
) -> tuple[dict[str, list[CellFacts]], list[Unresolved]]:
    """Each stage's cell facts with the paths held in variables and parameters resolved (see
    resolve_cells), and the calls whose paths cannot be known before the run. Declared files win:
    a path only the run knows that a stage writes (reads) is left to the stage's declared outs
    (deps) when it has any."""
    owner = {cell.number: (s.name, i) for s in plan.stages for i, cell in enumerate(s.code_cells)}
    cells = sorted([*plan.setup, *(c for s in plan.stages for c in s.code_cells)], key=lambda c: c.number)
    found = resolve_cells([c.source for c in cells], dict(plan.param_defaults))
    resolved = {name: list(facts) for name, facts in stage_facts.items()}
    unresolved: list[Unresolved] = []
    for cell, paths in zip(cells, found, strict=True):
        if cell.number not in owner:  # setup: only what it binds matters
            continue
        stage, index = owner[cell.number]
        resolved[stage][index] = with_paths(resolved[stage][index], paths)
        declared = next(s for s in plan.stages if s.name == stage)
        unresolved.extend(
            Unresolved(stage, cell, line, what, access)
            for line, what, access in paths.unresolved
            if not ((access == READ and declared.deps) or (access != READ and declared.outs))
        )
    return resolved, unresolved


def after_unknown_paths(
    plan: m.NotebookPlan, files: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]], unresolved: Sequence[Unresolved]
) -> dict[str, tuple[str, ...]]:
    """Per stage, the earlier stages it must run after because of a path only the run knows: a
    stage with such a path runs after every earlier stage that writes files; a stage reading
    files runs after every earlier stage writing a file whose path only the run knows. `files`
    is each stage's inferred (deps, outs)."""
    unknown = {u.stage for u in unresolved}
    unknown_writes = {u.stage for u in unresolved if u.access != READ}
    writes = {s.name for s in plan.stages if s.outs or files.get(s.name, ((), ()))[1]} | unknown_writes
    reads = {s.name for s in plan.stages if s.deps or files.get(s.name, ((), ()))[0]} | unknown
    after: dict[str, tuple[str, ...]] = {}
    for position, stage in enumerate(plan.stages):
        earlier = [s.name for s in plan.stages[:position]]
        found = [
            e for e in earlier
            if (stage.name in unknown and e in writes) or (e in unknown_writes and stage.name in reads)
        ]
        if found:
            after[stage.name] = tuple(found)
    return after
