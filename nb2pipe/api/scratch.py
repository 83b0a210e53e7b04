"""A scratch workspace: run a pipeline in an isolated copy of its working folder.

For what must not touch the real workspace (a sweep's trials, `verify`):

    with scratch_workspace("pipelines/analysis") as scratch:
        report = scratch.run(params={"alpha": 0.5})
        outs = scratch.outs()      # {stage: {out path: digest}}, each in the output cache

1. Where: `<pipeline>/.nb2pipe/scratch/<id>/`, standing for the pipeline's working folder
   (wdir). The pipeline folder must lie inside its working folder (as `nb2pipe export` lays it
   out); it sits at the same place in the scratch, so every relative path in it still holds.
2. Copied: the pipeline file, the params file and the stage scripts (for a notebook: its pipeline
   as the export renders it now, written only to the scratch). Not nb2pipe.lock, last.json or
   runs.db: the scratch starts with no record, so each stage runs or is restored from the run
   cache.
3. Linked (symlinks): every dep that no stage produces, and the output cache
   (`.nb2pipe/cache`). Deps are read-only by contract: a stage that writes to a dep it did not
   declare as an out writes through the link into the real workspace. Through the linked cache
   a stage seen before (same code, params, deps) is restored instead of rerun, and every out a
   scratch run produces is collected in the real output cache.
4. `Scratch.run(...)` is `api.run` on the scratch pipeline, not recorded in runs.db (the caller
   records what it needs) and not mirrored into MLflow.
5. Leaving the `with` block removes the scratch folder: the links, never what they point to.
   The real workspace, its nb2pipe.lock and its run history are never written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2pipe import model as m
from nb2pipe.errors import SpecError

if TYPE_CHECKING:
    from nb2pipe.api.tracked import RunReport

SCRATCH_DIR = "scratch"
CACHE_DIR = "cache"


@dataclass(frozen=True)
class Scratch:
    """A scratch copy of a pipeline's working folder (see the module's description)."""

    root: Path  # stands for the working folder
    folder: Path  # the pipeline folder inside it

    def run(self, **options: Any) -> RunReport:
        """`api.run` on the scratch pipeline (any of its keyword options but `record`)."""
        from nb2pipe.api.tracked import run

        return run(self.folder, record=False, **options)

    def pipeline(self) -> m.Pipeline:
        from nb2pipe.spec import load_pipeline

        return load_pipeline(self.folder)

    def outs(self) -> dict[str, dict[str, str | None]]:
        """{stage: {out: digest}} of every stage the scratch's lock records."""
        from nb2pipe import lockfile

        return {name: dict(entry.get(lockfile.L_OUTS) or {}) for name, entry in lockfile.read_lock(self.pipeline()).items()}

    def metrics(self) -> dict[str, dict[str, Any]]:
        """{stage: metrics} read from the scratch's metrics files."""
        from nb2pipe.run.runner import read_metrics

        pipeline = self.pipeline()
        return {stage.name: read_metrics(pipeline, stage) for stage in pipeline.stages if stage.metrics}

    def path(self, relative: str) -> Path:
        """A dep or out path (relative to the working folder) in the scratch."""
        return self.root / relative


@contextlib.contextmanager
def scratch_workspace(target: str | os.PathLike[str]) -> Iterator[Scratch]:
    """A scratch workspace for the pipeline of `target` (a pipeline folder or a notebook),
    removed when the block ends."""
    from nb2pipe import lockfile
    from nb2pipe.api.tracked import folder_of
    from nb2pipe.spec import load_pipeline

    target = Path(target)
    files = _rendered_files(target) if target.suffix == ".ipynb" else None
    pipeline = load_pipeline(folder_of(target))
    inside = folder_inside_wdir(pipeline)
    parent = lockfile.state_dir(pipeline) / SCRATCH_DIR
    parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="", dir=parent))
    try:
        scratch = Scratch(root, root / inside)
        _copy_specs(pipeline, scratch.folder, files)
        link_inputs(pipeline, scratch)
        yield scratch
    finally:
        shutil.rmtree(root, ignore_errors=True)


