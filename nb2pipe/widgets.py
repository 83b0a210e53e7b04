"""`PipelineView(path)`: the sidebar's status table and run buttons in any notebook front end.

Works wherever ipywidgets does (JupyterLab, classic Notebook, VS Code). Runs go through
`nb2pipe run` in a child process, as from a terminal, and the table refreshes as stages finish.
"""

from __future__ import annotations

import html
import subprocess
import sys
import threading
from pathlib import Path

import ipywidgets as widgets

from nb2pipe.spec import load_params, load_pipeline
from nb2pipe.state import pipeline_status

_ICONS = {"up-to-date": "✅", "stale": "🟡", "never-run": "⚪", "failed": "❌", "running": "⏳"}


class PipelineView(widgets.VBox):
    """A live table of a pipeline's stages with their state, reasons and run buttons."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.suffix == ".ipynb":
            from nb2pipe.export import default_folder

            self.path = default_folder(self.path)
        self.table = widgets.HTML()
        self.message = widgets.HTML()
        self.run_stale = widgets.Button(description="Run stale", icon="play")
        self.run_all = widgets.Button(description="Run all", icon="forward")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.run_stale.on_click(lambda _: self.run())
        self.run_all.on_click(lambda _: self.run(force=True))
        self.refresh_button.on_click(lambda _: self.refresh())
        self.stage_picker = widgets.Dropdown(description="Stage")
        self.run_stage = widgets.Button(description="Run stage")
        self.run_stage.on_click(lambda _: self.run(stages=[self.stage_picker.value], force=True))
        buttons = widgets.HBox([self.run_stale, self.run_all, self.refresh_button, self.stage_picker, self.run_stage])
        super().__init__([buttons, self.table, self.message])
        self._process: subprocess.Popen | None = None
        self.refresh()

    def refresh(self) -> None:
        pipeline = load_pipeline(self.path)
        report = pipeline_status(pipeline, load_params(pipeline))
        self.stage_picker.options = pipeline.names
        rows = []
        for status in report.stages:
            reasons = "<br>".join(html.escape(str(r)) for r in status.reasons) or "-"
            last = status.last_run or {}
            duration = f"{last['duration']:.1f}s" if last.get("duration") else "-"
            rows.append(
                f"<tr><td>{_ICONS.get(status.state, '')} {html.escape(status.name)}</td>"
                f"<td>{status.state}</td><td>{reasons}</td><td>{duration}</td></tr>"
            )
        banner = "" if report.source_in_sync is not False else "<p><b>The notebook changed since the last export.</b></p>"
        self.table.value = (
            f"{banner}<table><tr><th>stage</th><th>state</th><th>why</th><th>last run</th></tr>{''.join(rows)}</table>"
        )

    def run(self, stages: list[str] | None = None, force: bool = False) -> None:
        """Start `nb2pipe run` in the background; the table refreshes when it ends."""
        if self._process is not None and self._process.poll() is None:
            self.message.value = "a run is already going"
            return
        argv = [sys.executable, "-m", "nb2pipe", "run", str(self.path)]
        for stage in stages or []:
            argv += ["--stage", stage]
        if force:
            argv.append("--force")
        self.message.value = "running…"
        self._process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._wait, daemon=True).start()

    def _wait(self) -> None:
        out, err = self._process.communicate()
        lines = [line for line in (err + out).splitlines() if line.startswith("error:")] + out.strip().splitlines()[-1:]
        self.message.value = "<br>".join(html.escape(line) for line in lines)
        self.refresh()
