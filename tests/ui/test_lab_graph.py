"""The pipeline graph and "Explain" in the browser: a diamond pipeline (load -> left, right ->
report; `xs` flows from load, `total.txt` from left, `biggest` from right).

1. Exported and run from the sidebar, the graph opens from the command palette beside the
   notebook: one node per stage with the sidebar's states, edges labelled with the variable or
   file that flows.
2. The graph is live: a second run (a parameter that makes `right` fail) turns its node failed
   while the graph stays open.
3. A click on a node selects the stage's first cell in the notebook and shows what the stage
   loads and saves in the details pane; the sidebar's Explain says the same.
4. "Failed only" keeps the failed stage and what leads to it.
5. Every text of the graph panel and of the sidebar's Explain meets WCAG AA contrast in the
   light and the dark theme (axe-core).
"""

from __future__ import annotations

import json
import re

import pytest

from helpers import wait_until
from test_lab_actions import AXE, _job_status, _open, switch_theme
from test_lab_e2e import SIDEBAR, _stage, _wait_states

pytestmark = pytest.mark.ui

RUN_TIMEOUT_MS = 400_000  # a run starts kernels; the machine may be busy
STAGES = ["load", "left", "right", "report"]
GRAPH = ".jp-nb2pipe-graph"
NODE = f"{GRAPH} .jp-nb2pipe-graph-node"


def _diamond(root) -> None:
    def code(source: str, *tags: str) -> dict:
        return {"cell_type": "code", "execution_count": None, "metadata": {"tags": list(tags)}, "outputs": [], "source": source}

    cells = [
        code("n = 3", "parameters"),
        code("xs = list(range(n))", "stage:load"),
        code("total = sum(xs)\nopen('total.txt', 'w').write(str(total))", "stage:left"),
        code("biggest = max(xs)", "stage:right"),
        code("print(open('total.txt').read(), biggest)", "stage:report"),
    ]
    kernel = {"display_name": "Python 3", "language": "python", "name": "python3"}
    content = {"cells": cells, "metadata": {"kernelspec": kernel}, "nbformat": 4, "nbformat_minor": 5}
    (root / "diamond.ipynb").write_text(json.dumps(content))


def _graph_states(page) -> dict[str, str]:
    return dict(page.locator(NODE).evaluate_all("nodes => nodes.map(n => [n.dataset.stage, n.dataset.state])"))


def _sidebar_states(page) -> dict[str, str]:
    return {name: _stage(page, name).get_attribute("data-state") for name in STAGES}


def _visible_nodes(page) -> list[str]:
    return page.locator(NODE).evaluate_all("nodes => nodes.filter(n => !n.hidden).map(n => n.dataset.stage)")


def _open_graph_from_the_palette(page) -> None:
    page.locator(".jp-NotebookPanel .jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+Shift+C")
    palette = page.locator(".lm-CommandPalette-input")
    palette.wait_for(state="visible")
    palette.fill("pipeline graph")
    page.locator('.lm-CommandPalette-item[data-command="nb2pipe:show-graph"]').click()
    page.locator(GRAPH).wait_for(state="visible")
    page.wait_for_function(f"() => document.querySelectorAll('{NODE}[data-state]').length === 4", timeout=60_000)