def folder_inside_wdir(pipeline: m.Pipeline) -> str:
    """The pipeline folder relative to its working folder; a SpecError when it is not inside it."""
    from nb2pipe import lockfile

    wdir = lockfile.wdir(pipeline)
    inside = os.path.relpath(os.path.realpath(pipeline.root), os.path.realpath(wdir))
    if inside == os.curdir or inside.startswith(os.pardir):
        raise SpecError(
            f"pipeline folder '{pipeline.root}' is not inside its working folder '{wdir}'; a scratch workspace "
            "needs the layout nb2pipe export writes (pipelines/<name>/ beside the notebook)"
        )
    return inside


def copy_specs(pipeline: m.Pipeline, folder: Path) -> None:
    """The pipeline file, params file and stage scripts of `pipeline`, into `folder`."""
    _copy_specs(pipeline, folder, None)


def _rendered_files(notebook: Path) -> dict[str, str]:
    """The files of the notebook's pipeline folder as an export would write them now."""
    from nb2pipe.export import plan_export

    return plan_export(notebook, None).files


def _copy_specs(pipeline: m.Pipeline, folder: Path, files: dict[str, str] | None) -> None:
    """The pipeline file, params file and stage scripts, into the scratch's pipeline folder."""
    if files is not None:
        for relative, text in files.items():
            _write(folder / relative, text)
        return
    source = Path(pipeline.root)
    names = [m.PIPELINE_FILE, pipeline.params_file, *(s.script for s in pipeline.stages if s.script)]
    for relative in names:
        if (source / relative).is_file():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / relative, folder / relative)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def link_inputs(pipeline: m.Pipeline, scratch: Scratch) -> None:
    """Symlink the output cache and every dep that no stage produces (a dep named by a parameter:
    the file params.yaml's value names). What is already linked stays."""
    from nb2pipe import lockfile
    from nb2pipe.spec import load_params, resolved_pipeline

    pipeline = resolved_pipeline(pipeline, load_params(pipeline))

    cache = lockfile.state_dir(pipeline) / CACHE_DIR
    cache.mkdir(parents=True, exist_ok=True)
    own_state = scratch.folder / m.STATE_DIR
    own_state.mkdir(parents=True, exist_ok=True)
    if not os.path.lexists(own_state / CACHE_DIR):
        (own_state / CACHE_DIR).symlink_to(cache.resolve(), target_is_directory=True)
    outs = {_under(scratch.root, out) for stage in pipeline.stages for out in stage.produced}
    for dep in sorted({dep for stage in pipeline.stages for dep in stage.deps}):
        if os.path.isabs(dep):
            continue  # read where it is
        link = _under(scratch.root, dep)
        if not _is_within(link, scratch.root):
            raise SpecError(
                f"dep '{dep}' lies outside the working folder '{lockfile.wdir(pipeline)}', where a scratch workspace "
                "cannot link it; move it into the project"
            )
        real = lockfile.resolve(pipeline, dep)
        if any(_is_within(link, out) for out in outs) or not os.path.lexists(real) or os.path.lexists(link):
            continue  # a stage makes it; missing (the run says so); or linked with its folder already
        _link_tree(real, link, [out for out in outs if _is_within(out, link)])


def _link_tree(real: Path, link: Path, outs: list[Path]) -> None:
    """`link` -> `real`; where outs lie inside, a real folder instead, its entries linked one by
    one, so nothing a stage writes goes through a link."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if not outs:
        link.symlink_to(real.resolve(), target_is_directory=real.is_dir())
        return
    link.mkdir(exist_ok=True)
    for child in real.iterdir():
        inner = link / child.name
        if inner not in outs:
            _link_tree(child, inner, [out for out in outs if _is_within(out, inner)])


def _under(root: Path, relative: str) -> Path:
    return Path(os.path.normpath(root / relative))


def _is_within(path: Path, folder: Path) -> bool:
    """`path` is `folder` or lies under it (as written, no symlink resolved)."""
    return path == folder or str(path).startswith(str(folder).rstrip(os.sep) + os.sep)
