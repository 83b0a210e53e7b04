"""Which calls change the objects passed to them, and which names share one object (the tables).

The cell walker (calls.py) asks four questions of a call or an assignment:
1. Does the call change its receiver (`rows.pop()`, `df.drop(..., inplace=True)`, `rng.normal()`)?
   Every call whose result is discarded does, unless its method is known to leave the receiver
   alone (`df.head()`, `a.dot(b)`): `RECEIVER_KEEPING_METHODS`.
2. Which arguments does it change? A notebook function: the parameters its body changes
   (`FunctionSummary`, built by the walker). A library function or method in the tables: the
   positions named there (`random.shuffle(x)`, `heapq.heappush(h, ...)`, `out=a`). A function or
   method known to change no argument (`len`, `np.mean`, `model.fit`): none. Anything else may
   change every argument: correct first, then cheap.
3. Which names does a value share an object with (`alias_roots`)? A name, a subscript, an attribute
   or a method result of X may be X or part of it (`g.reshape(2, 3)`, `rows[0]`, `df['x']`),
   unless the method copies or computes something new (`.copy()`, `.sum()`).
4. Is a name a module's (`np` for `numpy`)? Then `np.mean(a)` is a library function, not a method.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

# A changed argument: (its position, or None when it can only be passed by keyword; its keyword).
Slot = tuple[int | None, str]


@dataclass(frozen=True)
class FunctionSummary:
    """What calling a function does to its arguments: which of its parameters it changes."""

    changed: tuple[Slot, ...] = ()
    positional: int = 0  # how many parameters can be passed by position
    star_changed: bool = False  # *args: each extra positional argument is changed
    double_star_changed: bool = False  # **kwargs: each extra keyword argument is changed
    named_parameters: frozenset[str] = frozenset()  # every parameter name but *args and **kwargs
    returned: tuple[Slot, ...] = ()  # the parameters whose objects its result may be, or hold
    receiver_changed: bool = False  # a method that changes the object it is called on (`self`)

    def changed_arguments(self, call: ast.Call) -> list[ast.expr]:
        """The argument expressions of `call` whose objects the function changes."""
        return self._arguments(call, self.changed, self.star_changed, self.double_star_changed)

    def returned_arguments(self, call: ast.Call) -> list[ast.expr]:
        """The argument expressions of `call` whose objects its result may be, or hold."""
        return self._arguments(call, self.returned, False, False)

    def _arguments(self, call: ast.Call, slots: tuple[Slot, ...], star: bool, double_star: bool) -> list[ast.expr]:
        by_position = {index for index, _ in slots if index is not None}
        keywords = {name for _, name in slots}
        anything = bool(slots) or star or double_star
        found: list[ast.expr] = []
        for index, argument in enumerate(call.args):
            if isinstance(argument, ast.Starred):  # which parameters it fills is unknown
                if anything:
                    found.append(argument.value)
            elif index in by_position or (index >= self.positional and star):
                found.append(argument)
        for keyword in call.keywords:
            if keyword.arg is None:
                if anything:
                    found.append(keyword.value)
            elif keyword.arg in keywords or (double_star and keyword.arg not in self.named_parameters):
                found.append(keyword.value)
        return found


def summarize_function(arguments: ast.arguments, changed: set[str], returned: set[str]) -> FunctionSummary:
    """The summary of a def whose body changes the parameters in `changed` and returns (a part of)
    those in `returned`."""
    positional = [a.arg for a in (*arguments.posonlyargs, *arguments.args)]
    keyword_only = [a.arg for a in arguments.kwonlyargs]

    def slots(names: set[str]) -> tuple[Slot, ...]:
        found: list[Slot] = [(index, name) for index, name in enumerate(positional) if name in names]
        return tuple(found + [(None, name) for name in keyword_only if name in names])

    return FunctionSummary(
        changed=slots(changed),
        returned=slots(returned),
        positional=len(positional),
        star_changed=arguments.vararg is not None and arguments.vararg.arg in changed,
        double_star_changed=arguments.kwarg is not None and arguments.kwarg.arg in changed,
        named_parameters=frozenset(positional + keyword_only),
    )


def as_method(function: FunctionSummary) -> FunctionSummary:
    """A method's summary as its callers see it: `obj.m(a)` passes `obj` as the first parameter."""

    def shifted(slots: tuple[Slot, ...]) -> tuple[Slot, ...]:
        return tuple((None if index is None else index - 1, name) for index, name in slots if index != 0)

    return FunctionSummary(
        changed=shifted(function.changed),
        returned=shifted(function.returned),
        positional=max(function.positional - 1, 0),
        star_changed=function.star_changed,
        double_star_changed=function.double_star_changed,
        named_parameters=function.named_parameters,
        receiver_changed=any(index == 0 for index, _ in function.changed),
    )


