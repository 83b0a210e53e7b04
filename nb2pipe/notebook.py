"""Read a notebook and cut it into setup code, parameters and stages (pure, apart from reading).

How a notebook becomes a `NotebookPlan`:
1. Read the JSON; every way it can fail to be a notebook is a one-line `NotebookError`.
2. Give each cell its tags: `metadata.tags` merged with the structured `metadata.nb2pipe`
   (metadata wins on conflict), Kale's spellings mapped to nb2pipe's, and Kale's block rules
   applied (kale.py: an untagged cell after `imports` is setup, as in Kale).
3. Pull out the `parameters` cell (and papermill's `injected-parameters`, whose values win),
   the `setup` cells and the `skip` cells.
4. Cut the rest into stages: at `stage:` tags when there are any, else at every markdown heading
   at or above the chosen level (headings.py), else one stage named after the notebook. Untagged
   code above the first stage is setup when it only imports, defines or configures
   (setup_code.py); else, with tags, an error naming the cell, with headings, the first stage.
   Install lines leave setup (never run per stage); configuration inside a stage is replayed in
   the stages after it.
5. Collect each stage's declared deps, outs, `after:` edges, metrics cells and Kale settings.
   A declared out that would escape the project (files.out_problem) is an error naming the cell.
6. A `stage:` tag seen again after another stage adds its cells to that stage (as Kale does),
   unless the stage and the one between them would need each other: an error naming both cells
   (split_stages.py).
"""

from __future__ import annotations

import ast
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

from nb2pipe import model as m
from nb2pipe.errors import NotebookError, SpecError, UnknownStageError
from nb2pipe.files import OutChecker, check_name, out_problem, read_user_text
from nb2pipe.hashing import hash_bytes
from nb2pipe.headings import headings as headings  # re-exported: tests and export read them here
from nb2pipe.headings import leading_setup, sections
from nb2pipe.headings import slugify as slugify
from nb2pipe.kale import apply_kale_rules, is_kale_parameters
from nb2pipe.settings import StageSettingsBuilder, kale_memory_limit, setting_from_tag, settings_from_structured, settings_of
from nb2pipe.setup_code import is_setup_code, replay_configuration, take_out_installs
from nb2pipe.split_stages import refuse_split_stages_that_cannot_run

DEFAULT_SPLIT_LEVEL = 2


# --- 1. reading ------------------------------------------------------------------------------


MAX_NOTEBOOK_BYTES = 1 << 30  # bigger is not a notebook a person saved; /dev/zero never ends
CELL_TYPES = ("code", "markdown", "raw")
_DAMAGED = "the notebook is damaged: re-save it from Jupyter or restore it from version control"


def read_notebook(path: Path) -> dict[str, Any]:
    """The notebook at `path` as a plain nbformat-4 dict, or a one-line error saying what is wrong."""
    text = read_user_text(
        path,
        what="notebook",
        limit=MAX_NOTEBOOK_BYTES,
        error=NotebookError,
        hint="pass a notebook file (.ipynb); if it is one, clear its outputs "
        "(jupyter nbconvert --clear-output --inplace) to shrink it",
    )
    return parse_notebook(text, str(path))


def parse_notebook(text: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise NotebookError(
            f"'{where}' is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); "
            "restore it from version control or re-save it from Jupyter"
        ) from None
    except RecursionError:
        raise NotebookError(f"'{where}' is JSON nested too deeply to be a notebook; {_DAMAGED}") from None
    if not isinstance(data, dict) or ("cells" not in data and "worksheets" not in data):
        raise NotebookError(
            f"'{where}' is JSON but not a Jupyter notebook (no 'cells'); pass an .ipynb file"
        )
    major = data.get("nbformat")
    if type(major) is not int or major < 4:
        raise NotebookError(
            f"'{where}' is nbformat {major}, older than nb2pipe reads (4); upgrade it with "
            f"`jupyter nbconvert --to notebook --inplace '{where}'`"
        )
    if major > 4:
        raise NotebookError(f"'{where}' is nbformat {major}; nb2pipe reads nbformat 4")
    check_notebook(data, where)
    return data


def check_notebook(data: dict[str, Any], where: str) -> None:
    """Refuse, in one line naming the cell, a notebook whose fields have the wrong JSON type."""
    if "cells" not in data:
        raise NotebookError(f"'{where}' is nbformat 4 but has no 'cells' list; {_DAMAGED}")
    if not isinstance(data["cells"], list):
        raise NotebookError(f"'{where}' has a 'cells' entry that is not a list; the file is damaged")
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict):
        raise NotebookError(f"'{where}': 'metadata' must be a JSON object, not {_json_type(metadata)}; {_DAMAGED}")
    if not isinstance(metadata.get("kernelspec", {}), dict):
        raise NotebookError(f"'{where}': 'metadata.kernelspec' must be a JSON object; {_DAMAGED}")
    for number, cell in enumerate(data["cells"], start=1):
        problem = _cell_problem(cell)
        if problem:
            raise NotebookError(f"'{where}': cell {number}: {problem}; {_DAMAGED}")


