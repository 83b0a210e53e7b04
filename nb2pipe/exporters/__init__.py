"""Export a pipeline folder to another engine: DVC, Airflow or Kubeflow Pipelines (DESIGN §7).

Each exporter is a pure text renderer with one function,

    render(pipeline: Pipeline, params: dict, **options) -> dict[str, str]

that returns the files to write, keyed by their path relative to the pipeline's `wdir` (the
notebook's folder), and a tuple `OPTIONS` naming the keyword options it takes. `export_to` loads
a pipeline folder, renders it and writes the files. Every engine runs a stage the same way:
`python -m nb2pipe.run.single PIPELINE_DIR STAGE` (see run/single.py), in the notebook's
folder, with the stage's parameters; it never looks at nb2pipe's own staleness records. The
exporters only write text: they import nothing from nb2pipe.run (an import-linter contract).
A dep or out that depends on a parameter (`${input_file}`) reaches the renderer resolved with
params.yaml's values, unless the exporter sets `KEEPS_TEMPLATES` (DVC resolves it itself).
An exporter may also define `unexpressed(pipeline) -> str | None`: one line naming the
per-stage settings (issue 17) its engine cannot express, which `export_to` hands to its `warn`.

| target   | writes (relative to the notebook's folder)   | needs at export time |
|----------|----------------------------------------------|----------------------|
| dvc      | pipelines/<name>/dvc.yaml (stages use `wdir`) | nothing              |
| airflow  | dags/<name>.py                               | nothing              |
| kubeflow | kubeflow/<name>.yaml (compiled KFP v2 spec)  | kfp (+ kfp-kubernetes for labels/annotations) |
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from nb2pipe import model as m
from nb2pipe.errors import OverwriteError, SpecError, close_match
from nb2pipe.files import check_name
from nb2pipe.hashing import atomic_write

EXPORTERS = {
    "dvc": "nb2pipe.exporters.dvc",
    "airflow": "nb2pipe.exporters.airflow",
    "kubeflow": "nb2pipe.exporters.kubeflow",
}

# The module every generated file runs a stage with (named, not imported: see run/single.py).
STAGE_MODULE = "nb2pipe.run.single"

# First-line marker of every generated file: a file without it is the user's and is not overwritten.
MARKER = "written by `nb2pipe export --to"


def exporter(target: str) -> ModuleType:
    """The module that renders `target`; a SpecError naming the known targets otherwise."""
    if target not in EXPORTERS:
        raise SpecError(f"unknown export target '{target}'; {close_match(target, EXPORTERS, 'targets')}")
    return importlib.import_module(EXPORTERS[target])


def pipeline_name(pipeline: m.Pipeline) -> str:
    """The pipeline's name: its folder's name (`pipelines/<name>/`). Generated files carry it as
    data (quoted), and refuse it when it holds a control character."""
    name = Path(pipeline.root).name
    check_name(name, "pipeline folder name", "rename the folder")
    return name


def wdir_path(pipeline: m.Pipeline) -> Path:
    """The folder the stages run in (the notebook's folder), absolute."""
    return Path(os.path.normpath(Path(pipeline.root) / pipeline.wdir))


def pipeline_from_wdir(pipeline: m.Pipeline) -> str:
    """The pipeline folder as a path relative to `wdir`, with forward slashes."""
    path = os.path.relpath(pipeline.root, wdir_path(pipeline)).replace(os.sep, "/")
    check_name(path, "pipeline folder path", "rename the folder")
    return path


_NOT_IN_DOCSTRING = re.compile(r'[\x00-\x09\x0b-\x1f\x7f\\]|"(?="")|"$')


def docstring(text: str) -> str:
    """`text` as a triple-quoted Python string literal that holds it exactly, whatever it holds
    (backslashes, quotes, control characters are escaped)."""
    return '"""' + _NOT_IN_DOCSTRING.sub(lambda c: f"\\x{ord(c.group()):02x}", text) + '"""'


def render(target: str, pipeline_dir: Path, **options: Any) -> tuple[Path, dict[str, str]]:
    """Load the pipeline at `pipeline_dir` and render it for `target`: (wdir, files)."""
    wdir, files, _ = _rendered(target, pipeline_dir, options)
    return wdir, files


def _rendered(target: str, pipeline_dir: Path, options: dict[str, Any]) -> tuple[Path, dict[str, str], str | None]:
    """(wdir, files, the warning line naming the settings the engine cannot express, or None)."""
    from nb2pipe.spec import load_params, load_pipeline, resolved_pipeline

    module = exporter(target)
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(module.OPTIONS))
    if unknown:
        takes = ", ".join(module.OPTIONS) or "no options"
        raise SpecError(f"option '{unknown[0]}' does not apply to --to {target} (it takes: {takes})")
    pipeline = load_pipeline(Path(pipeline_dir))
    params = load_params(pipeline)
    if not getattr(module, "KEEPS_TEMPLATES", False):  # paths named by parameters, as params.yaml names them
        pipeline = resolved_pipeline(pipeline, params)
    files = module.render(pipeline, params, **given)
    unexpressed = getattr(module, "unexpressed", None)  # the settings the engine has no word for
    return wdir_path(pipeline), files, unexpressed(pipeline) if unexpressed else None


def export_to(
    target: str, pipeline_dir: Path, *, force: bool = False, warn: Callable[[str], None] | None = None, **options: Any
) -> list[Path]:
    """Write the `target` files of the pipeline at `pipeline_dir`; the paths written (all of them,
    changed or not). A file there that nb2pipe did not write is refused unless `force`.
    Options set to None are ignored, so a CLI can pass every flag it has. `warn` is given the
    one line naming the stage settings the engine cannot express, when there are any."""
    base, files, unexpressed = _rendered(target, pipeline_dir, options)
    if unexpressed and warn:
        warn(unexpressed)
    return write_files({base / rel: text for rel, text in files.items()}, force=force)


def write_files(files: dict[Path, str], *, force: bool = False) -> list[Path]:
    """Write generated files (absolute path -> text); the paths, changed or not. A file there
    without nb2pipe's marker is the user's: refused unless `force`."""
    written = []
    for path, text in files.items():
        old = _read(path)
        if old is not None and old != text and not force and MARKER not in "".join(old.splitlines(True)[:3]):
            raise OverwriteError(
                f"'{path}' exists and was not written by nb2pipe; move it away, or export with --force to overwrite it"
            )
        if old != text:
            atomic_write(path, text)
        written.append(path)
    return written


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