def _changes(*slots: Slot) -> FunctionSummary:
    positional = max((i for i, _ in slots if i is not None), default=-1) + 1
    return FunctionSummary(changed=slots, positional=positional, named_parameters=frozenset(name for _, name in slots))


CHANGES_NOTHING = FunctionSummary()

# Library functions (by their full dotted name) that change an argument.
CHANGING_FUNCTIONS: dict[str, FunctionSummary] = {
    "random.shuffle": _changes((0, "x")),
    "numpy.random.shuffle": _changes((0, "x")),
    "numpy.copyto": _changes((0, "dst")),
    "numpy.put": _changes((0, "a")),
    "numpy.put_along_axis": _changes((0, "arr")),
    "numpy.place": _changes((0, "arr")),
    "numpy.putmask": _changes((0, "a")),
    "numpy.fill_diagonal": _changes((0, "a")),
    "heapq.heappush": _changes((0, "heap")),
    "heapq.heappop": _changes((0, "heap")),
    "heapq.heapify": _changes((0, "x")),
    "heapq.heappushpop": _changes((0, "heap")),
    "heapq.heapreplace": _changes((0, "heap")),
    "bisect.insort": _changes((0, "a")),
    "bisect.insort_left": _changes((0, "a")),
    "bisect.insort_right": _changes((0, "a")),
    "json.dump": _changes((1, "fp")),
    "pickle.dump": _changes((1, "file")),
    "marshal.dump": _changes((1, "file")),
    "operator.setitem": _changes((0, "a")),
    "operator.delitem": _changes((0, "a")),
    "builtins.next": _changes((0, "iterator")),
    "builtins.setattr": _changes((0, "obj")),
    "builtins.delattr": _changes((0, "obj")),
    "collections.deque.append": _changes((0, "self")),
}

# Modules whose functions change no argument, but for CHANGING_FUNCTIONS, `out=` and numpy's
# `ufunc.at`. A notebook's own modules are not here: calling into them may change anything.
ARGUMENT_KEEPING_MODULES = frozenset({
    "builtins", "IPython", "math", "cmath", "statistics", "json", "pickle", "marshal", "os", "re", "itertools",
    "functools", "collections", "string", "textwrap", "time", "datetime", "pathlib", "operator", "copy",
    "random", "heapq", "bisect", "decimal", "fractions", "typing", "dataclasses", "warnings", "pprint",
    "numpy", "pandas", "matplotlib", "seaborn", "sklearn", "scipy", "joblib", "hashlib", "base64", "glob",
    "shutil", "sys", "uuid", "struct", "csv", "io", "plotly", "statsmodels", "torch", "torchvision",
    "tensorflow", "keras", "xgboost", "lightgbm", "tqdm", "PIL", "scrapbook", "ipywidgets", "logging",
    "inspect", "platform", "enum", "numbers", "tempfile", "contextlib", "zipfile", "gzip", "urllib",
})

# Names that conventionally hold these modules, for a cell analysed without its notebook.
CONVENTIONAL_MODULES = {"np": "numpy", "pd": "pandas", "plt": "matplotlib.pyplot", "sns": "seaborn", "mpl": "matplotlib"}

# IPython's display helpers, always there in a notebook and changing nothing.
IPYTHON_NAMES = {"display": "IPython.display.display", "get_ipython": "IPython.get_ipython"}

