"""Read and write the pipeline file `nb2pipe.yaml` and the parameters file `params.yaml`.

`pipeline_to_yaml` and `load_pipeline` are inverses: export writes one, every other command reads
it back as a `Pipeline`. YAML is always read with `safe_load`, after files.read_user_text has
refused what is not a regular UTF-8 file, and alias bombs are refused. Every key of a hand-edited
nb2pipe.yaml is checked (type, known name, paths without NUL, outputs inside the project), so a
damaged file is one line naming the file and the stage, never a traceback.
"""

from __future__ import annotations

import copy
import dataclasses
import keyword
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from nb2pipe import model as m
from nb2pipe.errors import SpecError, close_match
from nb2pipe.files import out_problem, read_user_text
from nb2pipe.hashing import memo_by_stat
from nb2pipe.settings import settings_of
from nb2pipe.settings import to_dict as settings_to_dict

_STAGE_LIST_KEYS = (m.K_DEPS, m.K_OUTS, m.K_PARAMS, m.K_METRICS, m.K_AFTER)
# libyaml's loader when PyYAML has it: the same safe subset of YAML, ten times faster
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """YAML to data, never constructing arbitrary objects (safe_load semantics)."""
    return yaml.load(text, Loader=_SAFE_LOADER)


def pipeline_to_dict(p: m.Pipeline) -> dict[str, Any]:
    """The content of nb2pipe.yaml, keys in reading order, empty lists left out."""
    data: dict[str, Any] = {m.K_VERSION: p.version}
    if p.source_notebook:
        data[m.K_SOURCE] = {m.K_NOTEBOOK: p.source_notebook, m.K_HASH: p.source_hash}
    data[m.K_WDIR] = p.wdir
    data[m.K_PARAMS] = p.params_file
    if p.kernel:
        data[m.K_KERNEL] = p.kernel
    options = {m.K_FORMAT: p.export_format, m.K_SPLIT_LEVEL: p.split_level}
    if options := {key: value for key, value in options.items() if value is not None}:
        data[m.K_EXPORT] = options
    if defaults := settings_to_dict(p.defaults):
        data[m.K_DEFAULTS] = defaults
    data[m.K_STAGES] = {s.name: _stage_to_dict(s) for s in p.stages}
    return data


def _stage_to_dict(s: m.Stage) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if s.script:
        entry[m.K_SCRIPT] = s.script
    if s.cmd:
        entry[m.K_CMD] = list(s.cmd)
    if s.cells:
        entry[m.K_CELLS] = list(s.cells)
    for key in _STAGE_LIST_KEYS:
        if values := getattr(s, key):
            entry[key] = list(values)
    if s.loads:
        entry[m.K_LOADS] = dict(s.loads)
    if s.saves:
        entry[m.K_SAVES] = list(s.saves)
    if s.inferred:
        entry[m.K_INFERRED] = list(s.inferred)
    if s.meta:
        entry[m.K_META] = m.meta_dict(s.meta)
    if own := settings_to_dict(s.settings):
        entry[m.K_SETTINGS] = own
    return entry


def dump_yaml(data: Any) -> str:
    """Deterministic, diff-friendly YAML: block mappings, flow lists, no line wrapping."""
    return yaml.safe_dump(
        data, sort_keys=False, default_flow_style=None, allow_unicode=True, width=10_000
    )


def pipeline_folder(path: Path) -> Path:
    """The folder of a pipeline given as its folder or its nb2pipe.yaml."""
    return path.parent if path.name == m.PIPELINE_FILE else path


