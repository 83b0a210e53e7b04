"""Turn a `NotebookPlan` into the files of a pipeline folder, and write them safely.

What flows between stages is inferred by nb2pipe.infer (infer/stages.py for a plan's stages).

1. `render_pipeline` is pure: plan in, `{relative path: text}` out, byte-identical for the same
   notebook. Stage scripts are jupytext percent-format `.py` (or `.ipynb`): a header, the setup
   code, a parameters cell with the parameters the stage reads, the stage's cells each titled
   with the notebook cell it came from, and after a `metrics` cell, code that writes the metrics.
   Every cell must read back exactly as it was (see percent.py); a stage holding a cell that a
   percent script cannot carry is written as a notebook instead, with a warning.
2. Text from the notebook is data: names and paths reach generated files only quoted (YAML,
   repr) or in places where any text is inert, and control characters in them are refused.
   Parameter defaults must survive params.yaml (YAML 1.1 and 1.2 alike) and JSON.
3. Every generated file but params.yaml carries a checksum of its own text, so a hand edit is
   noticed: `write_files` refuses to overwrite it (or any file nb2pipe did not write) without
   `force`, and leaves unchanged files untouched (generated.py).
4. params.yaml belongs to the user once edited: without a valid checksum its values are kept,
   new parameters are added and removed ones dropped.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, TypeVar

from nb2pipe import model as m
from nb2pipe import percent
from nb2pipe.carry import HiddenStateCells, hidden_state_cells, notebook_functions, value_notes
from nb2pipe.errors import OverwriteError, SpecError
from nb2pipe.files import OutChecker, check_name, out_problem, read_user_text
from nb2pipe.generated import (
    CHECKSUM_AT,
    CHECKSUM_AT_IPYNB,
    CHECKSUM_TOKEN,
    GITIGNORE,
    GITIGNORE_TEXT,
    dump_portable_yaml,
    is_pristine,
    stamp,
    write_files,
)
from nb2pipe.graph import order, producers
from nb2pipe.infer import CellFacts, StageFlow, analyze_cell, analyze_cells, changes_in_place
from nb2pipe.infer.constants import after_unknown_paths, resolve_plan_paths
from nb2pipe.infer.stages import infer_files, infer_stage_flow, stage_reads
from nb2pipe.infer.state_kinds import plan_hidden_state
from nb2pipe.metrics_cell import metrics_code
from nb2pipe.notebook import DEFAULT_SPLIT_LEVEL, plan_notebook, read_notebook, slugify
from nb2pipe.spec import MAX_YAML_BYTES, dump_yaml, parse_yaml, pipeline_to_dict, recorded_export_options, resolve_template

FORMATS = m.STAGE_FORMATS

@dataclass(frozen=True)
class Layout:
    """Where things are, relative to each other."""

    notebook: str  # the source notebook, relative to the pipeline folder
    notebook_name: str  # its file name, for provenance comments
    wdir: str  # the working directory, relative to the pipeline folder
    pipeline_from_wdir: str  # the pipeline folder, relative to wdir
    project: str | None = None  # the working directory on disk; None: judge output paths by their text only
    split_level: int = DEFAULT_SPLIT_LEVEL  # how an untagged notebook was cut (recorded in nb2pipe.yaml)


@dataclass
class Rendered:
    pipeline: m.Pipeline
    files: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    carried: dict[str, list[str]] = field(default_factory=dict)  # per stage: hidden state and values, as explain says
    # stage -> (cell number, variable, how): values the stage changes in place through a call or an alias
    changes: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)
    plan: m.NotebookPlan | None = None  # what the notebook was cut into (explain shows its setup)


# --- 1. rendering ----------------------------------------------------------------------------


def render_pipeline(
    plan: m.NotebookPlan,
    layout: Layout,
    fmt: str = "py",
    current_params: dict[str, Any] | None = None,
) -> Rendered:
    """All files of the pipeline folder for `plan`. `current_params` is the user's params.yaml."""
    if fmt not in FORMATS:
        raise SpecError(f"unknown format '{fmt}'; use one of: {', '.join(FORMATS)}")
    check_texts(plan)
    defaults = dict(plan.param_defaults)  # each checked by notebook.parse_parameters
    setup_facts, *facts_by_stage = analyze_cells([[c.source for c in plan.setup]] + [[c.source for c in s.code_cells] for s in plan.stages])
    setup_binds = set().union(*(f.binds for f in setup_facts)) if setup_facts else set()
    setup_reads = set().union(*(f.reads | f.builtin_reads for f in setup_facts)) if setup_facts else set()
    stage_facts, unresolved = resolve_plan_paths(plan, {s.name: facts for s, facts in zip(plan.stages, facts_by_stage, strict=True)})
    flow = infer_stage_flow(plan, stage_facts, exclude=set(defaults) | setup_binds)
    files, warnings = infer_files(plan, stage_facts, _checker_with_defaults(out_checker(layout), defaults))
    warnings.extend(u.warning for u in unresolved)
    after_unknown = after_unknown_paths(plan, files, unresolved)
    hidden, carried = _carriage(plan, layout, flow, warnings)
    warnings = [*plan.warnings, *warnings]

    stages, rendered, changes = [], {}, {}
    for stage in plan.stages:
        facts = stage_facts[stage.name]
        loads, saves, definitions = flow[stage.name].inputs, flow[stage.name].outputs, flow[stage.name].definitions
        reads = stage_reads(facts) | setup_reads | set(flow[stage.name].read_through_definitions)
        reads |= {n for c in stage.replayed for n in analyze_cell(c.source).reads}
        used_params = [name for name in defaults if name in reads]
        metrics_file = _join(layout.pipeline_from_wdir, m.METRICS_DIR, f"{stage.name}.json")
        var_deps = tuple(var_folder(layout, provider, name) for name, provider in loads) + hidden[stage.name].deps
        var_outs = tuple(var_folder(layout, stage.name, name) for name in saves) + hidden[stage.name].outs
        inferred_deps, inferred_outs = files.get(stage.name, ((), ()))
        prelude, postlude = _variable_cells(stage_facts, layout, stage.name, loads, saves, definitions, flow)
        _add_hidden_state_cells(hidden[stage.name], prelude, postlude)
        cells = _script_cells(plan, stage, layout, used_params, defaults, metrics_file, prelude, postlude)
        script, rendered_script, problem = _render_script(cells, plan, stage.name, layout, fmt)
        rendered[script] = rendered_script
        if problem:
            warnings.append(f"stage '{stage.name}': {problem}; wrote {script} instead, which keeps it exactly")
        for cell, f in zip(stage.code_cells, facts, strict=True):
            warnings.extend(f"stage '{stage.name}', {cell.label}: {w}" for w in f.warnings)
        changes[stage.name] = [(stage.code_cells[i].number, var, how) for i, var, how in changes_in_place(facts)]
        stages.append(
            m.Stage(
                name=stage.name,
                script=script,
                deps=_unique(stage.deps + inferred_deps + var_deps),
                outs=_unique(stage.outs + inferred_outs + var_outs),
                metrics=(metrics_file,) if stage.metrics_cells else (),
                params=tuple(used_params),
                after=_unique(stage.after + after_unknown.get(stage.name, ())),
                cells=tuple(c.number for c in stage.cells),
                meta=stage.meta,
                settings=stage.settings,
                loads=loads,
                saves=saves,
                inferred=_unique(inferred_deps + inferred_outs),
            )
        )
    pipeline = m.Pipeline(
        root="",
        stages=tuple(stages),
        wdir=layout.wdir,
        source_notebook=layout.notebook,
        source_hash=plan.source_hash,
        kernel=dict(plan.kernelspec).get("name"),
        export_format=fmt,
        split_level=layout.split_level,
        defaults=plan.defaults,
    )
    producers(pipeline)  # one producer per file
    order(pipeline)  # no cycles
    rendered[m.PIPELINE_FILE] = stamp(_SPEC_HEADER + dump_yaml(pipeline_to_dict(pipeline)), CHECKSUM_AT)
    rendered[m.PARAMS_FILE] = render_params(defaults, current_params)
    rendered[GITIGNORE] = GITIGNORE_TEXT
    return Rendered(pipeline, dict(sorted(rendered.items())), warnings, carried, changes, plan)


