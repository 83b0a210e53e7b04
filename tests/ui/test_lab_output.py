"""Outputs of a stage in the sidebar, and the failure box (issue 14: "Outputs of any stage", defects 5 and 7).

One journey over a two-stage notebook, `talk` (prints two lines, then waits at the lab's gate
file) and `boom` (raises ValueError), run from the sidebar:
1. While `talk` is held at the gate, its row shows the lines it printed, live, in its output box.
2. `boom`'s failure box shows `ValueError: boom` first, then the stage and the cell, then the
   executed notebook's path as a link that wraps only after a `/`, and the traceback behind a
   details toggle. The output box and the failure box meet WCAG AA contrast in both themes.
3. The path link opens the executed notebook read-only: its toolbar says so, its cells cannot be
   edited, and no kernel session is started (`GET /api/sessions`).
4. Once `talk` ends, "Open output" opens its executed notebook the same way.
"""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

from test_lab_actions import AXE, _contrast_violations, _job_status, _open, switch_theme
from test_lab_e2e import SIDEBAR, _panel_of_tab, _stage, _wait_states

pytestmark = pytest.mark.ui
PlaywrightTimeout = pytest.importorskip("playwright.sync_api", reason="pip install playwright").TimeoutError

WIDGETS_MANAGER = "/@jupyter-widgets/jupyterlab-manager/"  # where the page errors of ipywidgets come from
RUN_TIMEOUT_MS = 400_000  # a run starts kernels; the machine may be busy
# a long name, so the executed notebook's path must wrap in the sidebar
NOTEBOOK = "a_notebook_with_a_rather_long_name_for_wrapping.ipynb"
PIPELINE = NOTEBOOK.removesuffix(".ipynb")
TALK = (
    "import os, time\nprint('line one')\nprint('line two', flush=True)\n"
    "while not os.path.exists(os.environ['NB2PIPE_UI_GATE']):\n    time.sleep(0.1)\nprint('after the gate')"
)


def _write_notebook(path, *cells: tuple[str, str]) -> None:
    """A notebook of code cells, each (source, stage tag)."""
    path.write_text(json.dumps({
        "cells": [{"cell_type": "code", "execution_count": None, "metadata": {"tags": [tag]}, "outputs": [], "source": source}
                  for source, tag in cells],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }))  # fmt: skip


def _states(page, states: dict[str, str], what: str, timeout: float = RUN_TIMEOUT_MS) -> None:
    """`_wait_states`, failing with what the sidebar showed instead."""
    try:
        _wait_states(page, states, timeout=timeout)
    except PlaywrightTimeout:
        shown = page.locator(f"{SIDEBAR} .jp-nb2pipe-stage").evaluate_all(
            "nodes => nodes.map(n => `${n.dataset.stage}: ${n.dataset.state}`)"
        )
        pytest.fail(f"{what}: the sidebar showed {shown}; it said: {page.locator(SIDEBAR).inner_text()!r}")


def _sessions(lab) -> list[str]:
    """The paths of the kernel sessions the server has."""
    with urllib.request.urlopen(f"{lab.url}api/sessions?token={lab.token}", timeout=30) as answer:
        return [session.get("path", "") for session in json.load(answer)]


def _pieces_on_one_line(page, selector: str) -> dict:
    """How the path link of `selector` is laid out: its lines, and the pieces (text between
    break points) that were split over two lines."""
    return page.evaluate(
        """selector => {
             const link = document.querySelector(selector);
             const split = [];
             for (const node of link.childNodes) {
               if (node.nodeType !== Node.TEXT_NODE) continue;
               const range = document.createRange();
               range.selectNodeContents(node);
               const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
               if (tops.size > 1) split.push(node.textContent);
             }
             const range = document.createRange();
             range.selectNodeContents(link);
             const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
             return {lines: tops.size, split, text: link.textContent};
           }""",
        selector,
    )


def _assert_read_only_without_kernel(page, lab, title: str) -> None:
    panel = _panel_of_tab(page, title)
    executed = page.locator(panel)
    executed.locator(".jp-nb2pipe-read-only-label").wait_for(timeout=60_000)
    assert "Read-only" in executed.locator(".jp-nb2pipe-read-only-label").inner_text()
    code = executed.locator(".jp-CodeCell .cm-content")
    code.first.wait_for(timeout=60_000)
    read_only = code.evaluate_all("nodes => nodes.map(n => n.getAttribute('aria-readonly'))")
    assert read_only and set(read_only) == {"true"}, read_only  # every code cell's editor refuses input
    before = code.first.inner_text()
    code.first.click()
    page.keyboard.type("typed")
    assert code.first.inner_text() == before
    assert executed.locator(".jp-nb2pipe-read-only-label").count() == 1
    page.wait_for_function(  # the session context has settled on no kernel
        "panel => document.querySelector(panel)?.querySelector('.jp-KernelName')?.textContent.trim() === 'No Kernel'",
        arg=panel,
        timeout=60_000,
    )
    assert not [path for path in _sessions(lab) if path.endswith(title)], _sessions(lab)