def load_pipeline(path: Path) -> m.Pipeline:
    """Load the pipeline at `path` (its folder or its nb2pipe.yaml); every field is checked."""
    folder = pipeline_folder(path)
    spec_file = folder / m.PIPELINE_FILE
    if not os.path.lexists(spec_file):
        hint = (
            f"export the notebook first: nb2pipe export '{path}'"
            if path.suffix == ".ipynb"
            else "pass a folder written by `nb2pipe export`"
        )
        raise SpecError(f"no pipeline at '{path}' ('{m.PIPELINE_FILE}' not found); {hint}")
    data = _read_yaml(spec_file)
    where = str(spec_file)
    if not isinstance(data, dict):
        raise SpecError(f"'{where}' must be a mapping with 'version' and 'stages'")
    _refuse_unknown_keys(data, _PIPELINE_KEYS, f"'{where}'")
    version = data.get(m.K_VERSION)
    if type(version) is not int or version != m.SPEC_VERSION:
        raise SpecError(f"'{where}': version {version!r} is not supported; this nb2pipe reads version {m.SPEC_VERSION}")
    stages_data = data.get(m.K_STAGES)
    if not isinstance(stages_data, dict) or not stages_data:
        raise SpecError(f"'{where}': 'stages' must be a mapping of stage names to their settings")
    source = data.get(m.K_SOURCE) or {}
    if not isinstance(source, dict):
        raise SpecError(f"'{where}': 'source' must be a mapping with 'notebook' and 'hash'")
    _refuse_unknown_keys(source, (m.K_NOTEBOOK, m.K_HASH), f"'{where}': source:")
    pipeline = m.Pipeline(
        # symlinks kept: with a symlinked pipelines/ folder, wdir is still the notebook's folder
        root=os.path.abspath(folder),
        stages=tuple(_load_stage(name, entry, where) for name, entry in stages_data.items()),
        wdir=_path(data.get(m.K_WDIR, "."), f"'{where}': 'wdir'"),
        params_file=_path(data.get(m.K_PARAMS, m.PARAMS_FILE), f"'{where}': 'params'"),
        source_notebook=_optional_path(source.get(m.K_NOTEBOOK), f"'{where}': 'source.notebook'"),
        source_hash=_optional_string(source.get(m.K_HASH), f"'{where}': 'source.hash' must be a string"),
        kernel=_optional_string(data.get(m.K_KERNEL), f"'{where}': 'kernel' must be a kernel name (a string, e.g. python3)"),
        **_export_options(data.get(m.K_EXPORT), where),
        defaults=_settings(data.get(m.K_DEFAULTS), f"'{where}': defaults:", "defaults"),
    )
    check_outputs_inside(pipeline, where)
    return pipeline


_PIPELINE_KEYS = (m.K_VERSION, m.K_SOURCE, m.K_WDIR, m.K_PARAMS, m.K_KERNEL, m.K_EXPORT, m.K_DEFAULTS, m.K_STAGES)
_STAGE_KEYS = (m.K_SCRIPT, m.K_CMD, m.K_CELLS, *_STAGE_LIST_KEYS, m.K_LOADS, m.K_SAVES, m.K_INFERRED, m.K_META, m.K_SETTINGS)
MAX_YAML_BYTES = 64 << 20
MAX_YAML_VALUES = 1_000_000  # after aliases are expanded: more is an alias bomb, not a pipeline


def recorded_export_options(folder: Path) -> dict[str, Any]:
    """The options (`export_format`, `split_level`) the pipeline in `folder` was exported with, as
    nb2pipe.yaml records them; empty when there is no such file or it is not YAML (export then
    uses its defaults, and refuses to overwrite a damaged file without --force)."""
    spec_file = folder / m.PIPELINE_FILE
    if not spec_file.is_file():
        return {}
    try:
        data = _read_yaml(spec_file)
    except SpecError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {key: value for key, value in _export_options(data.get(m.K_EXPORT), str(spec_file)).items() if value is not None}


def _export_options(value: Any, where: str) -> dict[str, Any]:
    """nb2pipe.yaml's `export: {format: py, split_level: 2}`, checked, as Pipeline fields."""
    if value is None:
        return {}
    fix = "fix it, or export again with --format and --split-level (and --force)"
    if not isinstance(value, dict):
        raise SpecError(f"'{where}': 'export' must be a mapping like {{format: py, split_level: 2}}; {fix}")
    _refuse_unknown_keys(value, (m.K_FORMAT, m.K_SPLIT_LEVEL), f"'{where}': export:")
    fmt, level = value.get(m.K_FORMAT), value.get(m.K_SPLIT_LEVEL)
    if fmt is not None and fmt not in m.STAGE_FORMATS:
        raise SpecError(f"'{where}': 'export.format' must be {' or '.join(m.STAGE_FORMATS)}, not {fmt!r}; {fix}")
    if level is not None and not (type(level) is int and level in m.HEADING_LEVELS):
        raise SpecError(f"'{where}': 'export.split_level' must be a heading level from 1 to 6, not {level!r}; {fix}")
    return {"export_format": fmt, "split_level": level}


