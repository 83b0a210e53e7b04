"""Debug a failed stage from the sidebar: its Debug button writes the debug notebook, opens it
with a kernel, runs the cells above the failing cell and stops there, the failing cell active and
in view; the sidebar says so, legibly in the light and the dark theme. Debug again over a debug
notebook with edits asks before overwriting them, and the open tab is reloaded, its kernel
restarted.

The pipeline: `check` fails on its third cell (`total > limit` raises ValueError)."""

from __future__ import annotations

import json
import re

import pytest

from test_lab_actions import RUN_TIMEOUT_MS, _contrast_violations, _job_status, _open, switch_theme
from test_lab_e2e import SIDEBAR, _panel_of_tab, _stage, _wait_states

pytestmark = pytest.mark.ui


def _code(source: str, *tags: str) -> dict:
    return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": source, "outputs": [], "execution_count": None}


def _failing_notebook(path) -> None:
    cells = [
        _code("limit = 2", "parameters"),
        _code("values = [1, 2, 3]", "stage:prepare"),
        _code("total = sum(values)", "stage:check"),
        _code("print('total', total)"),
        _code("if total > limit:\n    raise ValueError(f'total {total} is over {limit}')"),
        _code("print('after the failure')"),
    ]
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.write_text(json.dumps({"cells": cells, "metadata": {"kernelspec": kernelspec}, "nbformat": 4, "nbformat_minor": 5}))


def _cell_states(page, panel: str) -> list[dict]:
    """Each cell of the notebook in `panel`: its prompt, whether it is active, whether any part
    of it lies inside the notebook's visible area."""
    return page.evaluate(
        """panel => {
             const notebook = document.querySelector(`${panel} .jp-Notebook`);
             const view = notebook.getBoundingClientRect();
             return [...notebook.querySelectorAll('.jp-Cell')].map(cell => {
               const box = cell.getBoundingClientRect();
               return {
                 prompt: cell.querySelector('.jp-InputArea-prompt')?.textContent.trim() ?? '',
                 active: cell.classList.contains('jp-mod-active'),
                 visible: box.bottom > view.top && box.top < view.bottom,
                 code: cell.classList.contains('jp-CodeCell')
               };
             });
           }""",
        panel,
    )


def test_debug_opens_the_failed_stage_with_a_kernel_stopped_at_the_failing_cell(lab, page, shoot):
    _failing_notebook(lab.root / "fails.ipynb")
    _open(page, lab, "fails.ipynb")
    sidebar = page.locator(SIDEBAR)
    sidebar.locator("button.jp-nb2pipe-export").click()
    _wait_states(page, {"prepare": "never-run", "check": "never-run"}, timeout=60_000)
    sidebar.locator("button.jp-nb2pipe-run-stale").click()
    _job_status(page, "failed")
    _wait_states(page, {"prepare": "up-to-date", "check": "failed"}, timeout=60_000)

    _stage(page, "check").locator("button.jp-nb2pipe-debug-stage").click()
    panel = _panel_of_tab(page, "check.ipynb")
    page.wait_for_selector(f'{SIDEBAR} .jp-nb2pipe-debug-status:not([data-phase="working"])', timeout=RUN_TIMEOUT_MS)
    status = sidebar.locator(".jp-nb2pipe-debug-status")
    assert status.get_attribute("data-phase") == "done", status.inner_text()

    written = json.loads((lab.root / "pipelines" / "fails" / "debug" / "check.ipynb").read_text())
    failed = next(i for i, c in enumerate(written["cells"]) if c["metadata"].get("nb2pipe", {}).get("debug", {}).get("failed"))
    above = sum(1 for c in written["cells"][:failed] if c["cell_type"] == "code")
    assert status.inner_text() == f"Debug: stopped before cell {failed + 1}, where the run failed: ValueError: total 6 is over 2"
    assert above >= 3, "the first cell, the parameters, the stage's cells before the failing one"

    page.wait_for_selector(f'{panel} .jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=RUN_TIMEOUT_MS)
    cells = _cell_states(page, panel)
    assert len(cells) == len(written["cells"])
    ran = [c["prompt"] for c in cells[:failed] if c["code"]]
    assert all(re.fullmatch(r"\[\d+\]:", prompt) for prompt in ran), ran
    assert cells[failed]["prompt"] == "[ ]:", cells[failed]
    assert [i for i, c in enumerate(cells) if c["active"]] == [failed]
    assert cells[failed]["visible"], cells
    assert page.locator(f"{panel} .jp-Cell").nth(failed).locator(".jp-OutputArea-output").count() == 0
    shoot(page, "stopped-at-the-failing-cell")

    assert "debug notebook" in sidebar.locator(".jp-nb2pipe-debug-note").inner_text()
    assert _contrast_violations(page) == []
    switch_theme(page, "JupyterLab Dark")
    assert _contrast_violations(page) == []
    shoot(page, "dark")
    _debug_again_over_edits(page, lab, panel, failed)
    shoot(page, "debugged-again")
    assert not page.page_errors, page.page_errors


def _debug_again_over_edits(page, lab, panel: str, failed: int) -> None:
    """Edit the debug notebook on disk, Debug again from the source notebook: overwrite the
    edits when asked, reload the open tab (it has the outputs of the last session), and the
    kernel starts over at the top."""
    path = lab.root / "pipelines" / "fails" / "debug" / "check.ipynb"
    edited = json.loads(path.read_text())
    edited["cells"][-1]["source"] = "print('my edit')"
    path.write_text(json.dumps(edited))
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="fails.ipynb").click()
    _stage(page, "check").locator("button.jp-nb2pipe-debug-stage").click()
    dialog = page.locator(".jp-Dialog")
    dialog.get_by_text("Overwrite your edits?").wait_for(timeout=60_000)
    assert "has edits of yours" in dialog.inner_text()
    dialog.get_by_role("button", name="Overwrite").click()
    page.locator(".jp-Dialog", has_text="Reload the debug notebook?").wait_for(timeout=60_000)
    page.locator(".jp-Dialog").get_by_role("button", name="Reload").click()
    page.wait_for_selector(f'{SIDEBAR} .jp-nb2pipe-debug-status:not([data-phase="working"])', timeout=RUN_TIMEOUT_MS)
    assert page.locator(f"{SIDEBAR} .jp-nb2pipe-debug-status").get_attribute("data-phase") == "done"
    assert "my edit" not in path.read_text()
    page.wait_for_selector(f'{panel} .jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=RUN_TIMEOUT_MS)
    cells = _cell_states(page, panel)
    assert next(c["prompt"] for c in cells if c["code"]) == "[1]:", "a restarted kernel counts from 1"
    assert [i for i, c in enumerate(cells) if c["active"]] == [failed] and cells[failed]["prompt"] == "[ ]:"
    assert "my edit" not in page.locator(f"{panel} .jp-Cell").last.inner_text()
