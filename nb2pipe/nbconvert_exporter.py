"""`jupyter nbconvert --to nb2pipe analysis.ipynb`: the same export through nbconvert.

The exporter writes the pipeline folder with `export_notebook` (so hand-edit protection holds)
and hands nbconvert a zip of that folder's files (nb2pipe.yaml, params.yaml, the stage
scripts; not its runs or its state): JupyterLab's "Save and Export Notebook As → nb2pipe"
downloads the whole pipeline, and the command line writes `analysis-pipeline.zip` beside the
notebook, next to `pipelines/analysis/`.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

from nbconvert.exporters import Exporter
from nbformat import NotebookNode

from nb2pipe import model as m
from nb2pipe.export import export_notebook


class Nb2PipeExporter(Exporter):
    """Export a notebook to `pipelines/<name>/` next to it."""

    export_from_notebook = "nb2pipe pipeline"
    output_mimetype = "application/zip"

    def _file_extension_default(self) -> str:
        return ".zip"

    # the base Exporter hands back the notebook; an exporter of text (as nbconvert's own
    # TemplateExporter) hands back its text
    def from_notebook_node(  # type: ignore[override]
        self, nb: NotebookNode, resources: dict[str, Any] | None = None, **kw: Any
    ) -> tuple[bytes, dict[str, Any]]:
        nb, resources = super().from_notebook_node(nb, resources, **kw)
        metadata = resources.get("metadata", {})
        name = metadata.get("name") or "notebook"
        notebook = Path(metadata.get("path") or ".") / f"{name}.ipynb"
        result = export_notebook(notebook, nb=nb)
        for warning in result.warnings:
            self.log.warning(warning)
        resources["unique_key"] = f"{name}-pipeline"
        resources["output_extension"] = ".zip"
        return _zipped(result.folder, sorted(result.written + result.unchanged), f"{m.PIPELINES_DIR}/{result.folder.name}"), resources


def _zipped(folder: Path, files: list[str], prefix: str) -> bytes:
    """The `files` of `folder` (paths relative to it) in a zip, under `prefix/`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative in files:
            archive.write(folder / relative, f"{prefix}/{relative}")
    return buffer.getvalue()
