"""Code that prepares every stage, and code that prepares the environment once: which is which.

A notebook run top to bottom configures its kernel once (`plt.rc(...)`, `pd.set_option(...)`,
`%matplotlib inline`, `warnings.filterwarnings(...)`) and every later cell sees it; a pipeline
starts a fresh kernel per stage, so such statements must run at the top of every stage that comes
after them. Installing packages (`%pip install`, `!pip install -r requirements.txt`) changes the
environment all stages share and must not run per stage at all.

1. Parse the cell (IPython syntax rewritten by infer.ipython); a line IPython runs through
   automagic (`pip install x`) is recognised by its text.
2. Sort each top-level statement: import, definition, configuration (the calls and assignments
   listed below, resolved through the cell's import aliases and the usual ones), install, a line
   magic, an `assert` about imported modules, or other code (shell commands and cell magics too).
3. A cell is setup when it holds no other code. `replay_source` is what a later stage needs to
   see the cell's configuration: the cell's imports and its configuration statements, when these
   read nothing but imported modules and builtins.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import functools
import re
from dataclasses import dataclass

from nb2pipe import model as m

IMPORT, DEFINE, CONFIG, INSTALL, MAGIC, CHECK, OTHER = "import", "define", "config", "install", "magic", "check", "other"

# Calls that change how later cells print, plot or warn, by the full dotted name of what is called.
CONFIG_CALLS = frozenset(
    {
        *(f"{mod}.{fn}" for mod in ("matplotlib", "matplotlib.pyplot")
          for fn in ("rc", "rcdefaults", "rc_file", "rc_file_defaults", "style.use", "rcParams.update", "ion", "ioff")),
        "matplotlib.use", "matplotlib.pyplot.switch_backend",
        "pandas.set_option", "pandas.reset_option", "pandas.options.display.precision",
        "numpy.set_printoptions", "numpy.seterr",
        "warnings.filterwarnings", "warnings.simplefilter", "warnings.resetwarnings",
        *(f"seaborn.{fn}" for fn in ("set", "set_theme", "set_style", "set_context", "set_palette", "set_color_codes")),
        "torch.set_printoptions", "torch.set_default_dtype",
        "sklearn.set_config", "logging.basicConfig",
        "IPython.display.set_matplotlib_formats", "matplotlib_inline.backend_inline.set_matplotlib_formats",
    }
)  # fmt: skip
# Assigning into these (`plt.rcParams['figure.dpi'] = 120`, `pd.options.display.max_rows = 10`) configures.
CONFIG_TARGETS = ("matplotlib.rcParams", "matplotlib.pyplot.rcParams", "pandas.options")
# Magics that configure the kernel's display.
CONFIG_MAGICS = frozenset({"matplotlib", "config"})
# Magics and shell commands that install packages.
INSTALL_MAGICS = frozenset({"pip", "conda", "mamba", "micromamba"})
_INSTALL_COMMAND = re.compile(
    r"^\s*(?:sudo\s+)?(?:(?:\S*/)?python[\d.]*\s+-m\s+)?(?:pip[\d.]*|conda|mamba|micromamba|apt-get|apt|yum)\s+install\b"
)
# `pip install x` without `%` or `!`: IPython runs it through automagic; it is not Python.
_AUTOMAGIC_INSTALL = re.compile(r"^\s*(?:pip|conda|mamba)\s+install\b.*$", re.MULTILINE)
# The names notebooks give the libraries above, used when the cell itself does not import them.
USUAL_ALIASES = {
    "plt": "matplotlib.pyplot", "mpl": "matplotlib", "matplotlib": "matplotlib", "pd": "pandas", "pandas": "pandas",
    "np": "numpy", "numpy": "numpy", "sns": "seaborn", "seaborn": "seaborn", "warnings": "warnings",
    "torch": "torch", "sklearn": "sklearn", "logging": "logging",
}  # fmt: skip


@dataclass(frozen=True)
class SetupFacts:
    """How one cell's statements prepare stages or the environment."""

    kinds: tuple[str, ...]  # one per top-level statement (OTHER for a cell that does not parse)
    installs: tuple[str, ...]  # the install lines, as written
    configures: tuple[str, ...]  # the configuration statements, as written
    replay_source: str | None  # the cell's imports and configuration statements, for later stages; None: no configuration
    replay_needs: frozenset[str]  # names the configuration reads that the cell does not import (from setup, or parameters)

    @property
    def is_setup(self) -> bool:
        """Only imports, definitions, configuration, installs, magics and checks of imported modules."""
        return bool(self.kinds) and OTHER not in self.kinds

    @property
    def only_installs(self) -> bool:
        return bool(self.installs) and set(self.kinds) <= {INSTALL}


# A cell without any of these words configures, installs and checks nothing: it is not parsed here
# (infer.analyze_cell parses every cell once already; export must not parse it again).
_MAY_PREPARE = re.compile(
    r"\b(?:assert|rc\w*|style|use|ion|ioff|switch_backend|set\w*|reset\w*|options|filterwarnings|simplefilter"
    r"|resetwarnings|basicConfig|install)\b|%\s*(?:matplotlib|config)\b"
)
_NOTHING = SetupFacts((OTHER,), (), (), None, frozenset())


