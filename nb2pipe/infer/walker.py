"""The walk over one parsed cell: every Python construct, in execution order, and the magics.

One pass with :class:`CellWalker` (an `ast.NodeVisitor` on top of scopes.NameTracker):
1. Statements are visited in the order they run; branches, loops and `try` bodies bind names that
   do not count as definite after them.
2. Comprehensions, lambdas, functions and classes open scopes of their own (scopes.py).
3. Mutations are noted on the way: subscript and attribute targets, and method calls whose result
   is discarded. Calls are checked for literal file paths (files.py) and for constructs that
   defeat the analysis (`exec`, `globals()`, star imports...).
4. Code run by code magics (`%time`, `%%capture`, ...) is analysed in place, as if it had been
   written there; shell lines and other magics only read the names they expand (`$x`, `{x}`).
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

from nb2pipe.infer.calls import NO_CONTEXT, CallContext, CallEffects
from nb2pipe.infer.files import UPDATE, WRITE, file_accesses, magic_file_argument, root_name
from nb2pipe.infer.ipython import (
    CELL_MAGICS_WITHOUT_PYTHON,
    MAGICS_RUNNING_CODE_APART,
    MAGICS_RUNNING_CODE_HERE,
    expanded_names,
    ipython_method,
    magic_output_name,
    parse_cell,
    parse_magic_line,
    string_arguments,
    syntax_warning,
)
from nb2pipe.infer.scopes import CLASS, COMPREHENSION, DEFINITION, FUNCTION, IMPORT, MODULE, Scope

CALLS_THAT_HIDE_VARIABLES = frozenset({"exec", "eval", "globals", "locals"})


def _parameter_names(arguments: ast.arguments) -> set[str]:
    names = {a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)}
    names.update(a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None)
    return names


_SETUP_STATEMENTS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                     ast.ClassDef, ast.Pass)


class CellWalker(CallEffects, ast.NodeVisitor):
    """One pass over a parsed cell, collecting what cells.CellFacts holds."""

    def __init__(self, context: CallContext = NO_CONTEXT) -> None:
        super().__init__(context)
        self.files: list[tuple[int, int, str, str]] = []  # (line, column, path, READ | WRITE | UPDATE)
        self.line_offset = 0
        self.magic_is_setup: bool | None = None

    # -- statements in order ----------------------------------------------

    def visit_statements(self, statements: list[ast.stmt]) -> bool:
        """Visit a top-level statement list; tell whether it is all setup code."""
        all_setup = True
        for statement in statements:
            self.magic_is_setup = None
            self.visit(statement)
            all_setup = all_setup and self.is_setup_statement(statement)
        return all_setup

    def is_setup_statement(self, statement: ast.stmt) -> bool:
        if isinstance(statement, _SETUP_STATEMENTS):
            return True
        if isinstance(statement, ast.Expr):
            value = statement.value
            if isinstance(value, ast.Constant):
                return True
            if isinstance(value, ast.Call) and ipython_method(value) is not None:
                return True if self.magic_is_setup is None else self.magic_is_setup
        return False

    def visit_body(self, statements: list[ast.stmt]) -> None:
        for statement in statements:
            self.visit(statement)

    # -- names, targets, mutation ----------------------------------------------

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.load(node.id)
        else:  # Store, or Del: deleting changes the value too
            self.store(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.visit(node.value)
        if not isinstance(node.ctx, ast.Load):
            self.mutate_root_of(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        self.visit(node.value)
        self.visit(node.slice)
        if not isinstance(node.ctx, ast.Load):
            self.mutate_root_of(node)

    def mutate_root_of(self, node: ast.expr) -> None:
        root = root_name(node)
        if root is not None:
            self.mutate(root)

    def visit_Expr(self, node: ast.Expr) -> None:
        self.visit(node.value)
        value = node.value.value if isinstance(node.value, ast.Await) else node.value
        if isinstance(value, ast.Call):
            self.note_discarded_call(value)  # result discarded: called for effect

    def visit_Return(self, node: ast.Return) -> None:
        if node.value is not None:
            self.visit(node.value)
            self.note_return(node.value)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        roots = self.alias_roots(node.value)
        for target in node.targets:
            self.visit(target)
        self.bind_assignment_aliases(node.targets, node.value, roots)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            name = node.target.id
            self.load(name)
            self.augmented_name(name)
            shared = self.aliases_of(name, self.scope)
            self.store(name)
            self.bind_aliases(node.target, set(shared))  # still the same object
        else:
            self.visit(node.target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if self.scope.kind in (MODULE, CLASS):  # evaluated only outside functions
            self.visit(node.annotation)
        if node.value is not None:
            self.visit(node.value)
            self.visit(node.target)
            self.bind_aliases(node.target, self.alias_roots(node.value))
        elif isinstance(node.target, ast.Name) and self.scope.kind == FUNCTION:
            self.scope.stores.add(node.target.id)  # `x: int` makes x local

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        scope = self.scope
        while scope.kind == COMPREHENSION:  # walrus binds outside comprehensions
            scope = scope.outer
        self.store(node.target.id, scope=scope)
        if scope is self.scope:
            self.bind_aliases(node.target, self.alias_roots(node.value))

    def visit_Global(self, node: ast.Global) -> None:
        if self.scope.kind != MODULE:
            self.scope.global_names.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.scope.nonlocal_names.update(node.names)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            name = alias.asname or alias.name.partition(".")[0]
            self.store(name, IMPORT)
            self.note_import(name, alias.name if alias.asname else name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module == "__future__":
            return
        for alias in node.names:
            if alias.name == "*":
                module = "." * (node.level or 0) + (node.module or "")
                self.warn(f"star import from {module}; names it brings cannot be followed")
            else:
                self.store(alias.asname or alias.name, IMPORT)
                self.note_import(alias.asname or alias.name, "." * (node.level or 0) + f"{node.module or ''}.{alias.name}")

    # -- control flow: binds in branches are not definite -------------------------

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        self._one_branch_of_two(lambda: self.visit_body(node.body), lambda: self.visit_body(node.orelse))

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self.visit(node.test)
        self._one_branch_of_two(lambda: self.visit(node.body), lambda: self.visit(node.orelse))

    def _one_branch_of_two(self, first: Callable[[], None], second: Callable[[], None]) -> None:
        """Walk both branches from the same start; a name is bound for sure only if both bind it."""
        before = self.snapshot()
        first()
        after_first = set(self.scope.definite)
        self.restore(before)
        second()
        self.restore(before, keep=after_first)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        self.visit(node.values[0])
        before = self.snapshot()
        for value in node.values[1:]:
            self.visit(value)
        self.restore(before)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        before = self.snapshot()
        self.visit(node.target)
        self.bind_aliases(node.target, self.alias_roots(node.iter))  # its elements
        self.visit_body(node.body)
        self.visit_body(node.orelse)
        self.restore(before)

    visit_AsyncFor = visit_For

    def visit_While(self, node: ast.While) -> None:
        self.visit(node.test)
        before = self.snapshot()
        self.visit_body(node.body)
        self.visit_body(node.orelse)
        self.restore(before)

    def visit_Try(self, node: ast.Try | ast.TryStar) -> None:
        before = self.snapshot()
        self.visit_body(node.body)
        self.visit_body(node.orelse)
        bound_on_every_path = set(self.scope.definite)
        for handler in node.handlers:
            self.restore(before)
            self.visit(handler)
            bound_on_every_path &= self.scope.definite
        self.restore(before, keep=bound_on_every_path)
        self.visit_body(node.finalbody)

    visit_TryStar = visit_Try

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.store(node.name)
        self.visit_body(node.body)

    def visit_Match(self, node: ast.Match) -> None:
        self.visit(node.subject)
        before = self.snapshot()
        for case in node.cases:
            self.restore(before)
            self.visit(case.pattern)
            if case.guard is not None:
                self.visit(case.guard)
            self.visit_body(case.body)
        self.restore(before)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name:
            self.store(node.name)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.store(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        self.generic_visit(node)
        if node.rest:
            self.store(node.rest)

    # -- comprehensions, lambdas, functions, classes ------------------------------

    def visit_comprehension_node(self, generators: list[ast.comprehension], results: list[ast.expr]) -> None:
        first = generators[0]
        self.visit(first.iter)  # the first iterable is evaluated outside
        before = self.snapshot()
        scope = self.open_scope(COMPREHENSION)
        for index, generator in enumerate(generators):
            if index:
                self.visit(generator.iter)
            self.visit(generator.target)
            self.bind_aliases(generator.target, self.alias_roots(generator.iter))  # its elements
            for condition in generator.ifs:
                self.visit(condition)
        for result in results:
            self.visit(result)
        self.close_function_scope(scope)
        self.restore(before)  # a walrus inside may run zero times

    def visit_ListComp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp) -> None:
        self.visit_comprehension_node(node.generators, [node.elt])

    visit_SetComp = visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self.visit_comprehension_node(node.generators, [node.key, node.value])

    def visit_defaults(self, arguments: ast.arguments) -> None:
        for default in (*arguments.defaults, *arguments.kw_defaults):
            if default is not None:
                self.visit(default)

    def visit_annotations(self, arguments: ast.arguments, returns: ast.expr | None) -> None:
        every = (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                 arguments.vararg, arguments.kwarg)
        for argument in every:
            if argument is not None and argument.annotation is not None:
                self.visit(argument.annotation)
        if returns is not None:
            self.visit(returns)

    def open_type_parameter_scope(self, node: ast.AST) -> Scope | None:
        """Python 3.12 `def f[T]` / `class C[T]`: T is local to an annotation scope."""
        parameters = getattr(node, "type_params", None)
        if not parameters:
            return None
        scope = self.open_scope(FUNCTION)
        for parameter in parameters:
            scope.stores.add(parameter.name)
            self.generic_visit(parameter)
        return scope

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.visit_defaults(node.args)
        scope = self.open_scope(FUNCTION)
        scope.stores.update(_parameter_names(node.args))
        self.visit(node.body)
        self.close_function_scope(scope)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer = self.scope
        began = self.begin_definition(node.name)
        for decorator in node.decorator_list:
            self.visit(decorator)
        self.visit_defaults(node.args)
        type_scope = self.open_type_parameter_scope(node)
        self.visit_annotations(node.args, node.returns)
        self.store(node.name, DEFINITION, scope=outer)  # bound before any call
        scope = self.open_scope(FUNCTION)
        scope.stores.update(_parameter_names(node.args))
        self.visit_body(node.body)
        self.close_function_scope(scope)
        self.note_function(node, outer, scope)
        if type_scope is not None:
            self.close_function_scope(type_scope)
        self.end_definition(began)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        outer = self.scope
        began = self.begin_definition(node.name)
        for decorator in node.decorator_list:
            self.visit(decorator)
        type_scope = self.open_type_parameter_scope(node)
        for base in node.bases:
            self.visit(base)
        for keyword in node.keywords:
            self.visit(keyword.value)
        body_scope = self.open_scope(CLASS)
        self.visit_body(node.body)
        self.scope = body_scope.outer
        if type_scope is not None:
            self.close_function_scope(type_scope)
        self.store(node.name, DEFINITION, scope=outer)  # bound after its body ran
        self.end_definition(began)

    def visit_TypeAlias(self, node: Any) -> None:  # Python 3.12 `type X[T] = ...` (ast.TypeAlias)
        self.store(node.name.id)
        type_scope = self.open_type_parameter_scope(node) or self.open_scope(FUNCTION)
        self.visit(node.value)
        self.close_function_scope(type_scope)

    # -- calls: hazards, files, IPython ----------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        self.note_hidden_variables(node)
        for path_node, path, access in file_accesses(node):
            line = self.line_offset + getattr(path_node, "lineno", 0)
            self.files.append((line, getattr(path_node, "col_offset", 0), path, access))
        self.generic_visit(node)
        self.note_call_effects(node)
        method = ipython_method(node)
        if method is not None:
            self.follow_ipython_call(node, method)

    def note_hidden_variables(self, node: ast.Call) -> None:
        func = node.func
        if not isinstance(func, ast.Name):
            return
        if func.id in CALLS_THAT_HIDE_VARIABLES or (func.id == "vars" and not node.args):
            self.warn(f"uses {func.id}(); variables it touches cannot be followed")

    def follow_ipython_call(self, node: ast.Call, method: str) -> None:
        arguments = string_arguments(node)
        if not arguments:
            return
        if method in ("system", "getoutput"):
            self.load_expanded_names(arguments[0])
        elif method == "run_line_magic" and len(arguments) >= 2:
            self.follow_line_magic(node, arguments[0], arguments[1])
        elif method == "run_cell_magic" and len(arguments) >= 3:
            self.follow_cell_magic(node, *arguments[:3])

    def load_expanded_names(self, text: str) -> None:
        for name in expanded_names(text):
            self.load(name)

    def follow_line_magic(self, node: ast.Call, name: str, line: str) -> None:
        if name in MAGICS_RUNNING_CODE_HERE or name in MAGICS_RUNNING_CODE_APART:
            self.follow_magic_code(node, name, line, node.lineno - 1, parse_magic_line)
            return
        self.load_expanded_names(line)
        if name == "run":
            self.warn("runs another file with %run; names it brings cannot be followed")
        elif name == "store" and "-r" in line.split():
            self.warn("restores variables with %store -r; names it brings cannot be followed")

    def follow_cell_magic(self, node: ast.Call, name: str, line: str, body: str) -> None:
        self.load_expanded_names(line)
        if name in MAGICS_RUNNING_CODE_HERE or name in MAGICS_RUNNING_CODE_APART:
            if name == "capture" and (output := magic_output_name(line)):
                self.store(output)
            self.follow_magic_code(node, name, body, node.lineno, parse_cell)
        elif name in ("writefile", "file"):
            path = magic_file_argument(line)
            if path:
                access = UPDATE if {"-a", "--append"} & set(line.split()) else WRITE
                self.files.append((self.line_offset + node.lineno, node.col_offset, path, access))
        elif name not in CELL_MAGICS_WITHOUT_PYTHON:
            self.warn(f"cell magic %%{name} runs code that cannot be followed")

    def follow_magic_code(self, node: ast.Call, name: str, code: str, line_offset: int, parse: Callable[[str], ast.Module]) -> None:
        """Analyse the Python a magic runs as if it stood where the magic is."""
        try:
            tree = parse(code)
        except (SyntaxError, ValueError) as error:
            self.warn(syntax_warning(error, self.line_offset + line_offset))
            return
        saved_offset = self.line_offset
        self.line_offset += line_offset
        try:
            if name in MAGICS_RUNNING_CODE_APART:
                scope = self.open_scope(FUNCTION)
                self.visit_body(tree.body)
                self.close_function_scope(scope)
                is_setup = False
            else:
                is_setup = self.visit_statements(tree.body)
        finally:
            self.line_offset = saved_offset
        self.magic_is_setup = is_setup

    # -- cheap leaves ---------------------------------------------------------------

    def visit_Constant(self, node: ast.Constant) -> None:
        pass