# Methods that change the argument at this position whatever object they are called on.
ARGUMENT_CHANGING_METHODS: dict[str, FunctionSummary] = {
    "shuffle": _changes((0, "x")),  # random.Random / numpy Generator and RandomState
}

# Methods that change their receiver even when their result is used.
RECEIVER_CHANGING_METHODS = frozenset({
    "append", "extend", "insert", "remove", "pop", "popitem", "clear", "sort", "reverse", "update",
    "setdefault", "add", "discard", "difference_update", "intersection_update", "symmetric_difference_update",
    "appendleft", "extendleft", "popleft", "rotate", "fill", "resize", "itemset", "put", "setflags",
    "send", "write", "writelines", "writerow", "writerows", "seek", "truncate",
    # a random generator's draws move its state on
    "random", "randint", "randrange", "choice", "choices", "uniform", "gauss", "normal",
    "integers", "standard_normal", "binomial", "poisson", "permutation", "permuted", "rand", "randn",
    "random_sample", "exponential", "beta", "gamma", "multinomial", "multivariate_normal", "bytes",
    "getrandbits", "shuffle",
})

# Methods that leave their receiver as it was: a discarded result does not make them a change.
RECEIVER_KEEPING_METHODS = frozenset({
    "head", "tail", "describe", "info", "copy", "dot", "matmul", "sum", "mean", "median", "std", "var", "min",
    "max", "prod", "count", "nunique", "unique", "value_counts", "isna", "isnull", "notna", "notnull", "corr",
    "cov", "plot", "hist", "boxplot", "to_string", "to_csv", "to_json", "to_parquet", "to_pickle", "to_excel",
    "to_markdown", "to_html", "to_numpy", "to_dict", "to_list", "tolist", "query", "groupby", "agg",
    "aggregate", "round", "astype", "reshape", "get", "keys", "values", "items", "transpose", "any", "all",
    "argmax", "argmin", "cumsum", "nlargest", "nsmallest", "memory_usage", "equals", "format", "upper",
    "lower", "strip", "split", "join", "startswith", "endswith", "replace", "index", "find", "predict",
    "predict_proba", "score", "decision_function", "get_params", "savefig", "show", "display", "dtypes",
    "select_dtypes", "filter", "sort_values", "sort_index", "drop", "dropna", "fillna", "rename", "merge",
    "assign", "apply", "map", "pivot", "pivot_table", "melt", "explode", "duplicated", "drop_duplicates",
    "reset_index", "set_index", "isin", "between", "clip", "abs", "diff", "pct_change", "shift", "rolling",
    "resample", "mode", "quantile", "skew", "kurt", "idxmax", "idxmin", "flatten", "ravel", "squeeze",
    "mul", "add_prefix", "add_suffix", "where", "mask", "nonzero", "searchsorted", "item", "view",
})

# Methods known not to change their arguments (besides RECEIVER_KEEPING_METHODS).
ARGUMENT_KEEPING_METHODS = RECEIVER_KEEPING_METHODS | frozenset({
    "fit", "fit_transform", "transform", "inverse_transform", "partial_fit", "set_params", "scatter", "bar",
    "barh", "pie", "imshow", "contour", "contourf", "fill_between", "errorbar", "step", "stem", "axhline",
    "axvline", "text", "annotate", "legend", "set_title", "set_xlabel", "set_ylabel", "set_xticks",
    "set_yticks", "set_xticklabels", "set_yticklabels", "set_xlim", "set_ylim", "add_subplot", "suptitle",
    "colorbar", "grid", "append", "extend", "insert", "update", "add", "remove", "discard", "setdefault",
    "issubset", "issuperset", "union", "intersection", "difference", "symmetric_difference", "concat",
    "combine", "compare", "corrwith", "reindex", "reindex_like", "align", "encode", "decode", "write",
    "writerow", "writerows", "put", "integers", "normal", "uniform", "choice", "permutation", "random",
    "run_line_magic", "run_cell_magic", "system", "getoutput", "set", "loc", "iloc", "evaluate", "compile",
    "summary", "score_samples", "kneighbors", "get_n_splits", "get_feature_names_out", "predict_on_batch",
    "test_on_batch", "info", "debug", "warning", "error", "exception", "log", "critical",
})