def _graph_contrast_violations(page) -> list[str]:
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => {
             const result = await axe.run({include: [['.jp-nb2pipe-graph'], ['#jp-nb2pipe-sidebar .jp-nb2pipe-explain-details']]},
               {runOnly: {type: 'rule', values: ['color-contrast']}, resultTypes: ['violations']});
             return result.violations.flatMap(v => v.nodes.map(n => `${n.target.join(' ')}: ${n.failureSummary}`));
           }"""
    )
    return list(found)


def test_the_graph_shows_states_flows_and_explains_a_stage(lab, page, shoot):
    _diamond(lab.root)
    _open(page, lab, "diamond.ipynb")
    sidebar = page.locator(SIDEBAR)
    sidebar.locator("button.jp-nb2pipe-export").click()
    _wait_states(page, {name: "never-run" for name in STAGES}, timeout=60_000)
    sidebar.locator("button.jp-nb2pipe-run-stale").click()
    _wait_states(page, {name: "up-to-date" for name in STAGES}, timeout=RUN_TIMEOUT_MS)
    first = _job_status(page, "ok")

    # --- 1. the graph, from the command palette ------------------------------------------------
    _open_graph_from_the_palette(page)
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Pipeline: diamond")
    assert tab.count() == 1
    assert _graph_states(page) == {name: "up-to-date" for name in STAGES}
    label = page.locator(f'{GRAPH} .jp-nb2pipe-graph-edge-label[data-source="load"][data-target="left"]')
    assert label.inner_text() == "xs"
    assert page.locator(f'{GRAPH} .jp-nb2pipe-graph-edge-label[data-source="left"][data-target="report"]').inner_text() == "total.txt"
    assert page.locator(f'{GRAPH} .jp-nb2pipe-graph-edge-label[data-source="right"][data-target="report"]').inner_text() == "biggest"
    duration = page.locator(f'{NODE}[data-stage="load"] .jp-nb2pipe-duration').inner_text()
    assert re.fullmatch(r"\d+(\.\d)? s", duration), duration

    # --- 2. live: a parameter that makes `right` fail, run from the sidebar ----------------------
    params = lab.root / "pipelines" / "diamond" / "params.yaml"
    params.write_text(params.read_text().replace("'n': 3", "'n': 0"))
    sidebar.locator("button.jp-nb2pipe-refresh").click()
    _wait_states(page, {"load": "stale"}, timeout=30_000)
    sidebar.locator("button.jp-nb2pipe-run-stale").click()
    _job_status(page, "failed", other_than=first)
    page.wait_for_function(
        f"""() => document.querySelector('{NODE}[data-stage="right"]')?.dataset.state === 'failed'""", timeout=60_000
    )
    wait_until(lambda: _graph_states(page) == _sidebar_states(page), "the graph shows the sidebar's states", timeout=30,
               seen=lambda: (_graph_states(page), _sidebar_states(page)))
    assert page.locator(f'{NODE}[data-stage="right"] .jp-nb2pipe-state-label').inner_text() == "failed"
    shoot(page, "graph")

    # --- 3. a click shows the stage's first cell and explains it ---------------------------------
    page.locator(f'{NODE}[data-stage="right"]').click()
    active = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell.jp-mod-active")
    wait_until(lambda: "biggest = max(xs)" in active.inner_text(), "the notebook selects right's first cell", timeout=30,
               seen=lambda: active.inner_text())
    details = page.locator(f"{GRAPH} .jp-nb2pipe-graph-details")
    assert details.locator(".jp-nb2pipe-graph-details-name").inner_text() == "right"
    rows = details.locator(".jp-nb2pipe-explain").inner_text()
    assert "xs from stage 'load'" in rows and "biggest for 'report'" in rows, rows
    explain = _stage(page, "report").locator(".jp-nb2pipe-explain-details")
    explain.locator("summary").click()
    text = explain.locator(".jp-nb2pipe-explain").inner_text()
    assert "biggest from stage 'right'" in text and "total.txt from 'left'" in text, text

    # --- 4. failed only --------------------------------------------------------------------------
    page.locator(f"{GRAPH} input.jp-nb2pipe-graph-failed-only").check()
    wait_until(lambda: sorted(_visible_nodes(page)) == ["load", "right"], "only the failed stage and its upstream", timeout=10,
               seen=lambda: _visible_nodes(page))

    # --- 5. contrast, light and dark -------------------------------------------------------------
    page.locator(f"{GRAPH} input.jp-nb2pipe-graph-failed-only").uncheck()
    assert _graph_contrast_violations(page) == []
    switch_theme(page, "JupyterLab Dark")
    assert _graph_contrast_violations(page) == []
    shoot(page, "graph-dark")
    assert not page.page_errors, page.page_errors
