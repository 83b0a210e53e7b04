"""Where a name in a cell resolves, and what reading, binding or changing it means for the cell.

The cell walker (walker.py) keeps a stack of scopes (module, class, function, comprehension):
1. At module level, loading a name that is not *definitely* bound earlier in the cell is a read.
   Binds inside branches, loops, `try` bodies and comprehensions are binds, but do not count as
   definite for the statements after them (`snapshot` / `restore`).
2. Function and comprehension scopes collect their loads, binds and mutations; when a scope ends,
   whatever is not local to it is handed to the enclosing scope (a function's free variables are
   what it reads). Class bodies run at once, so their loads are resolved on the spot.
3. While a top-level def or class is walked, the globals it reads and changes are noted for it,
   so that a stage using the definition can be given what the definition needs.
4. A name bound to a view or a part of another (`g2 = g.reshape(2, 3)`, `row = rows[0]`, `b = a`)
   is an alias of it in its scope (`Scope.aliases`): changing the alias changes what it aliases,
   until the alias is bound to something else.
"""

from __future__ import annotations

import builtins

# `_` is left out: interactive interpreters put the last result there.
BUILTIN_NAMES = frozenset(dir(builtins)) - {"_"}
# what IPython provides: never the notebook's data
IPYTHON_NAMES = frozenset({"get_ipython", "display", "__name__", "__file__", "In", "Out"})

MODULE, CLASS, FUNCTION, COMPREHENSION = "module", "class", "function", "comprehension"
VALUE, IMPORT, DEFINITION = "value", "import", "definition"  # what a bind binds


class Scope:
    """Names seen in one scope; `definite` is only used by ordered scopes."""

    __slots__ = (
        "aliases",
        "definite",
        "global_names",
        "kind",
        "loads",
        "mutated",
        "nonlocal_names",
        "parent",
        "returned",
        "stores",
    )

    def __init__(self, kind: str, parent: Scope | None):
        self.kind = kind
        self.parent = parent
        self.definite: set[str] = set()  # module/class: bound for sure so far
        self.loads: set[str] = set()  # function/comprehension: resolved at the end
        self.stores: set[str] = set()
        self.mutated: set[str] = set()
        self.global_names: set[str] = set()
        self.nonlocal_names: set[str] = set()
        self.aliases: dict[str, frozenset[str]] = {}  # name -> the names whose objects it may share
        self.returned: set[str] = set()  # function: names whose objects its result may be, or hold

    @property
    def outer(self) -> Scope:
        """The enclosing scope: every scope but the module's has one."""
        if self.parent is None:
            raise AssertionError("the module scope has no enclosing scope")
        return self.parent

    def enclosing_function_or_module(self) -> Scope:
        """Where free names of a nested function resolve: class bodies are skipped."""
        scope = self.outer
        while scope.kind == CLASS:
            scope = scope.outer
        return scope