# Methods whose result is a new object, never a view of the receiver or an element of it.
NEW_VALUE_METHODS = frozenset({
    "copy", "deepcopy", "tolist", "to_list", "to_dict", "to_json", "to_csv", "to_string", "item", "sum",
    "mean", "median", "std", "var", "min", "max", "prod", "count", "nunique", "describe", "dot", "matmul",
    "astype", "round", "cumsum", "value_counts", "corr", "cov", "isna", "isnull", "notna", "notnull",
    "equals", "any", "all", "argmax", "argmin", "format", "upper", "lower", "strip", "split", "join",
    "startswith", "endswith", "replace", "find", "index", "predict", "predict_proba", "score",
    "sort_values", "drop_duplicates", "reset_index", "merge", "assign", "pivot_table", "quantile",
})

# numpy functions whose result may be a view of their first argument.
VIEW_FUNCTIONS = frozenset({
    "numpy.asarray", "numpy.asanyarray", "numpy.reshape", "numpy.ravel", "numpy.transpose", "numpy.squeeze",
    "numpy.swapaxes", "numpy.moveaxis", "numpy.expand_dims", "numpy.atleast_1d", "numpy.atleast_2d",
    "numpy.atleast_3d", "numpy.diagonal", "numpy.broadcast_to", "numpy.flip", "numpy.fliplr", "numpy.flipud",
    "numpy.rot90", "numpy.split", "numpy.array_split", "numpy.hsplit", "numpy.vsplit",
})

# Builtins whose result holds the very elements of their arguments (iterating them hands those out).
# Not `iter`: advancing an iterator (`next(it)`) leaves what it iterates over as it was.
ELEMENT_SHARING_BUILTINS = frozenset({"enumerate", "zip", "reversed", "sorted", "filter"})

# Attributes that describe an object rather than hold a part of it: `f(x.shape[1])` cannot change x.
DESCRIBING_ATTRIBUTES = frozenset({
    "shape", "ndim", "size", "dtype", "dtypes", "nbytes", "itemsize", "empty", "__name__", "__class__", "__len__",
})


def library_function_summary(qualified: str) -> FunctionSummary | None:
    """What a library function does to its arguments; None when it is not known."""
    summary = CHANGING_FUNCTIONS.get(qualified)
    if summary is not None:
        return summary
    if qualified.startswith("numpy.") and qualified.endswith(".at"):
        return _changes((0, "a"))  # np.add.at(a, indices, values) works in place
    if _changes_in_place_by_name(qualified.rpartition(".")[2]):
        return _changes((0, "tensor"))  # torch.nn.init.normal_(w)
    if qualified.split(".", 1)[0] in ARGUMENT_KEEPING_MODULES:
        return CHANGES_NOTHING
    return None


def _changes_in_place_by_name(name: str) -> bool:
    """torch's convention: a name ending in one underscore (`add_`, `normal_`) works in place."""
    return name.endswith("_") and not name.endswith("__") and name.strip("_") != ""


def changes_its_receiver(method: str) -> bool:
    """Whether the method changes the object it is called on even when its result is used."""
    return method in RECEIVER_CHANGING_METHODS or _changes_in_place_by_name(method)


def method_summary(method: str) -> FunctionSummary | None:
    """What a method of an object that is not a module does to its arguments; None when unknown."""
    if method in ARGUMENT_CHANGING_METHODS:
        return ARGUMENT_CHANGING_METHODS[method]
    if method in ARGUMENT_KEEPING_METHODS:
        return CHANGES_NOTHING
    return None


def keyword_effects(call: ast.Call) -> tuple[bool, list[ast.expr]]:
    """(whether `inplace=True` is passed, the arguments given as `out=`): changes any call makes."""
    inplace = any(k.arg == "inplace" and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)
    outs = [k.value for k in call.keywords if k.arg == "out"]
    return inplace, outs
