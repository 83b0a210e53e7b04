"""What calls and assignments change beyond their own targets: arguments, receivers and aliases.

`CallEffects` extends the name tracker (scopes.py) for the cell walker (walker.py):
1. A call changes the arguments its callee changes (mutators.py): a notebook function's summary
   (which parameters its body changes, built when its def is walked), a library table, or, for a
   callee nobody knows, every argument. `out=` arguments always change; `inplace=True` changes the
   receiver, as does a method that changes its receiver by nature (`rows.pop()`).
2. An assignment, a `for` or comprehension target, a walrus or an augmented assignment binds an
   alias when its value may share an object with a name (`alias_roots`): a subscript, attribute
   or method result of it, a numpy view, or what a notebook function returns of its arguments.
   Changing the alias then changes that name (scopes.py).
3. What a cell leaves for the next cells (`CallContext`): which names hold modules or notebook
   functions, and the aliases still in force (within a stage).
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass

from nb2pipe.infer.mutators import (
    CONVENTIONAL_MODULES,
    DESCRIBING_ATTRIBUTES,
    ELEMENT_SHARING_BUILTINS,
    IPYTHON_NAMES,
    NEW_VALUE_METHODS,
    RECEIVER_KEEPING_METHODS,
    VIEW_FUNCTIONS,
    FunctionSummary,
    as_method,
    changes_its_receiver,
    keyword_effects,
    library_function_summary,
    method_summary,
    summarize_function,
)
from nb2pipe.infer.scopes import CLASS, FUNCTION, MODULE, VALUE, NameTracker, Scope


def _short(node: ast.expr, limit: int = 40) -> str:
    text = ast.unparse(node)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# What a name holds, for a call through it: a module or library object (its dotted name), a
# notebook function (what it changes), or None (a value or class: calling it may change anything).
Callee = str | FunctionSummary | None


@dataclass(frozen=True)
class CallContext:
    """What the cells before a cell left for its calls and aliases."""

    callees: tuple[tuple[str, Callee], ...] = ()
    aliases: tuple[tuple[str, frozenset[str]], ...] = ()
    # method name -> what the notebook's classes' methods of that name change (None: they differ)
    methods: tuple[tuple[str, FunctionSummary | None], ...] = ()


NO_CONTEXT = CallContext()


class CallEffects(NameTracker):
    """The name tracker, plus the changes calls and aliases make."""

    def __init__(self, context: CallContext = NO_CONTEXT) -> None:
        super().__init__()
        self.callees: dict[str, Callee] = dict(context.callees)
        self.module.aliases.update(context.aliases)
        self.bound_callees: dict[str, Callee] = {}  # names this cell binds at module level
        self.methods: dict[str, FunctionSummary | None] = dict(context.methods)
        self.defined_methods: dict[str, FunctionSummary | None] = {}  # methods of this cell's classes

    def module_bind(self, name: str, kind: str = VALUE, definite: bool = True) -> None:
        super().module_bind(name, kind, definite)
        self.set_callee(name, None)

    def set_callee(self, name: str, callee: Callee) -> None:
        self.callees[name] = callee
        self.bound_callees[name] = callee

    # -- what a name holds, when called --------------------------------------------------------

    def callee_of(self, name: str) -> Callee:
        scope: Scope = self.scope
        while scope.kind != MODULE:
            if name in scope.global_names:
                break
            if name in scope.stores or (scope.kind == CLASS and name in scope.definite):
                return None  # a local name: a value
            scope = scope.outer
        if name in self.callees:
            return self.callees[name]
        if name in IPYTHON_NAMES:
            return IPYTHON_NAMES[name]
        if name in CONVENTIONAL_MODULES:
            return CONVENTIONAL_MODULES[name]
        return f"builtins.{name}" if hasattr(builtins, name) else None

    def qualified_name(self, node: ast.expr) -> str | None:
        """`np.random.shuffle` -> 'numpy.random.shuffle' when `np` holds a module or library object."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        held = self.callee_of(node.id)
        if not isinstance(held, str):
            return None
        return ".".join([held, *reversed(parts)])

    def call_summary(self, call: ast.Call) -> tuple[FunctionSummary | None, ast.expr | None, str]:
        """(what the callee changes among its arguments, None when unknown; the receiver of a
        method call, else None; the method's name, else '')."""
        func = call.func
        if isinstance(func, ast.Name):
            held = self.callee_of(func.id)
            if isinstance(held, FunctionSummary):
                return held, None, ""
            return (library_function_summary(held) if held else None), None, ""
        if isinstance(func, ast.Attribute):
            qualified = self.qualified_name(func)
            if qualified is not None:
                return library_function_summary(qualified), None, ""
            if func.attr in self.methods:  # the notebook's own method: what it changes, or unknown
                return self.methods[func.attr], func.value, func.attr
            return method_summary(func.attr), func.value, func.attr
        return None, None, ""

    # -- changes -------------------------------------------------------------------------------

    def note_call_effects(self, call: ast.Call) -> None:
        summary, receiver, method = self.call_summary(call)
        inplace, outs = keyword_effects(call)
        callee = f"{_short(call.func)}()"
        changed = [(out, f"given as out= to {callee}") for out in outs]
        if summary is None:  # unknown: it may change whatever it is given
            arguments = [a.value if isinstance(a, ast.Starred) else a for a in call.args]
            arguments += [k.value for k in call.keywords if k.arg != "out"]
            changed += [(a, f"passed to {callee}, which nb2pipe does not know: it may change it") for a in arguments]
        else:
            changed += [(a, f"passed to {callee}, which changes it") for a in summary.changed_arguments(call)]
        changes_receiver = inplace or changes_its_receiver(method) or (summary is not None and summary.receiver_changed)
        if receiver is not None and changes_receiver:
            changed.append((receiver, f"{callee} changes it" + (" (inplace=True)" if inplace else "")))
        elif receiver is None and inplace and call.args:
            changed.append((call.args[0], f"passed to {callee} with inplace=True"))
        for expression, how in changed:
            self.change_roots_of(expression, how)

    def note_discarded_call(self, call: ast.Call) -> None:
        """A method called for its effect changes its receiver, unless it is known not to."""
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr not in RECEIVER_KEEPING_METHODS:
            self.change_roots_of(func.value)

    def change_roots_of(self, expression: ast.expr, how: str = "") -> None:
        for root in sorted(self.alias_roots(expression)):
            if how and self.scope.kind == MODULE:
                self.note_change(root, how)
            self.mutate(root)

    # -- aliases -------------------------------------------------------------------------------

    def alias_roots(self, node: ast.expr) -> set[str]:
        """The names whose objects the value of `node` may be, or be part of."""
        if isinstance(node, ast.Name):
            return {node.id}
        if isinstance(node, ast.Attribute) and node.attr in DESCRIBING_ATTRIBUTES:
            return set()
        if isinstance(node, (ast.Subscript, ast.Attribute, ast.Starred)):
            return self.alias_roots(node.value)
        if isinstance(node, ast.NamedExpr):
            return self.alias_roots(node.value)
        if isinstance(node, ast.IfExp):
            return self.alias_roots(node.body) | self.alias_roots(node.orelse)
        if isinstance(node, ast.BoolOp):
            return set().union(*(self.alias_roots(v) for v in node.values))
        if isinstance(node, ast.Call):
            return self.call_result_roots(node)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):  # a display holds the objects themselves
            return set().union(*(self.alias_roots(e) for e in node.elts))
        if isinstance(node, ast.Dict):
            return set().union(*(self.alias_roots(v) for v in node.values))
        return set()

    def call_result_roots(self, call: ast.Call) -> set[str]:
        func = call.func
        if isinstance(func, ast.Name) and isinstance(held := self.callee_of(func.id), FunctionSummary):
            return set().union(*(self.alias_roots(a) for a in held.returned_arguments(call)))
        qualified = self.qualified_name(func) if isinstance(func, (ast.Name, ast.Attribute)) else None
        if qualified in VIEW_FUNCTIONS and call.args:
            return self.alias_roots(call.args[0])
        if qualified is not None and qualified.startswith("builtins.") and qualified[9:] in ELEMENT_SHARING_BUILTINS:
            return set().union(*(self.alias_roots(a) for a in call.args))
        if qualified is None and isinstance(func, ast.Attribute) and func.attr not in NEW_VALUE_METHODS:
            return self.alias_roots(func.value)  # a method's result may be a view of its object
        return set()

    def bind_aliases(self, target: ast.expr, roots: set[str]) -> None:
        """After `target` was bound to a value sharing objects with `roots`."""
        if isinstance(target, ast.Name):
            scope = self.module if target.id in self.scope.global_names else self.scope
            shared = frozenset(roots - {target.id})
            if shared and scope.kind != CLASS:
                scope.aliases[target.id] = shared
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self.bind_aliases(element, roots)
        elif isinstance(target, ast.Starred):
            self.bind_aliases(target.value, roots)

    def bind_assignment_aliases(self, targets: list[ast.expr], value: ast.expr, roots: set[str]) -> None:
        for target in targets:
            pairs = (
                isinstance(target, (ast.Tuple, ast.List))
                and isinstance(value, (ast.Tuple, ast.List))
                and len(target.elts) == len(value.elts)
                and not any(isinstance(e, ast.Starred) for e in (*target.elts, *value.elts))
            )
            if pairs:
                assert isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List))
                for element, part in zip(target.elts, value.elts, strict=True):
                    self.bind_aliases(element, self.alias_roots(part))
            else:
                self.bind_aliases(target, roots)

    def note_return(self, value: ast.expr) -> None:
        """`return value` in a function: the names (and what they alias) its result may share."""
        if self.scope.kind != FUNCTION:
            return
        pending, found = list(self.alias_roots(value)), set()
        while pending:
            name = pending.pop()
            if name not in found:
                found.add(name)
                pending.extend(self.scope.aliases.get(name, ()))
        self.scope.returned |= found

    def augmented_name(self, name: str) -> None:
        """`name += ...` may change its object in place (lists, arrays): what it aliases changes,
        and inside a function, a parameter so changed is changed for the caller."""
        if self.scope.kind != MODULE and name not in self.scope.global_names:
            self.mutate(name)
        else:
            for root in sorted(self.aliases_of(name, self.scope) - {name}):
                self.note_change(root, f"changed through {name}, which shares its object")
                self.mutate(root, frozenset({name}))

    # -- what the cell leaves for the next ones -------------------------------------------------

    def note_import(self, name: str, target: str) -> None:
        if self.scope.kind == MODULE:
            self.set_callee(name, target)

    def note_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, outer: Scope, body: Scope) -> None:
        """A top-level def or a method of a top-level class: what calling it changes among its arguments."""
        summary = summarize_function(node.args, body.mutated, body.returned)
        if outer.kind == MODULE:
            self.set_callee(node.name, summary)
        elif outer.kind == CLASS and outer.outer.kind == MODULE:
            if not any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list):
                summary = as_method(summary)
            merged = summary if self.methods.get(node.name, summary) == summary else None  # two differ: unknown
            self.methods[node.name] = self.defined_methods[node.name] = merged