def _join(*parts: str) -> str:
    return os.path.normpath(os.path.join(*parts)).replace(os.sep, "/")


# --- text from the notebook is data ----------------------------------------------------------


def check_layout(notebook: Path, folder: Path, layout: Layout) -> None:
    """Refuse names and paths that would carry control characters into generated files."""
    check_name(notebook.name, "notebook file name", "rename the notebook")
    for path in (layout.notebook, layout.wdir, layout.pipeline_from_wdir, folder.name):
        check_name(path, "path", "export to a folder whose path has none (-o FOLDER)")


def check_texts(plan: m.NotebookPlan) -> None:
    """Refuse cells that cannot be saved as UTF-8 (tag paths were checked as the notebook was read)."""
    parameters = [plan.parameters] if plan.parameters else []
    for cell in [*plan.setup, *parameters, *(c for s in plan.stages for c in s.cells), *plan.installs]:
        try:
            cell.source.encode("utf-8")
        except UnicodeEncodeError as e:
            raise SpecError(
                f"{cell.label} holds text that cannot be saved as UTF-8 (U+{ord(cell.source[e.start]):04X}, "
                "a lone surrogate); fix that character in the cell"
            ) from None


def _unique(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def var_folder(layout: Layout, stage: str, name: str) -> str:
    """Where variable `name` of `stage` is saved, relative to wdir."""
    return _join(layout.pipeline_from_wdir, m.STATE_DIR, m.VARS_DIR, stage, name)


# --- what flows between stages (DESIGN §2) ---------------------------------------------------


def out_checker(layout: Layout | None) -> OutChecker:
    """Why a path cannot be an output of this export (None when it can): see files.out_problem."""
    if layout is None:
        return lambda path: out_problem(path, None)
    protected = {"the pipeline folder": layout.pipeline_from_wdir, "the notebook": layout.notebook_name}
    inside = (layout.pipeline_from_wdir,)
    return lambda path: out_problem(path, layout.project, protected, also_inside=inside)


def _checker_with_defaults(check_out: OutChecker, defaults: dict[str, Any]) -> OutChecker:
    """`check_out` judging a path that depends on parameters by the path their defaults give."""
    return lambda path: check_out(resolve_template(path, defaults, "the parameters cell"))


def _definition_source(stage_facts: list[CellFacts], name: str) -> tuple[tuple[int, int], str] | None:
    """The stage's last top-level import, def or class statement that binds `name`: (its place in
    the stage: cell, statement order; its text)."""
    found = None
    for cell_index, facts in enumerate(stage_facts):
        for statement_index, (bound, text) in enumerate(facts.definition_sources):
            if bound == name:
                found = ((cell_index, statement_index), text)
    return found


def _definitions_in_notebook_order(stage_facts: dict[str, list[CellFacts]], definitions: tuple[tuple[str, str], ...]) -> list[str]:
    """The statements that re-create `definitions` (name, provider stage), each once, in the order
    the notebook ran them: a decorator or base class comes before what uses it."""
    stage_index = {name: index for index, name in enumerate(stage_facts)}
    placed = []
    for name, provider in definitions:
        found = _definition_source(stage_facts[provider], name)
        if found is not None:
            placed.append(((stage_index[provider], *found[0]), found[1]))
    return list(dict.fromkeys(text for _, text in sorted(placed)))


def _definitions_cell(sources: list[str], origin: str) -> list[_ScriptCell]:
    if not sources:
        return []
    return [_ScriptCell("code", "\n\n".join(sources), "nb2pipe: definitions from earlier stages", origin=origin)]


def _variable_cells(
    stage_facts: dict[str, list[CellFacts]],
    layout: Layout,
    stage: str,
    loads: tuple[tuple[str, str], ...],
    saves: tuple[str, ...],
    definitions: tuple[tuple[str, str], ...],
    flow: dict[str, StageFlow],
) -> tuple[list[_ScriptCell], list[_ScriptCell]]:
    """Cells that re-create definitions and load inputs (first), and save outputs (last). The
    definitions a loaded value needs (its classes) come before the loads, the others after them."""
    prelude: list[_ScriptCell] = []
    to_load = set(flow[stage].needed_to_load)
    before = _definitions_in_notebook_order(stage_facts, tuple(d for d in definitions if d[0] in to_load))
    after = [text for text in _definitions_in_notebook_order(stage_facts, definitions) if text not in before]
    prelude.extend(_definitions_cell(before, "the classes loaded values need"))
    if loads:
        lines = ["from nb2pipe.handoff import load as _nb2pipe_load"]
        lines += [f"{name} = _nb2pipe_load({var_folder(layout, provider, name)!r})" for name, provider in loads]
        prelude.append(_ScriptCell("code", "\n".join(lines), "nb2pipe: load variables from earlier stages"))
    prelude.extend(_definitions_cell(after, "the definitions copied from earlier stages"))
    postlude: list[_ScriptCell] = []
    if saves:
        lines = ["from nb2pipe.handoff import save as _nb2pipe_save"]
        for name in saves:
            consumers = sorted(s for s, f in flow.items() if (name, stage) in f.inputs)
            folder = var_folder(layout, stage, name)
            lines.append(f"_nb2pipe_save({name!r}, globals(), {folder!r}, stage={stage!r}, consumers={consumers!r})")
        postlude.append(_ScriptCell("code", "\n".join(lines), "nb2pipe: save variables for later stages"))
    return prelude, postlude


def _carriage(
    plan: m.NotebookPlan, layout: Layout, flow: dict[str, StageFlow], warnings: list[str]
) -> tuple[dict[str, HiddenStateCells], dict[str, list[str]]]:
    """Per stage: the cells that carry hidden state, and what explain says about carrying (see
    carry.py); warnings about what cannot be carried are added to `warnings`."""
    sources = {s.name: [(c.label, c.source) for c in s.code_cells] for s in plan.stages}
    states, state_warnings = plan_hidden_state([c.source for c in plan.setup], list(sources.items()))
    warnings.extend(state_warnings)
    functions = notebook_functions([c.source for c in plan.setup] + [src for cells in sources.values() for _, src in cells])
    cells, carried = {}, {}
    for name, cell_sources in sources.items():
        cells[name] = hidden_state_cells(name, states[name], lambda stage, folder: var_folder(layout, stage, folder))
        notes, value_warnings = value_notes(name, cell_sources, flow[name].outputs, functions)
        warnings.extend(value_warnings)
        carried[name] = list(cells[name].notes) + notes
    return cells, carried


def _add_hidden_state_cells(cells: HiddenStateCells, prelude: list[_ScriptCell], postlude: list[_ScriptCell]) -> None:
    if cells.prelude:
        prelude.append(_ScriptCell("code", cells.prelude, "nb2pipe: restore hidden state from earlier stages"))
    if cells.postlude:
        postlude.insert(0, _ScriptCell("code", cells.postlude, "nb2pipe: save hidden state for later stages"))


@dataclass(frozen=True)
class _ScriptCell:
    kind: str
    source: str
    title: str = ""  # only text jupytext reads back unchanged from the marker line (see _title)
    tags: tuple[str, ...] = ()
    origin: str = ""  # how a warning names the cell


def _script_cells(
    plan: m.NotebookPlan,
    stage: m.StagePlan,
    layout: Layout,
    used_params: list[str],
    defaults: dict[str, Any],
    metrics_file: str,
    prelude: list[_ScriptCell],
    postlude: list[_ScriptCell],
) -> list[_ScriptCell]:
    numbers = [c.number for c in stage.cells]
    cells = [
        _ScriptCell(
            "markdown",
            f"# Stage `{stage.name}` of `{layout.notebook_name}`\n\n"
            f"Generated by nb2pipe from cells {cell_ranges(numbers)} of `{layout.notebook}`. "
            "Edit the notebook, then run `nb2pipe export`.",
        )
    ]
    name = layout.notebook_name
    head: list[tuple[int, _ScriptCell]] = [
        (c.number, _ScriptCell("code", c.source, _title(name, c, "setup"), origin=c.label)) for c in plan.setup
    ]
    head += [(c.number, _ScriptCell("code", c.source, _title(name, c, "configuration"), origin=c.label)) for c in stage.replayed]
    if used_params:
        assignments = "\n".join(f"{name} = {_literal(defaults[name])}" for name in used_params)
        at = plan.parameters.number if plan.parameters else 0
        head.append((at, _ScriptCell("code", assignments, "", ("parameters",))))
    cells.extend(cell for _, cell in sorted(head, key=lambda pair: pair[0]))
    cells.extend(prelude)
    for c in stage.cells:
        cells.append(_ScriptCell(c.kind, c.source, _title(name, c), origin=c.label))
        if c.number in stage.metrics_cells:
            cells.append(_ScriptCell("code", metrics_code(c, metrics_file), "nb2pipe: write metrics"))
    return cells + postlude


# A notebook name jupytext reads back unchanged as the start of a cell title: no '{' or '=' (they
# start cell metadata), no '[' or ']' ('[markdown]' changes the cell's kind), no leading '%' or
# whitespace (stripped). Any other name is left out of the title (the header names the notebook).
_TITLE_SAFE_NAME = re.compile(r"^(?![%\s])[^{}=\[\]]*(?<!\s)$")


def _title(notebook_name: str, cell: m.Cell, role: str = "") -> str:
    """Which notebook cell a script cell came from: '<notebook> cell 12', the run's error
    messages quote it."""
    prefix = f"{notebook_name} " if _TITLE_SAFE_NAME.match(notebook_name) else ""
    return f"{prefix}cell {cell.number}" + (f" ({role})" if role else "")


def cell_ranges(numbers: list[int]) -> str:
    parts, start = [], None
    for i, n in enumerate(numbers):
        if start is None:
            start = n
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            parts.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ", ".join(parts)


def _literal(value: Any) -> str:
    return repr(value)


def _render_script(
    cells: list[_ScriptCell], plan: m.NotebookPlan, stage: str, layout: Layout, fmt: str
) -> tuple[str, str, str | None]:
    """(script path, its text, why it is a notebook although a script was asked for)."""
    kernelspec = dict(plan.kernelspec) or {"display_name": "Python 3", "language": "python", "name": "python3"}
    provenance = {"notebook": layout.notebook, "stage": stage}
    problem = None
    if fmt == "py":
        try:
            return f"{m.STAGES_DIR}/{stage}.py", _render_percent(cells, kernelspec, provenance), None
        except percent.NotPercent as e:
            problem = str(e)
    return f"{m.STAGES_DIR}/{stage}.ipynb", _render_ipynb(cells, kernelspec, provenance), problem


# how jupytext must read a stage script: magics as written, never a comment turned into one
_JUPYTEXT_OPTIONS = (
    "  jupytext:\n"
    "    comment_magics: false\n"
    "    text_representation: {extension: .py, format_name: percent}\n"
)


def _render_percent(cells: list[_ScriptCell], kernelspec: dict[str, Any], provenance: dict[str, Any]) -> str:
    """jupytext's percent format, every cell carried exactly (see percent.py); NotPercent when a
    cell cannot be. The checksum comes first, before any text from the notebook."""
    header = {"jupyter": {"nb2pipe": {"checksum": "X", **provenance}, "jupytext": "X", "kernelspec": kernelspec}}
    header_text = dump_yaml(header).replace("{checksum: X,", f"{{{CHECKSUM_AT},", 1)
    header_text = header_text.replace("  jupytext: X\n", _JUPYTEXT_OPTIONS, 1)
    lines = ["# ---", *(f"# {line}" if line else "#" for line in header_text.splitlines()), "# ---", ""]
    for cell in cells:
        marker = "# %%"
        if cell.kind == "markdown":
            marker += " [markdown]"
        if cell.title:
            marker += f" {cell.title}"
        if cell.tags:
            marker += " tags=" + json.dumps(list(cell.tags))
        lines.append(marker)
        try:
            lines.extend(percent.markdown_lines(cell.source) if cell.kind == "markdown" else percent.code_lines(cell.source))
        except percent.NotPercent as e:
            raise percent.NotPercent(f"{cell.origin or 'a generated cell'}: {e}") from None
        lines.append("")
    return stamp("\n".join(lines), CHECKSUM_AT)


def _render_ipynb(cells: list[_ScriptCell], kernelspec: dict[str, Any], provenance: dict[str, Any]) -> str:
    nb_cells = []
    for i, cell in enumerate(cells, start=1):
        metadata: dict[str, Any] = {}
        if cell.title:
            metadata["title"] = cell.title
        if cell.tags:
            metadata["tags"] = list(cell.tags)
        entry: dict[str, Any] = {"cell_type": cell.kind, "id": f"nb2pipe-{i}", "metadata": metadata}
        entry["source"] = cell.source.splitlines(keepends=True)
        if cell.kind == "code":
            entry["execution_count"] = None
            entry["outputs"] = []
        nb_cells.append(entry)
    nb = {
        "cells": nb_cells,
        "metadata": {"kernelspec": kernelspec, "nb2pipe": {**provenance, "nb2pipe-checksum": CHECKSUM_TOKEN}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    text = json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    text = text.replace(f'"nb2pipe-checksum": "{CHECKSUM_TOKEN}"', CHECKSUM_AT_IPYNB, 1)
    return stamp(text, CHECKSUM_AT_IPYNB)


# the checksum line comes before any text from the notebook (stamp stamps the first one)
_SPEC_HEADER = (
    "# The pipeline of the notebook named under `source`, written by `nb2pipe export`.\n"
    "# Edit the notebook and re-export; hand edits here are refused without --force.\n"
    f"# {CHECKSUM_AT}\n"
)
_PARAMS_HEADER = (
    "# Parameters of this pipeline, from the notebook's parameters cell.\n"
    "# Change values here (or with `nb2pipe run -p name=value`); re-export keeps your edits.\n"
)


def render_params(defaults: dict[str, Any], current: dict[str, Any] | None) -> str:
    """params.yaml: the notebook's defaults, or the user's values when they edited the file."""
    values = defaults if current is None else {k: current.get(k, v) for k, v in defaults.items()}
    body = dump_portable_yaml(values, block=True) if values else ""  # one name a line, to edit by hand
    if current is None:
        return stamp(_PARAMS_HEADER + f"# {CHECKSUM_AT}\n" + body, CHECKSUM_AT)
    return _PARAMS_HEADER + body


# --- the whole export ------------------------------------------------------------------------


@dataclass
class ExportResult:
    folder: Path
    pipeline: m.Pipeline
    written: list[str]
    unchanged: list[str]
    differing: list[str]  # with check=True: files that are out of date
    removed: list[str]
    warnings: list[str]


_NotebookPath = TypeVar("_NotebookPath", bound=PurePath)


def default_folder(notebook: _NotebookPath) -> _NotebookPath:
    """`pipelines/<stem>/` next to the notebook: always a child of `pipelines/`, so a notebook
    named `..ipynb` or `...ipynb` (stem `.` or `..`) is refused rather than exported into the
    notebook's own folder or a parent."""
    if notebook.stem in ("", ".", ".."):
        raise SpecError(
            f"notebook '{notebook.name}' has no name to give its pipeline folder; rename it, or choose "
            "the folder with -o pipelines/NAME"
        )
    return notebook.parent / m.PIPELINES_DIR / notebook.stem


def export_notebook(
    notebook: Path,
    out: Path | None = None,
    *,
    fmt: str | None = None,
    split_level: int | None = None,
    force: bool = False,
    check: bool = False,
    nb: dict[str, Any] | None = None,
) -> ExportResult:
    """Export `notebook` to its pipeline folder (`pipelines/<name>/` next to it by default).
    `fmt` and `split_level` default to what the folder's nb2pipe.yaml records (see plan_export)."""
    notebook = Path(os.path.abspath(notebook))
    folder = Path(os.path.abspath(out)) if out else default_folder(notebook)
    rendered = plan_export(notebook, folder, fmt, split_level, nb)
    _refuse_to_clobber_notebook(notebook, folder, rendered.files)
    written, unchanged, differing, removed = write_files(folder, rendered.files, force=force, check=check)
    return ExportResult(folder, rendered.pipeline, written, unchanged, differing, removed, rendered.warnings)


def plan_export(
    notebook: Path, folder: Path | None, fmt: str | None = None, split_level: int | None = None, nb: dict[str, Any] | None = None
) -> Rendered:
    """Everything `export_notebook` would write, without writing it. An option left None is the
    one the pipeline was exported with (nb2pipe.yaml's `export:`), else the default."""
    notebook = Path(os.path.abspath(notebook))
    folder = folder or default_folder(notebook)
    recorded = recorded_export_options(folder) if fmt is None or split_level is None else {}
    fmt = recorded.get("export_format", FORMATS[0]) if fmt is None else fmt
    split_level = recorded.get("split_level", DEFAULT_SPLIT_LEVEL) if split_level is None else split_level
    layout = Layout(
        notebook=os.path.relpath(notebook, folder).replace(os.sep, "/"),
        notebook_name=notebook.name,
        wdir=os.path.relpath(notebook.parent, folder).replace(os.sep, "/"),
        pipeline_from_wdir=os.path.relpath(folder, notebook.parent).replace(os.sep, "/"),
        project=str(notebook.parent),
        split_level=split_level,
    )
    check_layout(notebook, folder, layout)
    nb = read_notebook(notebook) if nb is None else nb
    plan = plan_notebook(nb, slugify(notebook.stem), split_level, check_out=out_checker(layout))
    return render_pipeline(plan, layout, fmt, _user_params(folder / m.PARAMS_FILE))


def _user_params(path: Path) -> dict[str, Any] | None:
    """The values of an existing params.yaml the user edited; None when nb2pipe may regenerate it."""
    if not os.path.lexists(path):
        return None
    fix = "fix it or delete it to regenerate it"
    text = read_user_text(path, what="file", limit=MAX_YAML_BYTES, error=SpecError, hint=fix)
    if is_pristine(text):
        return None
    data = parse_yaml(text, f"'{path}'", fix)
    return data if isinstance(data, dict) else {}


def _refuse_to_clobber_notebook(notebook: Path, folder: Path, files: dict[str, str]) -> None:
    targets = {os.path.normpath(folder / rel) for rel in files}
    if folder == notebook or str(notebook) in targets:
        raise OverwriteError(
            f"exporting to '{folder}' would overwrite the notebook '{notebook.name}'; choose another "
            "output folder with -o"
        )