def _refuse_unknown_keys(data: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in known:
            raise SpecError(f"{where} unknown key {key!r}; {close_match(str(key), known, 'keys')}")


def _path(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(f"{what} must be a path (a non-empty string), not {value!r}")
    if "\0" in value:
        raise SpecError(f"{what} contains a control character (NUL); fix the path")
    return value


def _optional_path(value: Any, what: str) -> str | None:
    return None if value is None else _path(value, what)


def _optional_string(value: Any, message: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise SpecError(message)
    return value


def check_outputs_inside(pipeline: m.Pipeline, where: str) -> None:
    """Refuse outs and metrics that would escape the project or cover the pipeline folder."""
    for stage in pipeline.stages:
        for path in stage.produced:
            if problem := output_problem(pipeline, path):
                raise SpecError(f"'{where}': stage '{stage.name}': {problem}")


def output_problem(pipeline: m.Pipeline, path: str) -> str | None:
    """Why `path` cannot be an output of `pipeline` (None when it can): strictly inside the
    project (the notebook's folder) or the pipeline folder, symlinks resolved, and neither the
    pipeline folder nor the notebook (files.out_problem)."""
    problem = _out_rule_broken(pipeline, path)
    if problem is None:
        return None
    project = os.path.join(pipeline.root, pipeline.wdir)
    return (
        f"output '{path}' {problem}; nb2pipe writes and restores outputs only inside the project "
        f"'{os.path.normpath(project)}': fix the path"
    )


def _out_rule_broken(pipeline: m.Pipeline, path: str) -> str | None:
    project = os.path.join(pipeline.root, pipeline.wdir)
    protected = {"the pipeline folder": pipeline.root}
    if pipeline.source_notebook:
        protected["the notebook"] = os.path.join(pipeline.root, pipeline.source_notebook)
    return out_problem(path, project, protected, also_inside=(pipeline.root,))


# --- paths that depend on parameters: `${name}` templates ----------------------------------------

TEMPLATE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def resolve_template(path: str, params: Mapping[str, Any], where: str) -> str:
    """`path` with each `${name}` replaced by str() of parameter `name` (as the notebook's own
    code formats it); a SpecError when `params` (read from `where`) has no value for one."""
    if "${" not in path:
        return path

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            raise SpecError(f"path '{path}' depends on parameter '{name}', which {where} does not set; "
                            "add it there, or re-export the notebook")
        return str(params[name])

    resolved = TEMPLATE.sub(value, path)
    while resolved.startswith("./"):
        resolved = resolved[2:]
    return resolved


def resolved_pipeline(pipeline: m.Pipeline, params: Mapping[str, Any]) -> m.Pipeline:
    """`pipeline` with every `${name}` in its deps and outs replaced by the value `params` gives:
    the files a run with these values reads and writes. Run, status, checkout and the exports all
    resolve through here. An out that resolves to a path no out may have (files.out_problem) is a
    SpecError naming the stage, the template and the value."""
    if not any("${" in path for stage in pipeline.stages for path in (*stage.deps, *stage.produced)):
        return pipeline
    where = f"'{Path(pipeline.root) / pipeline.params_file}'"
    stages = []
    for stage in pipeline.stages:
        outs = tuple(resolve_template(p, params, where) for p in stage.outs)
        for template, path in zip(stage.outs, outs, strict=True):
            if template != path and (problem := _out_rule_broken(pipeline, path)):
                names = ", ".join(f"'{n}'" for n in TEMPLATE.findall(template))
                raise SpecError(f"stage '{stage.name}': out '{template}' is '{path}' with these parameter values, "
                                f"which {problem}; give {names} a path inside the project")
        stages.append(dataclasses.replace(
            stage,
            deps=tuple(resolve_template(p, params, where) for p in stage.deps),
            outs=outs,
            inferred=tuple(resolve_template(p, params, where) for p in stage.inferred),
        ))
    return dataclasses.replace(pipeline, stages=tuple(stages))


def declares(paths: Sequence[str], path: str) -> bool:
    """Whether `path` is one of `paths`, where a `${name}` in them stands for any value."""
    for declared in paths:
        if declared == path:
            return True
        if "${" in declared:
            pattern = ".+".join(re.escape(part) for part in TEMPLATE.split(declared)[::2])
            if re.fullmatch(pattern, path):
                return True
    return False


def _read_yaml(path: Path) -> Any:
    data = memo_by_stat("yaml", path, lambda: _parse_yaml(path))
    return copy.deepcopy(data)


def _parse_yaml(path: Path) -> Any:
    text = read_user_text(path, what="file", limit=MAX_YAML_BYTES, error=SpecError, hint="fix the file or re-export")
    return parse_yaml(text, f"'{path}'", "fix the file or re-export")


def parse_yaml(text: str, where: str, fix: str) -> Any:
    """YAML text to data (safe_load), refusing invalid YAML and alias bombs in one line."""
    try:
        data = safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise SpecError(f"{where} is not valid YAML{at}: {problem}; {fix}") from None
    except RecursionError:
        raise SpecError(f"{where} is nested too deeply; {fix}") from None
    if _expanded_size(data, MAX_YAML_VALUES) > MAX_YAML_VALUES:
        raise SpecError(f"{where} expands to more than {MAX_YAML_VALUES:,} values (YAML aliases); {fix}")
    return data


def _expanded_size(data: Any, budget: int) -> int:
    """How many values `data` holds with every alias expanded, counting no further than budget + 1."""
    count, todo = 0, [data]
    while todo and count <= budget:
        value = todo.pop()
        count += 1
        if isinstance(value, dict):
            todo.extend(value.keys())
            todo.extend(value.values())
        elif isinstance(value, (list, tuple, set)):
            todo.extend(value)
    return count


def _load_stage(name: Any, entry: Any, where: str) -> m.Stage:
    if not isinstance(name, str) or not m.STAGE_NAME_RE.fullmatch(name):
        raise SpecError(f"'{where}': bad stage name {name!r}; {m.STAGE_NAME_RULE}")
    if not isinstance(entry, dict):
        raise SpecError(f"'{where}': stage '{name}' must be a mapping (script or cmd, deps, outs, ...)")
    at = f"'{where}': stage '{name}':"
    _refuse_unknown_keys(entry, _STAGE_KEYS, at)
    script, cmd = entry.get(m.K_SCRIPT), entry.get(m.K_CMD)
    if isinstance(cmd, str):
        raise SpecError(f"{at} cmd must be an argv list, e.g. [python, tools/fetch.py], not a shell string")
    if (script is None) == (cmd is None):
        raise SpecError(f"'{where}': stage '{name}' needs exactly one of 'script' or 'cmd'")
    if cmd is not None and not (isinstance(cmd, list) and cmd and all(_is_argument(a) for a in cmd)):
        raise SpecError(f"{at} cmd must be a non-empty list of strings")
    lists = {key: _path_list(entry.get(key), key, at) for key in (m.K_DEPS, m.K_OUTS, m.K_METRICS)}
    lists[m.K_PARAMS] = _python_names(entry.get(m.K_PARAMS), m.K_PARAMS, at)
    lists[m.K_AFTER] = _string_list(entry.get(m.K_AFTER), m.K_AFTER, name, where)
    return m.Stage(
        loads=_loads(entry.get(m.K_LOADS), at),
        saves=tuple(_python_names(entry.get(m.K_SAVES), m.K_SAVES, at)),
        inferred=tuple(_string_list(entry.get(m.K_INFERRED), m.K_INFERRED, name, where)),
        name=name,
        script=_path(script, f"{at} 'script'") if script is not None else None,
        cmd=tuple(str(a) for a in cmd) if cmd is not None else None,
        cells=_cell_numbers(entry.get(m.K_CELLS), at),
        meta=_meta(entry.get(m.K_META), at),
        settings=_settings(entry.get(m.K_SETTINGS), f"{at} settings:", name),
        **{key: tuple(values) for key, values in lists.items()},
    )


def _is_argument(value: Any) -> bool:
    return (isinstance(value, str) and "\0" not in value) or type(value) in (int, float)


def _path_list(value: Any, key: str, at: str) -> list[str]:
    if value is None:
        return []
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise SpecError(f"{at} '{key}' must be a list of strings")
    if "" in value:
        raise SpecError(f"{at} '{key}' holds an empty path; remove it or name a file")
    if any("\0" in v for v in value):
        raise SpecError(f"{at} '{key}' holds a path with a control character (NUL); fix the path")
    return value


def _cell_numbers(value: Any, at: str) -> tuple[int, ...]:
    if value is None:
        return ()
    if not (isinstance(value, list) and all(type(v) is int and v > 0 for v in value)):
        raise SpecError(f"{at} 'cells' must be a list of cell numbers (1, 2, ...); re-export the notebook")
    return tuple(value)


def _meta(value: Any, at: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if value is None:
        return ()
    problem = SpecError(f"{at} 'meta' must map names to strings or lists of strings")
    if not isinstance(value, dict):
        raise problem
    meta: dict[str, list[str]] = {}
    for key, values in value.items():
        values = values if isinstance(values, list) else [values]
        if not isinstance(key, str) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
            raise problem
        meta[key] = [str(v) for v in values]
    return m.freeze_meta(meta)


def _settings(value: Any, at: str, stage: str) -> m.Settings:
    if value is None:
        return m.Settings()
    if not isinstance(value, dict):
        raise SpecError(f"{at} must be a mapping of settings, e.g. {{timeout: 30m, retries: 2}}")
    return settings_of(value, at, stage)


def _loads(value: Any, at: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not (isinstance(value, dict) and all(_is_python_name(k) and _is_stage_name(v) for k, v in value.items())):
        raise SpecError(f"{at} 'loads' must map variable names to stage names")
    return tuple(value.items())


def _python_names(value: Any, key: str, at: str) -> list[str]:
    """Parameter and variable names: they end up in generated code, so each must be a Python name."""
    if value is None:
        return []
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise SpecError(f"{at} '{key}' must be a list of strings")
    for name in value:
        if not _is_python_name(name):
            raise SpecError(f"{at} '{key}' holds {name!r}, which is not a Python name; fix it or re-export")
    return value


def _is_python_name(value: Any) -> bool:
    return isinstance(value, str) and value.isidentifier() and not keyword.iskeyword(value)


def _is_stage_name(value: Any) -> bool:
    return isinstance(value, str) and bool(m.STAGE_NAME_RE.fullmatch(value))


def _string_list(value: Any, key: str, stage: str, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise SpecError(f"'{where}': stage '{stage}': '{key}' must be a list of strings")


# --- params.yaml -----------------------------------------------------------------------------


def load_params(pipeline: m.Pipeline) -> dict[str, Any]:
    """The parameter values in the pipeline's params file (empty when there is none)."""
    path = Path(pipeline.root) / pipeline.params_file
    if not os.path.lexists(path):
        return {}
    return check_params(_read_yaml(path), f"'{path}'")


def parse_value(text: str) -> bool | int | float | str | None:
    """A -p value, typed as papermill types it: True/False, None, int, float, else a string.
    (NaN is a float like any other: staleness compares parameter values as canonical JSON.)"""
    if text in ("True", "False"):
        return text == "True"
    if text == "None":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def check_params(data: Any, where: str) -> dict[str, Any]:
    """Parameter values read from a YAML file: a mapping whose keys are names (strings)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"{where} must be a mapping of parameter names to values")
    for name in data:
        if not isinstance(name, str):
            raise SpecError(f"{where}: parameter name {name!r} is not a string; quote it or rename it")
    return data


def effective_params(pipeline: m.Pipeline, overrides: dict[str, Any]) -> dict[str, Any]:
    """params.yaml with `overrides` on top; an override of an unknown parameter is an error."""
    params = load_params(pipeline)
    unknown = [k for k in overrides if k not in params]
    if unknown:
        raise SpecError(f"unknown parameter '{unknown[0]}'; {close_match(unknown[0], params, 'parameters')}")
    return {**params, **overrides}


def stage_param_values(pipeline: m.Pipeline, stage: m.Stage, params: dict[str, Any]) -> dict[str, Any]:
    """The values of the parameters `stage` reads, in its order; a SpecError naming the stage, the
    parameter and the params file when `params` has no value for one of them."""
    missing = [name for name in stage.params if name not in params]
    if missing:
        path = Path(pipeline.root) / pipeline.params_file
        raise SpecError(
            f"stage '{stage.name}' reads parameter '{missing[0]}', which '{path}' does not set; "
            "add it there, or re-export the notebook"
        )
    return {name: params[name] for name in stage.params}
