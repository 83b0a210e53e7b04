"""`PipelineView(path)`: the sidebar's status table and run buttons in any notebook front end.

Works wherever ipywidgets does (JupyterLab, classic Notebook, VS Code). A run is `nb2pipe.api.run`
in a background thread, recorded in the run history as from a terminal; the table refreshes as
each stage finishes, and a failed stage shows its exception, its cell and the executed notebook.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from nb2pipe import api
from nb2pipe.errors import Nb2PipeError, StageError
from nb2pipe.vocabulary import EventName, StageState

_ICONS: dict[str, str] = {
    StageState.UP_TO_DATE: "✅", StageState.STALE: "🟡", StageState.NEVER_RUN: "⚪", StageState.FAILED: "❌",
    StageState.RUNNING: "⏳", StageState.CANCELLED: "⊘",
}
_REFRESH_ON = (EventName.STAGE_STARTED, EventName.STAGE_FINISHED, EventName.STAGE_FAILED)


class PipelineView(widgets.VBox):
    """A live table of a pipeline's stages with their state, reasons and run buttons."""

    def __init__(self, path: str | Path):
        self.path = api.folder_of(path)
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
        self.report: api.RunReport | None = None  # of the last run started here
        self._thread: threading.Thread | None = None
        self.refresh()

    def refresh(self) -> None:
        report = api.status(self.path)
        self.stage_picker.options = [s.name for s in report.stages]
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

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self, stages: list[str] | None = None, force: bool = False) -> None:
        """Start a run in the background; the table follows it."""
        if self.running:
            self.message.value = "a run is already going"
            return
        self.message.value = "running…"
        self._thread = threading.Thread(target=self._run, args=(list(stages or []), force), daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the run started here to end; False when it still runs after `timeout` s."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def _run(self, stages: list[str], force: bool) -> None:
        try:
            self.report = api.run(self.path, stages=stages, force=force, reporters=[self._follow])
            self.message.value = _report_html(self.report)
        except Nb2PipeError as error:
            self.message.value = f"error: {html.escape(str(error))}"
        except Exception as error:  # the view stays usable; the message says what happened
            self.message.value = f"error: nb2pipe failed: {html.escape(type(error).__name__)}: {html.escape(str(error))}"
        finally:
            self.refresh()

    def _follow(self, event: dict[str, Any]) -> None:
        """A run reporter: the table follows the stages."""
        if event.get("event") in _REFRESH_ON:
            self.refresh()


def _report_html(report: api.RunReport) -> str:
    lines = [_error_html(error) for error in report.errors.values()]
    return "<br>".join([*lines, html.escape(report.summary)])


def _error_html(error: StageError) -> str:
    where = f" in {html.escape(error.cell)}" if error.cell else ""
    opening = f"; open <code>{html.escape(error.notebook)}</code>" if error.notebook else ""
    return f"<b>stage '{html.escape(error.stage)}' failed</b>{where}: {html.escape(error.exception)}{opening}"
