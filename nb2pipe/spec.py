"""Read and write the pipeline file `nb2pipe.yaml` and the parameters file `params.yaml`.

`pipeline_to_yaml` and `load_pipeline` are inverses: export writes one, every other command reads
it back as a `Pipeline`. YAML is always read with `safe_load`.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from nb2pipe import model as m
from nb2pipe.errors import SpecError
from nb2pipe.hashing import memo_by_stat

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
    """Load the pipeline at `path` (its folder or its nb2pipe.yaml)."""
    folder = pipeline_folder(path)
    spec_file = folder / m.PIPELINE_FILE
    if not spec_file.is_file():
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
    version = data.get(m.K_VERSION)
    if version != m.SPEC_VERSION:
        raise SpecError(f"'{where}': version {version!r} is not supported; this nb2pipe reads version {m.SPEC_VERSION}")
    stages_data = data.get(m.K_STAGES)
    if not isinstance(stages_data, dict) or not stages_data:
        raise SpecError(f"'{where}': 'stages' must be a mapping of stage names to their settings")
    source = data.get(m.K_SOURCE) or {}
    if not isinstance(source, dict):
        raise SpecError(f"'{where}': 'source' must be a mapping with 'notebook' and 'hash'")
    return m.Pipeline(
        # symlinks kept: with a symlinked pipelines/ folder, wdir is still the notebook's folder
        root=os.path.abspath(folder),
        stages=tuple(_load_stage(name, entry, where) for name, entry in stages_data.items()),
        wdir=str(data.get(m.K_WDIR, ".")),
        params_file=str(data.get(m.K_PARAMS, m.PARAMS_FILE)),
        source_notebook=source.get(m.K_NOTEBOOK),
        source_hash=source.get(m.K_HASH),
        kernel=data.get(m.K_KERNEL),
    )


def _read_yaml(path: Path) -> Any:
    try:
        return copy.deepcopy(memo_by_stat("yaml", path, lambda: safe_load(path.read_text(encoding="utf-8"))))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise SpecError(f"'{path}' is not valid YAML{at}: {problem}; fix the file or re-export") from None


def _load_stage(name: Any, entry: Any, where: str) -> m.Stage:
    if not isinstance(name, str) or not m.STAGE_NAME_RE.match(name):
        raise SpecError(f"'{where}': bad stage name {name!r}; {m.STAGE_NAME_RULE}")
    if not isinstance(entry, dict):
        raise SpecError(f"'{where}': stage '{name}' must be a mapping (script or cmd, deps, outs, ...)")
    script, cmd = entry.get(m.K_SCRIPT), entry.get(m.K_CMD)
    if isinstance(cmd, str):
        raise SpecError(
            f"'{where}': stage '{name}': cmd must be an argv list, e.g. [python, tools/fetch.py], not a shell string"
        )
    if (script is None) == (cmd is None):
        raise SpecError(f"'{where}': stage '{name}' needs exactly one of 'script' or 'cmd'")
    if cmd is not None and not (isinstance(cmd, list) and cmd and all(isinstance(a, (str, int, float)) for a in cmd)):
        raise SpecError(f"'{where}': stage '{name}': cmd must be a non-empty list of strings")
    lists = {key: _string_list(entry.get(key), key, name, where) for key in _STAGE_LIST_KEYS}
    meta = entry.get(m.K_META) or {}
    if not isinstance(meta, dict):
        raise SpecError(f"'{where}': stage '{name}': meta must be a mapping")
    cells = entry.get(m.K_CELLS) or []
    loads = entry.get(m.K_LOADS) or {}
    if not isinstance(loads, dict):
        raise SpecError(f"'{where}': stage '{name}': loads must map variable names to stages")
    return m.Stage(
        loads=tuple((str(k), str(v)) for k, v in loads.items()),
        saves=tuple(_string_list(entry.get(m.K_SAVES), m.K_SAVES, name, where)),
        inferred=tuple(_string_list(entry.get(m.K_INFERRED), m.K_INFERRED, name, where)),
        name=name,
        script=str(script) if script is not None else None,
        cmd=tuple(str(a) for a in cmd) if cmd is not None else None,
        cells=tuple(int(c) for c in cells),
        meta=m.freeze_meta({str(k): [str(v) for v in (vs if isinstance(vs, list) else [vs])] for k, vs in meta.items()}),
        **{key: tuple(values) for key, values in lists.items()},
    )


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
    if not path.exists():
        return {}
    data = _read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"'{path}' must be a mapping of parameter names to values")
    return data


def effective_params(pipeline: m.Pipeline, overrides: dict[str, Any]) -> dict[str, Any]:
    """params.yaml with `overrides` on top; an override of an unknown parameter is an error."""
    params = load_params(pipeline)
    unknown = [k for k in overrides if k not in params]
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], list(params), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known parameters: {', '.join(params) or 'none'}"
        raise SpecError(f"unknown parameter '{unknown[0]}'; {hint}")
    return {**params, **overrides}
