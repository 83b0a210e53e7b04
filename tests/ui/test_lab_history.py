"""The sidebar's Parameters form and run History, in a real JupyterLab.

One journey on a copy of example_notebooks/diabetes_kale.ipynb (parameters alpha 1.0,
n_estimators 40, seed 0; four stages, metrics r2_ridge, r2_forest, best_r2):

1. export and run it from the sidebar; the Parameters form shows each parameter with its type
   and default (a float stays 1.0);
2. a bad value (2.5 for the int n_estimators) is refused in the page with the parameter's name
   and why; 60 and "Run with these values" runs with it (the notebook is not edited);
3. the History shows both runs, the newer with n_estimators=60 and its metrics; ticking both
   shows their diff: the parameter 40 → 60 and the forest's metric;
4. the history, the form and the diff meet WCAG AA contrast in the light and dark themes
   (axe-core, as in test_lab_actions);
5. the older run's executed notebook of train_forest opens from its row (it printed 40).
"""

from __future__ import annotations

import re

import pytest

from helpers import disk_cells
from test_lab_actions import AXE, RUN_TIMEOUT_MS, _contrast_violations, _export_and_run, _job_status, _open, switch_theme
from test_lab_e2e import SIDEBAR, _panel_of_tab

pytestmark = pytest.mark.ui
PlaywrightTimeout = pytest.importorskip("playwright.sync_api", reason="pip install playwright").TimeoutError

PARAMS = f"{SIDEBAR} .jp-nb2pipe-params"
HISTORY = f"{SIDEBAR} .jp-nb2pipe-history"


def _param(page, name: str):
    return page.locator(f'{PARAMS} .jp-nb2pipe-param[data-param="{name}"]')


def _wait_runs(page, count: int) -> list[str]:
    """Wait until the History lists `count` finished runs (a run is in the history from its
    start, `running`); their ids, newest first."""
    try:
        page.wait_for_function(
            """n => {
                 const runs = [...document.querySelectorAll('#jp-nb2pipe-sidebar .jp-nb2pipe-run')];
                 return runs.length === n && runs.every(run => run.dataset.status !== 'running');
               }""",
            arg=count,
            timeout=120_000,
        )
    except PlaywrightTimeout:
        seen = page.locator(f"{HISTORY} .jp-nb2pipe-runs").inner_text()
        raise AssertionError(f"the History does not list {count} finished runs; it shows: {seen!r}") from None
    return page.locator(f"{HISTORY} .jp-nb2pipe-run").evaluate_all("rows => rows.map(r => r.dataset.run)")


def _diff_row(page, section: str, name: str) -> list[str]:
    row = page.locator(f'{HISTORY} .jp-nb2pipe-diff-row[data-section="{section}"][data-name="{name}"]')
    try:
        row.wait_for(timeout=60_000)
    except PlaywrightTimeout:
        seen = page.locator(f"{HISTORY} .jp-nb2pipe-diff").inner_text()
        raise AssertionError(f"the diff has no {section} row '{name}'; it shows: {seen!r}") from None
    parts = ".jp-nb2pipe-diff-name, .jp-nb2pipe-diff-a, .jp-nb2pipe-diff-b, .jp-nb2pipe-diff-change"
    return [text.strip() for text in row.locator(parts).all_inner_texts()]


def test_run_with_other_parameters_then_compare_the_runs_and_open_an_older_notebook(lab, page, copy_example, shoot):
    assert AXE.is_file(), f"{AXE} is missing: run `jlpm install` in labextension/ (axe-core is a dev dependency)"
    notebook = copy_example("diabetes_kale.ipynb").rename(lab.root / "diabetes_history.ipynb")
    _open(page, lab, notebook.name)
    first = _export_and_run(page)
    assert _wait_runs(page, 1)

    # 1. the form: each parameter with its type and default
    page.locator(f"{PARAMS} > summary").click()
    fields = {
        name: (_param(page, name).get_attribute("data-type"), _param(page, name).locator("input").input_value())
        for name in ("alpha", "n_estimators", "seed")
    }
    assert fields == {"alpha": ("float", "1.0"), "n_estimators": ("int", "40"), "seed": ("int", "0")}

    # 2. a bad value is refused in the page, naming the parameter; a good one runs
    run_button = page.locator(f"{PARAMS} button.jp-nb2pipe-params-run")
    _param(page, "n_estimators").locator("input").fill("2.5")
    run_button.click()
    said = "parameter 'n_estimators' must be a whole number (an int, e.g. 3), not '2.5'"
    assert page.locator(f"{PARAMS} .jp-nb2pipe-params-error").inner_text() == said
    assert _param(page, "n_estimators").locator(".jp-nb2pipe-param-error").inner_text() == said
    _param(page, "n_estimators").locator("input").fill("60")
    run_button.click()
    text = _job_status(page, "ok", other_than=first)
    assert text.startswith("2 ran, 2 up to date"), text  # train_forest and compare, with 60
    parameters_cell = disk_cells(notebook)[3]
    assert "".join(parameters_cell["source"]) == "alpha = 1.0\nn_estimators = 40\nseed = 0"  # not edited

    # 3. the history: two runs, the newer with its parameter and metrics; their diff
    newer, older = _wait_runs(page, 2)
    row = page.locator(f'{HISTORY} .jp-nb2pipe-run[data-run="{newer}"]')
    assert row.locator(".jp-nb2pipe-run-params").inner_text() == "params: n_estimators=60"
    assert "r2_forest=" in row.locator(".jp-nb2pipe-run-metrics").inner_text()
    assert row.locator(".jp-nb2pipe-run-status").inner_text() == "ok"
    old_row = page.locator(f'{HISTORY} .jp-nb2pipe-run[data-run="{older}"]')
    assert old_row.locator(".jp-nb2pipe-run-params").inner_text() == "default parameters"
    row.locator("input.jp-nb2pipe-run-select").check()
    old_row.locator("input.jp-nb2pipe-run-select").check()
    assert _diff_row(page, "params", "n_estimators") == ["n_estimators", "40", "60", "changed"]
    _, before, after, change = _diff_row(page, "metrics", "r2_forest")
    assert before != after and re.fullmatch(r"[+-][\d.e-]+", change), (before, after, change)
    page.locator(f"{PARAMS} button.jp-nb2pipe-params-reset").click()
    assert _param(page, "n_estimators").locator("input").input_value() == "40"
    page.locator(f"{HISTORY} .jp-nb2pipe-diff-box").scroll_into_view_if_needed()
    shoot(page, "history-diff")

    # 4. contrast in both themes, over the form, the history and the diff
    assert _contrast_violations(page) == []
    switch_theme(page, "JupyterLab Dark")
    assert _contrast_violations(page) == []
    shoot(page, "history-diff-dark")

    # 5. the older run's executed notebook of train_forest
    old_row.locator('button.jp-nb2pipe-run-notebook[data-stage="train_forest"]').click()
    panel = _panel_of_tab(page, "train_forest.ipynb")
    page.locator(panel, has_text="train_forest: n_estimators=40").wait_for(timeout=RUN_TIMEOUT_MS)
    assert not page.page_errors, page.page_errors