class NameTracker:
    """The names one cell reads, binds and changes at module level, through its scopes."""

    def __init__(self) -> None:
        self.module = Scope(MODULE, None)
        self.scope = self.module
        self.reads: set[str] = set()
        self.builtin_reads: set[str] = set()  # builtin names read as globals: data, once a stage rebinds them
        self.binds: set[str] = set()
        self.mutates: set[str] = set()
        self.imports: set[str] = set()
        self.definitions: set[str] = set()
        self.warnings: list[str] = []
        self.understood = True
        self.current_definition: str | None = None  # top-level def/class being walked
        self.definition_reads: dict[str, set[str]] = {}
        self.definition_changes: dict[str, set[str]] = {}
        self.change_notes: dict[str, str] = {}  # global name -> how a call or an alias changed it

    def note_change(self, name: str, how: str) -> None:
        """Say how a global the cell does not assign to was changed (for `nb2pipe explain`)."""
        if name not in IPYTHON_NAMES:
            self.change_notes.setdefault(name, how)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.understood = False

    # -- the three things that can happen to a name -------------------------

    def load(self, name: str, scope: Scope | None = None) -> None:
        scope = self._past_classes(name, scope or self.scope)
        if scope is None:
            return
        if scope.kind == MODULE:
            self.module_load(name)
        else:
            scope.loads.add(name)

    def store(self, name: str, kind: str = VALUE, scope: Scope | None = None) -> None:
        scope = scope or self.scope
        (self.module if name in scope.global_names else scope).aliases.pop(name, None)  # bound anew
        if scope.kind == MODULE or name in scope.global_names:
            self.module_bind(name, kind, definite=scope.kind == MODULE)
        elif scope.kind == CLASS:
            scope.definite.add(name)
        else:
            scope.stores.add(name)

    def mutate(self, name: str, seen: frozenset[str] = frozenset()) -> None:
        """`name`'s object changes, and so do the objects it is an alias of."""
        scope = self._past_classes(name, self.scope)
        if scope is None:
            return
        if scope.kind == MODULE:
            self.module_mutate(name)
        else:
            scope.mutated.add(name)
            scope.loads.add(name)
        seen = seen | {name}
        for root in sorted(self.aliases_of(name, scope) - seen):
            if scope.kind == MODULE:
                self.note_change(root, f"changed through {name}, which shares its object")
            self.mutate(root, seen)

    def aliases_of(self, name: str, scope: Scope) -> frozenset[str]:
        """The names whose objects `name`, as seen from `scope`, may share."""
        current: Scope | None = scope
        while current is not None:
            if name in current.aliases:
                return current.aliases[name]
            if name in current.stores or name in current.global_names:
                break
            current = current.parent
        if current is not None and name in current.global_names:
            return self.module.aliases.get(name, frozenset())
        return frozenset()

    def _past_classes(self, name: str, scope: Scope) -> Scope | None:
        """The scope a use of `name` in `scope` reaches, past class bodies (they run at once,
        so their names resolve now); None when a class body itself holds the name."""
        while scope.kind == CLASS:
            if name in scope.global_names:
                scope = self.module
            elif name in scope.definite:
                return None
            else:
                scope = scope.outer
        return scope

    # -- module level -------------------------------------------------------

    def module_load(self, name: str, deferred: bool = False) -> None:
        """A read of a global; `deferred` when it happens later, inside a function. A builtin
        name is read apart (`builtin_reads`): it is the notebook's data only where a stage rebinds it."""
        if name in IPYTHON_NAMES:
            return
        if self.current_definition is not None:
            if deferred and name == self.current_definition:
                return  # recursion, or a method naming its own class
            if name != self.current_definition:
                self.definition_reads[self.current_definition].add(name)
        if name not in self.module.definite:
            (self.builtin_reads if name in BUILTIN_NAMES else self.reads).add(name)

    def module_bind(self, name: str, kind: str = VALUE, definite: bool = True) -> None:
        self.binds.add(name)
        if kind == IMPORT:
            self.imports.add(name)
        elif kind == DEFINITION:
            self.definitions.add(name)
        if definite:
            self.module.definite.add(name)
        elif self.current_definition is not None:  # `global x; x = ...` in a function
            self.definition_changes[self.current_definition].add(name)

    def module_mutate(self, name: str, deferred: bool = False) -> None:
        if name in IPYTHON_NAMES:
            return  # a builtin name is changed data only where a stage rebound it (infer/flow.py)
        self.mutates.add(name)
        self.module_load(name, deferred)
        if self.current_definition is not None and name != self.current_definition:
            self.definition_changes[self.current_definition].add(name)

    # -- scopes ---------------------------------------------------------------

    def open_scope(self, kind: str) -> Scope:
        self.scope = Scope(kind, self.scope)
        return self.scope

    def close_function_scope(self, scope: Scope) -> None:
        """Hand what a function or comprehension did not bind itself to its encloser."""
        self.scope = scope.outer
        local = scope.stores - scope.global_names - scope.nonlocal_names
        target = scope.enclosing_function_or_module()
        for name in scope.loads - local:
            if name in scope.global_names or target.kind == MODULE:
                self.module_load(name, deferred=scope.kind == FUNCTION)
            else:
                target.loads.add(name)
        for name in scope.mutated - local:
            if name in scope.global_names or target.kind == MODULE:
                self.module_mutate(name, deferred=scope.kind == FUNCTION)
            else:
                target.mutated.add(name)
                target.loads.add(name)

    def snapshot(self) -> tuple[Scope, set[str]]:
        return self.scope, set(self.scope.definite)

    @staticmethod
    def restore(snapshot: tuple[Scope, set[str]], keep: set[str] | None = None) -> None:
        """Forget binds made since the snapshot, except those also in `keep`."""
        scope, before = snapshot
        scope.definite = set(before) if keep is None else before | (scope.definite & keep)

    def begin_definition(self, name: str) -> bool:
        """Attribute module-level reads to `name` while a top-level def/class is walked."""
        if self.scope.kind != MODULE or self.current_definition is not None:
            return False
        self.current_definition = name
        self.definition_reads[name] = set()
        self.definition_changes[name] = set()
        return True

    def end_definition(self, began: bool) -> None:
        if began:
            self.current_definition = None