def test_live_output_failure_box_and_read_only_outputs(lab, page, shoot):
    assert AXE.is_file(), f"{AXE} is missing: run `jlpm install` in labextension/ (axe-core is a dev dependency)"
    _write_notebook(lab.root / NOTEBOOK, (TALK, "stage:talk"), ("raise ValueError('boom')", "stage:boom"))
    _open(page, lab, NOTEBOOK)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(exc.stack or str(exc)))
    sidebar = page.locator(SIDEBAR)
    sidebar.locator("button.jp-nb2pipe-export").click()
    _states(page, {"talk": "never-run", "boom": "never-run"}, "export shows both stages", timeout=60_000)
    sidebar.locator("button.jp-nb2pipe-run-stale").click()

    # 1. talk is held at the gate: the lines it printed show under it, live
    _states(page, {"talk": "running", "boom": "failed"}, "talk runs (held at the gate) and boom fails")
    output = _stage(page, "talk").locator(".jp-nb2pipe-output")
    page.wait_for_function(
        """() => document.querySelector('#jp-nb2pipe-sidebar .jp-nb2pipe-stage[data-stage="talk"] .jp-nb2pipe-output')
                   ?.textContent === 'line one\\nline two'""",
        timeout=RUN_TIMEOUT_MS,
    )
    assert _stage(page, "talk").get_attribute("data-state") == "running"  # still held: the lines came live
    assert "notebook cell 1, 1 of 1" in _stage(page, "talk").locator(".jp-nb2pipe-state-label").inner_text()
    shoot(page, "live-output")

    # 2. the failure box: exception first, stage and cell, path link, traceback behind a toggle
    assert _stage(page, "boom").locator(".jp-nb2pipe-reason").count() == 0  # not "never run" from before the run
    box = _stage(page, "boom").locator(".jp-nb2pipe-stage-error")
    lines = box.inner_text().splitlines()
    assert lines[0] == "ValueError: boom", lines
    assert lines[1] == f"stage boom, in {NOTEBOOK} cell 2", lines
    link = box.locator("button.jp-nb2pipe-error-path")
    path = link.get_attribute("data-path")
    assert re.fullmatch(rf"pipelines/{PIPELINE}/runs/\d{{8}}-\d{{6}}-[0-9a-f]{{4}}/boom\.ipynb", path), path
    layout = _pieces_on_one_line(page, f'{SIDEBAR} .jp-nb2pipe-stage[data-stage="boom"] .jp-nb2pipe-error-path')
    assert layout["text"] == path and layout["lines"] > 1 and layout["split"] == [], layout  # wrapped, only after '/'
    traceback = box.locator(".jp-nb2pipe-error-traceback")
    assert not traceback.is_visible()
    box.locator("summary").click()
    traceback.wait_for(state="visible")
    assert traceback.inner_text().rstrip().endswith("ValueError: boom"), traceback.inner_text()
    assert output.is_visible()  # both boxes are on screen for the contrast checks
    assert _contrast_violations(page) == []
    switch_theme(page, "JupyterLab Dark")
    assert _contrast_violations(page) == []
    shoot(page, "failure-box-dark")
    switch_theme(page, "JupyterLab Light")

    # 3. the path opens the executed notebook read-only, without a kernel
    link.click()
    _assert_read_only_without_kernel(page, lab, "boom.ipynb")
    shoot(page, "executed-read-only")

    # 4. after the gate: talk is up to date and its output opens the same way
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=NOTEBOOK).click()  # the sidebar follows it again
    lab.gate.write_text("")
    _states(page, {"talk": "up-to-date", "boom": "failed"}, "talk ends once the gate opens")
    assert _job_status(page, "failed").startswith("1 ran"), sidebar.inner_text()
    _stage(page, "talk").locator("button.jp-nb2pipe-open-output").click()
    _assert_read_only_without_kernel(page, lab, "talk.ipynb")
    (log,) = (lab.root / "pipelines" / PIPELINE / "runs").glob("*/talk.log")
    assert log.read_text() == "line one\nline two\nafter the gate\n"
    # ipywidgets' manager reads the kernel of every notebook opened and fails on one that has none
    # (`session.kernel` of a null session): its bug, nothing of ours
    ours = [stack for stack in errors if WIDGETS_MANAGER not in stack]
    assert not ours, ours