def is_setup_code(source: str, only_imports_and_definitions: bool) -> bool:
    """Whether a cell may run at the top of every stage: it only imports, defines, configures,
    installs (taken out later), runs line magics or checks imported modules. Shell commands and
    cell magics do work. `only_imports_and_definitions` is infer.analyze_cell's verdict, enough
    for a cell with none of the words and escapes above."""
    if not (_MAY_PREPARE.search(source) or "!" in source or "%" in source):
        return only_imports_and_definitions
    return _setup_facts(source).is_setup


def setup_facts(source: str) -> SetupFacts:
    """The SetupFacts of a cell's source; never raises. A cell that only imports and defines is
    not setup here unless it also configures, installs or checks (infer.analyze_cell says it is)."""
    return _setup_facts(source) if _MAY_PREPARE.search(source) else _NOTHING


@functools.lru_cache(maxsize=2048)
def _setup_facts(source: str) -> SetupFacts:
    from nb2pipe.infer.ipython import parse_cell_and_text  # not needed by status, which only hashes notebooks

    try:
        tree, text = parse_cell_and_text(_AUTOMAGIC_INSTALL.sub(_as_magic_call, source))
    except (SyntaxError, ValueError, RecursionError):
        return SetupFacts((OTHER,), (), (), None, frozenset())
    aliases = {**USUAL_ALIASES, **_import_aliases(tree.body)}
    kinds, installs, imports, config = [], [], [], []
    for node in tree.body:
        kinds.append(kind := _kind(node, aliases))
        if kind == IMPORT:
            imports.append(node)
        elif kind == CONFIG:
            config.append(node)
        elif kind == INSTALL:
            installs.append(source.strip() if _is_cell_magic(node) else _as_written(node, text, source))
    replay = _lines_of([*imports, *config], text, source) + _SHOW_NOTHING if config else None
    return SetupFacts(
        kinds=tuple(kinds),
        installs=tuple(installs),
        configures=tuple(_as_written(node, text, source) for node in config),
        replay_source=replay,
        replay_needs=frozenset(_free_names(config) - set(_import_aliases(imports)) - {"get_ipython"}),
    )


# Ends replayed configuration: `np.seterr(...)` as a cell's last line would show its result, and
# the cells nb2pipe adds print nothing.
_SHOW_NOTHING = "\npass"


def _as_magic_call(match: re.Match[str]) -> str:
    name, line = match.group(0).strip().split(None, 1)
    return f"get_ipython().run_line_magic({name!r}, {line!r})"