def _cell_problem(cell: Any) -> str | None:
    if not isinstance(cell, dict):
        return f"is {_json_type(cell)}, not a JSON object"
    if cell.get("cell_type") not in CELL_TYPES:
        return f"unknown cell_type {cell.get('cell_type')!r} (a cell is {', '.join(CELL_TYPES)})"
    metadata = cell.get("metadata", {})
    if not isinstance(metadata, dict):
        return f"'metadata' must be a JSON object, not {_json_type(metadata)}"
    tags = metadata.get("tags", [])
    if not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        return "'metadata.tags' must be a list of strings"
    source = cell.get("source", "")
    if not (isinstance(source, str) or (isinstance(source, list) and all(isinstance(s, str) for s in source))):
        return f"'source' must be text (a string or a list of strings), not {_json_type(source)}"
    return None


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _cell_source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


# --- 2. tags ---------------------------------------------------------------------------------


@dataclass
class _Roles:
    """What one cell's tags say about it."""

    stage: str | None = None  # a stage name; "" for Kale's empty `block:` (continue the stage)
    after: list[str] = field(default_factory=list)
    deps: list[str] = field(default_factory=list)
    outs: list[str] = field(default_factory=list)
    meta: dict[str, list[str]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # settings.py: timeout, retries, env, ...
    parameters: bool = False
    injected: bool = False
    setup: bool = False
    skip: bool = False
    metrics: bool = False


def _strip_prefix(tag: str, prefixes: tuple[str, ...]) -> str | None:
    for prefix in prefixes:
        if tag.startswith(prefix):
            return tag[len(prefix) :].strip()
    return None


def _check_stage_name(name: str, cell: m.Cell, tag: str) -> str:
    if not m.STAGE_NAME_RE.fullmatch(name):
        raise SpecError(
            f"{cell.label}: bad stage name in tag '{tag}'; {m.STAGE_NAME_RULE} (e.g. 'stage:train')"
        )
    return name


def _roles(cell: m.Cell, structured: Any, check_out: OutChecker) -> _Roles:
    roles = _Roles()
    for tag in cell.tags:
        if (name := _strip_prefix(tag, m.STAGE_TAG_PREFIXES)) is not None:
            if name == "" and not tag.startswith("stage:"):
                roles.stage = roles.stage or ""  # Kale: an empty block: continues the stage
            else:
                roles.stage = _check_stage_name(name, cell, tag)
        elif (name := _strip_prefix(tag, m.AFTER_TAG_PREFIXES)) is not None:
            if name:
                roles.after.append(_check_stage_name(name, cell, tag))
        elif (path := _strip_prefix(tag, (m.IN_TAG_PREFIX,))) is not None:
            roles.deps.append(_check_path(path, cell, tag))
        elif (path := _strip_prefix(tag, (m.OUT_TAG_PREFIX,))) is not None:
            roles.outs.append(_check_out(_check_path(path, cell, tag), cell, tag, check_out))
        elif tag in m.PARAMETERS_TAGS:
            roles.parameters = True
        elif tag == m.INJECTED_PARAMETERS_TAG:
            roles.injected = True
        elif tag in m.SETUP_TAGS:
            roles.setup = True
        elif tag in m.SKIP_TAGS:
            roles.skip = True
        elif tag in m.METRICS_TAGS:
            roles.metrics = True
        elif (setting := _strip_prefix(tag, m.KALE_SETTING_PREFIXES)) is not None:
            roles.meta.setdefault(tag.split(":", 1)[0], []).append(setting)
        elif (pair := setting_from_tag(tag, cell.label)) is not None:
            _add_setting(roles.settings, *pair)
        # any other tag belongs to some other tool (e.g. 'hide-input'): leave it alone
    if isinstance(structured, dict):
        _merge_structured(roles, structured, cell, check_out)
    elif structured is not None:
        raise SpecError(f"{cell.label}: metadata 'nb2pipe' must be a mapping, not {type(structured).__name__}")
    return roles


def _merge_structured(roles: _Roles, meta: dict[str, Any], cell: m.Cell, check_out: OutChecker) -> None:
    """`cell.metadata.nb2pipe` as written by the JupyterLab extension; it wins over tags."""
    stage = meta.get(m.META_STAGE)
    if stage and not isinstance(stage, str):
        raise SpecError(f"{cell.label}: metadata nb2pipe.stage must be a stage name (a string, e.g. 'train')")
    if stage:
        roles.stage = _check_stage_name(stage, cell, f"metadata nb2pipe.stage={stage}")
    for key, target in ((m.META_DEPS, roles.deps), (m.META_OUTS, roles.outs)):
        for path in _as_list(meta.get(key), key, cell):
            if path not in target:
                where = f"metadata nb2pipe.{key}"
                path = _check_path(path, cell, where)
                target.append(_check_out(path, cell, where, check_out) if key == m.META_OUTS else path)
    for name in _as_list(meta.get(m.META_AFTER), m.META_AFTER, cell):
        if name not in roles.after:
            roles.after.append(_check_stage_name(name, cell, f"metadata nb2pipe.after={name}"))
    for key, value in settings_from_structured(meta, f"{cell.label}: metadata nb2pipe.").items():
        _add_setting(roles.settings, key, value)


def _add_setting(settings: dict[str, Any], key: str, value: Any) -> None:
    """One cell's setting; env and secret add up (a later value for the same env name wins)."""
    if key == m.S_ENV:
        settings[key] = settings.get(key, {}) | value
    elif key == m.S_SECRET:
        settings[key] = [*settings.get(key, []), *(n for n in value if n not in settings.get(key, []))]
    else:
        settings[key] = value


def _as_list(value: Any, key: str, cell: m.Cell) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise SpecError(f"{cell.label}: metadata nb2pipe.{key} must be a list of strings")


def _check_path(path: str, cell: m.Cell, tag: str) -> str:
    if not path:
        raise SpecError(f"{cell.label}: tag '{tag}' names no file; write it as 'in:data/raw.csv'")
    check_name(path, f"{cell.label}: tag '{tag}': path", "rename the file, or fix the tag")
    return path[2:] if path.startswith("./") and len(path) > 2 else path


def _check_out(path: str, cell: m.Cell, tag: str, check_out: OutChecker) -> str:
    """A declared output, refused when it would escape the project (see files.out_problem)."""
    if problem := check_out(path):
        raise SpecError(
            f"{cell.label}: tag '{tag}': '{path}' {problem}; nb2pipe writes and restores outputs only "
            "inside the notebook's folder: name a path below it, or declare the file 'in:' if the stage only reads it"
        )
    return path


# --- 3. parameters ---------------------------------------------------------------------------


def parse_parameters(cell: m.Cell) -> list[tuple[str, Any]]:
    """The literal assignments of a parameters cell, in order; anything else is an error."""
    try:
        tree = ast.parse(cell.source)
    except SyntaxError as e:
        raise SpecError(
            f"{cell.label} (parameters): syntax error at line {e.lineno}: {e.msg}; fix the cell"
        ) from None
    lines = cell.source.splitlines()
    values: list[tuple[str, Any]] = []
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue  # a docstring documents the parameters; it is not code
        assignment = _assignment(node)
        if assignment is None:
            _not_literal(cell, lines, node)
        target, value = assignment
        try:
            literal = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            _not_literal(cell, lines, node)
        if (problem := _not_a_parameter(literal)) is not None:
            what, instead = problem
            raise SpecError(
                f"cell {cell.number} (parameters) line {node.lineno}: parameter '{target}' holds {what}, "
                f"which params.yaml and papermill cannot pass on unchanged; {instead}"
            )
        values.append((target, literal))
    return values


def _not_a_parameter(value: Any) -> tuple[str, str] | None:
    """(what in a literal cannot be a parameter, what to write instead), or None when all of it
    can: it must come back unchanged from params.yaml and from JSON (papermill, Airflow and
    Kubeflow pass parameters as JSON)."""
    if value is None or isinstance(value, (bool, int)):
        return None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "a lone surrogate", "write a valid string"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (f"the number {value!r}", "write a finite number, or a string")
    if isinstance(value, list):
        return next(filter(None, map(_not_a_parameter, value)), None)
    if isinstance(value, dict):
        key = next((k for k in value if not isinstance(k, str)), None)
        if key is not None:
            return f"the dict key {key!r}, which is not a string", "use string keys"
        return next(filter(None, map(_not_a_parameter, value.values())), None)
    advice = {
        set: ("a set", "write a list, e.g. [1, 2]"),
        frozenset: ("a set", "write a list, e.g. [1, 2]"),
        tuple: ("a tuple", "write a list, e.g. [1, 2]"),
        bytes: ("bytes", "write a string"),
        complex: ("a complex number", "write two numbers, or a string"),
        type(...): ("'...'", "write None, or a value"),
    }
    return advice.get(type(value), (f"a {type(value).__name__}", "write a number, string, boolean, None, or a list or dict of them"))


def _line(lines: list[str], node: ast.stmt) -> str:
    return lines[node.lineno - 1].strip() if node.lineno <= len(lines) else ""


def _assignment(node: ast.stmt) -> tuple[str, ast.expr] | None:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id, node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
        return node.target.id, node.value
    return None


def _not_literal(cell: m.Cell, lines: list[str], node: ast.stmt) -> NoReturn:
    line = _line(lines, node)
    raise SpecError(
        f"cell {cell.number} (parameters) line {node.lineno}: '{line}' is not a literal assignment; "
        "a parameters cell holds only `name = value` with numbers, strings, booleans, None, lists "
        "and dicts; move other code to a later cell"
    )


# --- 4 and 5. stages -------------------------------------------------------------------------


@dataclass
class _StageBuilder:
    name: str
    cells: list[m.Cell] = field(default_factory=list)
    deps: list[str] = field(default_factory=list)
    outs: list[str] = field(default_factory=list)
    after: list[tuple[str, m.Cell]] = field(default_factory=list)
    metrics_cells: list[int] = field(default_factory=list)
    meta: dict[str, list[str]] = field(default_factory=dict)
    settings: StageSettingsBuilder | None = None

    def add(self, cell: m.Cell, roles: _Roles) -> None:
        self.cells.append(cell)
        _extend_unique(self.deps, roles.deps)
        _extend_unique(self.outs, roles.outs)
        self.after.extend((name, cell) for name in roles.after)
        if roles.metrics:
            self.metrics_cells.append(cell.number)
        for key, values in roles.meta.items():
            _extend_unique(self.meta.setdefault(key, []), values)
        self.settings = self.settings or StageSettingsBuilder(self.name)
        self.settings.add(roles.settings, cell.label)
        # Kale's limit:memory: is the memory setting: a different memory: on the same cell is a conflict too
        self.settings.add(*kale_memory_limit(roles.meta, cell.label))

    def freeze(self) -> m.StagePlan:
        after: list[str] = []
        _extend_unique(after, [name for name, _ in self.after])
        return m.StagePlan(
            name=self.name,
            cells=tuple(self.cells),
            deps=tuple(self.deps),
            outs=tuple(self.outs),
            after=tuple(after),
            metrics_cells=tuple(self.metrics_cells),
            meta=m.freeze_meta(self.meta),
            settings=self.settings.freeze() if self.settings else m.Settings(),
        )


def _extend_unique(target: list[str], items: list[str]) -> None:
    for item in items:
        if item not in target:
            target.append(item)


def plan_notebook(
    nb: dict[str, Any], name: str, split_level: int = DEFAULT_SPLIT_LEVEL, *, check_out: OutChecker | None = None
) -> m.NotebookPlan:
    """Cut a notebook (as read by `read_notebook`) into a `NotebookPlan`.

    `check_out(path)` says why a declared output cannot be one (None when it can); by default
    only the path's text is judged (files.out_problem without a project folder).
    """
    cells, structured = _cells(nb)
    check_out = check_out or (lambda path: out_problem(path, None))
    roles = [_roles(cell, meta, check_out) for cell, meta in zip(cells, structured, strict=True)]
    apply_kale_rules(cells, roles)
    if not any(c.kind == "code" and c.source.strip() for c in cells):
        raise NotebookError(f"notebook '{name}' has no code cells; there is nothing to run")

    parameters: m.Cell | None = None
    injected: m.Cell | None = None
    setup: list[m.Cell] = []
    body: list[tuple[m.Cell, _Roles]] = []
    for cell, role in zip(cells, roles, strict=True):
        if role.skip or cell.kind == "raw":
            continue
        if role.parameters and cell.kind == "code":
            parameters = _more_parameters(parameters, cell)
        elif role.injected and cell.kind == "code":
            injected = cell
        elif role.setup and cell.kind == "code":
            setup.append(cell)
        else:
            body.append((cell, role))

    defaults = dict(parse_parameters(parameters)) if parameters else {}
    if injected is not None:
        defaults.update(parse_parameters(injected))

    if any(role.stage for _, role in body):
        builders, more_setup = _split_by_tags(body)
    else:
        builders, more_setup = _split_by_headings(body, name, split_level)
    setup, installs, install_warnings = take_out_installs(sorted(setup + more_setup, key=lambda c: c.number))
    stages = [b.freeze() for b in builders if b.cells and any(c.kind == "code" for c in b.cells)]
    _check_after_targets(builders, [s.name for s in stages])
    refuse_split_stages_that_cannot_run(stages)
    stages, replay_warnings = replay_configuration(stages, _bound_by(setup) | set(defaults))

    kernelspec = nb.get("metadata", {}).get("kernelspec") or {}
    pipeline_defaults = _defaults_data(nb)
    return m.NotebookPlan(
        name=name,
        kernelspec=tuple(sorted((k, str(v)) for k, v in kernelspec.items() if isinstance(v, (str, int)))),
        setup=tuple(setup),
        parameters=parameters,
        param_defaults=tuple(defaults.items()),
        stages=tuple(stages),
        source_hash=source_hash(cells, structured, pipeline_defaults),
        warnings=tuple(install_warnings + replay_warnings),
        installs=tuple(installs),
        defaults=settings_of(pipeline_defaults, "notebook metadata nb2pipe.defaults:") if pipeline_defaults else m.Settings(),
    )


def _defaults_data(nb: dict[str, Any]) -> dict[str, Any]:
    """The notebook's pipeline-wide settings (metadata.nb2pipe.defaults), or {}."""
    ours = nb.get("metadata", {}).get(m.CELL_METADATA_KEY)
    defaults = ours.get(m.META_DEFAULTS) if isinstance(ours, dict) else None
    if defaults is not None and not isinstance(defaults, dict):
        raise SpecError("notebook metadata nb2pipe.defaults must be a mapping of settings, e.g. {\"timeout\": \"30m\"}")
    return defaults or {}


def _more_parameters(parameters: m.Cell | None, cell: m.Cell) -> m.Cell:
    """The parameters cell with `cell` added: Kale merges its `pipeline-parameters` blocks into one;
    papermill's `parameters` is one cell."""
    if parameters is None:
        return cell
    if is_kale_parameters(parameters):
        return replace(parameters, source=parameters.source.rstrip("\n") + "\n" + cell.source)
    raise SpecError(
        f"two parameters cells: cell {parameters.number} and cell {cell.number}; "
        "merge them into one (papermill injects after the first)"
    )


def _cells(nb: dict[str, Any]) -> tuple[list[m.Cell], list[Any]]:
    cells, structured = [], []
    for number, raw in enumerate(nb.get("cells", []), start=1):
        if not isinstance(raw, dict):
            raise NotebookError(f"cell {number} is not a JSON object; the notebook is damaged")
        metadata = raw.get("metadata") or {}
        tags = metadata.get("tags") or []
        if not isinstance(tags, list):
            tags = [str(tags)]
        cells.append(
            m.Cell(
                number=number,
                kind=str(raw.get("cell_type", "code")),
                source=_cell_source(raw),
                tags=tuple(str(t).strip() for t in tags),
            )
        )
        structured.append(metadata.get(m.CELL_METADATA_KEY))
    return cells, structured


def _split_by_tags(body: list[tuple[m.Cell, _Roles]]) -> tuple[list[_StageBuilder], list[m.Cell]]:
    builders: dict[str, _StageBuilder] = {}
    setup: list[m.Cell] = []
    current: _StageBuilder | None = None
    pending_markdown: list[m.Cell] = []
    for cell, role in body:
        if cell.kind == "markdown":
            pending_markdown.append(cell)
            continue
        if role.stage:
            current = builders.setdefault(role.stage, _StageBuilder(role.stage))
        elif current is None:
            if not cell.source.strip():
                continue
            if _is_setup_like(cell, role):
                setup.append(cell)
                continue
            raise SpecError(
                f"{cell.label} is above the first stage and does more than import or define; "
                "tag it 'stage:NAME', 'setup' or 'skip'"
            )
        for md in pending_markdown:
            current.add(md, _Roles())
        pending_markdown = []
        current.add(cell, role)
    if current is not None:
        for md in pending_markdown:
            current.add(md, _Roles())
    return list(builders.values()), setup


def _split_by_headings(
    body: list[tuple[m.Cell, _Roles]], notebook_name: str, level: int
) -> tuple[list[_StageBuilder], list[m.Cell]]:
    """Stages at every heading at or above `level`; leading setup code out of them (headings.py)."""
    setup, cut = leading_setup(sections(body, notebook_name, level), _is_setup_like)
    builders = []
    for name, cells in cut:
        builder = _StageBuilder(name)
        for cell, role in cells:
            builder.add(cell, role)
        builders.append(builder)
    return builders, setup


def _is_setup_like(cell: m.Cell, role: _Roles) -> bool:
    """Code that may run at the top of every stage: it only imports, defines, configures the
    kernel's display, installs packages (taken out later) or checks imported modules."""
    if not cell.source.strip():
        return True
    if role.deps or role.outs or role.metrics or role.after:
        return False
    return is_setup_code(cell.source, _only_imports_and_definitions(cell.source))


def _only_imports_and_definitions(source: str) -> bool:
    from nb2pipe.infer import analyze_cell  # not needed by status, which only hashes notebooks

    return analyze_cell(source).only_imports_and_definitions


def _bound_by(cells: list[m.Cell]) -> set[str]:
    from nb2pipe.infer import analyze_cell

    return {name for cell in cells for name in analyze_cell(cell.source).binds}


def _check_after_targets(builders: list[_StageBuilder], names: list[str]) -> None:
    for builder in builders:
        for target, cell in builder.after:
            if target not in names:
                raise UnknownStageError(target, names, where=f"{cell.label}, tag 'after:{target}'")


def source_hash(cells: list[m.Cell], structured: list[Any], defaults: dict[str, Any] | None = None) -> str:
    """A hash of what export reads from the notebook: cell kinds, sources, tags, nb2pipe metadata.

    Outputs, execution counts, cell ids and other metadata do not count. A lone surrogate (JSON
    allows `\ud800`) is hashed as it is, so that export can refuse it naming the cell.
    """
    parts: list[Any] = [[c.kind, c.source, sorted(c.tags), meta] for c, meta in zip(cells, structured, strict=True)]
    if defaults:
        parts.append({m.META_DEFAULTS: defaults})  # only when set: hashes of notebooks without stay as they were
    return hash_bytes(json.dumps(parts, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8", "surrogatepass"))


def notebook_hash(path: Path) -> str:
    """`source_hash` of the notebook file at `path` (for 'source notebook changed since export')."""
    nb = read_notebook(path)
    return source_hash(*_cells(nb), _defaults_data(nb))
