"""`jupyter nbconvert --to nb2pipe analysis.ipynb`: the same export through nbconvert.

The exporter writes the pipeline folder with `export_notebook` (so hand-edit protection holds)
and hands nbconvert the pipeline file, which nbconvert's writer then puts in the same place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nbconvert.exporters import Exporter
from nbformat import NotebookNode

from nb2pipe import model as m
from nb2pipe.export import export_notebook


class Nb2PipeExporter(Exporter):
    """Export a notebook to `pipelines/<name>/` next to it."""

    export_from_notebook = "nb2pipe pipeline"
    output_mimetype = "text/yaml"

    def _file_extension_default(self) -> str:
        return ".yaml"

    # the base Exporter hands back the notebook; an exporter of text (as nbconvert's own
    # TemplateExporter) hands back its text
    def from_notebook_node(  # type: ignore[override]
        self, nb: NotebookNode, resources: dict[str, Any] | None = None, **kw: Any
    ) -> tuple[str, dict[str, Any]]:
        nb, resources = super().from_notebook_node(nb, resources, **kw)
        metadata = resources.get("metadata", {})
        name = metadata.get("name") or "notebook"
        notebook = Path(metadata.get("path") or ".") / f"{name}.ipynb"
        result = export_notebook(notebook, nb=nb)
        for warning in result.warnings:
            self.log.warning(warning)
        resources["unique_key"] = f"{m.PIPELINES_DIR}/{name}/{Path(m.PIPELINE_FILE).stem}"
        resources["output_extension"] = Path(m.PIPELINE_FILE).suffix
        return (result.folder / m.PIPELINE_FILE).read_text(encoding="utf-8"), resources