def _import_aliases(statements: list[ast.stmt]) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for node in statements:
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def _kind(node: ast.stmt, aliases: dict[str, str]) -> str:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return IMPORT
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Pass)):
        return DEFINE
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return DEFINE  # a docstring or a bare literal
    if isinstance(node, ast.Assert):
        return CHECK if _reads_only_modules(node, aliases) else OTHER
    if isinstance(node, (ast.Assign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        configures = all(_dotted(t, aliases).startswith(CONFIG_TARGETS) for t in targets)
        return CONFIG if configures and _reads_only_modules(node.value, aliases) else OTHER
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        return _call_kind(node.value, aliases)
    return OTHER


def _call_kind(call: ast.Call, aliases: dict[str, str]) -> str:
    from nb2pipe.infer.ipython import ipython_method, string_arguments

    method = ipython_method(call)
    if method is None:
        return CONFIG if _dotted(call.func, aliases) in CONFIG_CALLS else OTHER
    arguments = string_arguments(call) or []
    if method in ("system", "getoutput"):  # a shell command does work: it is not setup, unless it installs
        return INSTALL if arguments and _INSTALL_COMMAND.match(arguments[0]) else OTHER
    if method == "run_line_magic" and len(arguments) >= 2:
        name, line = arguments[0], arguments[1]
        if name in INSTALL_MAGICS and line.split()[:1] == ["install"]:
            return INSTALL
        if name in CONFIG_MAGICS:
            return CONFIG
        return MAGIC if name not in _MAGICS_RUNNING_CODE else OTHER
    if method == "run_cell_magic" and arguments[:1] == ["capture"] and len(arguments) == 3:
        return _captured_kind(arguments[2])  # `%%capture` hides what its body prints
    return OTHER  # another cell magic (`%%bash`, `%%time`...) runs code or commands


def _is_cell_magic(node: ast.stmt) -> bool:
    from nb2pipe.infer.ipython import ipython_method

    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and ipython_method(node.value) == "run_cell_magic"


def _captured_kind(body: str) -> str:
    facts = _setup_facts(body)
    if facts.only_installs:
        return INSTALL
    return MAGIC if facts.is_setup else OTHER


_MAGICS_RUNNING_CODE = frozenset({"time", "timeit", "capture", "prun", "debug", "run", "load"})


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str:
    """`plt.style.use` -> 'matplotlib.pyplot.style.use'; '' for anything not a dotted name.
    A subscript counts as its base (`plt.rcParams['x']` -> 'matplotlib.pyplot.rcParams')."""
    parts: list[str] = []
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in aliases:
        return ""
    return ".".join([aliases[node.id], *reversed(parts)])


def _reads_only_modules(node: ast.AST, aliases: dict[str, str]) -> bool:
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return names <= set(aliases) | set(dir(builtins))


def _as_written(node: ast.stmt, text: str, source: str) -> str:
    """The statement's lines as the user wrote them (IPython's rewrite keeps lines in place)."""
    return "\n".join(_lines(text, source)[i] for i in _line_numbers(node)).strip()


def _lines_of(nodes: list[ast.stmt], text: str, source: str) -> str:
    """The lines holding `nodes`, each once, in order."""
    lines = _lines(text, source)
    return "\n".join(lines[i] for i in sorted({i for node in nodes for i in _line_numbers(node)}))


def _lines(text: str, source: str) -> list[str]:
    written = source.splitlines()
    return written if len(text.splitlines()) == len(written) else text.splitlines()


def _line_numbers(node: ast.stmt) -> range:
    return range(node.lineno - 1, node.end_lineno or node.lineno)


def _free_names(nodes: list[ast.stmt]) -> set[str]:
    names = {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return names - set(dir(builtins))


# --- the plan: installs out of setup, configuration replayed in later stages ------------------


def take_out_installs(setup: list[m.Cell]) -> tuple[list[m.Cell], list[m.Cell], list[str]]:
    """The setup cells with their install lines left out (a cell of nothing else is dropped), the
    cells that had some, and a warning for each: installing is done once, before a run, never per stage."""
    kept, installing, warnings = [], [], []
    for cell in setup:
        installs = setup_facts(cell.source).installs
        if not installs:
            kept.append(cell)
            continue
        installing.append(cell)
        warnings.append(
            f"{cell.label} installs packages ({'; '.join(' '.join(i.split()) for i in installs)}); a pipeline does not install per stage: "
            "nb2pipe leaves it out, install them once in the pipeline's environment before `nb2pipe run` "
            "(e.g. `python -m pip install -r requirements.txt`)"
        )
        rest = "" if setup_facts(cell.source).only_installs else _without_lines(cell.source, installs)
        if any(line.strip() and not line.lstrip().startswith("#") for line in rest.splitlines()):
            kept.append(dataclasses.replace(cell, source=rest))
    return kept, installing, warnings


def _without_lines(source: str, lines: tuple[str, ...]) -> str:
    dropped = set(lines)
    return "\n".join(f"# installed once before the run, not per stage: {line.strip()}" if line.strip() in dropped else line
                     for line in source.splitlines())


def replay_configuration(
    stages: list[m.StagePlan], available: set[str]
) -> tuple[list[m.StagePlan], list[str]]:
    """Each stage with the configuration of the cells above it in earlier stages (their imports and
    configuration statements), to run at its top as the notebook's kernel had it. Configuration
    that reads a name a later stage would not have (`available`: what setup binds, the parameters)
    is not replayed: a warning names it."""
    replayable: list[m.Cell] = []
    warnings: list[str] = []
    owner = {cell.number: stage.name for stage in stages for cell in stage.code_cells}
    imported: dict[str, str] = {}  # module alias -> the import statement above that binds it
    for cell in sorted((c for s in stages for c in s.code_cells), key=lambda c: c.number):
        facts = setup_facts(cell.source)
        source = facts.replay_source
        if source is None:
            imported.update(_imports_of(cell.source))
            continue
        imports = [imported[name] for name in sorted(facts.replay_needs - available) if name in imported]
        source = "\n".join([*dict.fromkeys(imports), source])
        missing = sorted(facts.replay_needs - available - set(imported))
        imported.update(_imports_of(cell.source))
        if missing:
            warnings.append(
                f"stage '{owner[cell.number]}', {cell.label}: its configuration ({'; '.join(facts.configures)}) reads "
                f"{', '.join(repr(n) for n in missing)}, which later stages do not have, so they run without it; "
                "move it to a cell of its own above the first stage (setup), where it runs at the top of every stage"
            )
            continue
        replayable.append(dataclasses.replace(cell, source=source, tags=()))
    if not replayable:
        return stages, warnings
    replayed = []
    for stage in stages:
        first = min((c.number for c in stage.code_cells), default=0)
        earlier = tuple(c for c in replayable if c.number < first and owner[c.number] != stage.name)
        replayed.append(dataclasses.replace(stage, replayed=earlier) if earlier else stage)
    return replayed, warnings


def _imports_of(source: str) -> dict[str, str]:
    """Name -> the text of the top-level import statement of the cell that binds it."""
    from nb2pipe.infer import analyze_cell

    facts = analyze_cell(source)
    return {name: text for name, text in facts.definition_sources if name in facts.imports}
