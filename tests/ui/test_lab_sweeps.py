"""A sweep in the sidebar's History, in a real JupyterLab.

One journey on a tiny pipeline (`prep` reads no parameter, `score` reads `k`; its metric
`score` is 0.5, 0.9 and 0.1 for k = 1, 2, 3, so that the best-first order is not the trial order):

1. `nb2pipe sweep swept.ipynb -p k=1,2,3` runs from a terminal (a subprocess in the lab root);
2. the History shows the sweep as one group: "Sweep sweep-…: 3 trials, 3 ok", the swept
   parameter, a row per trial with its value, and the run of the shared stage apart, not as a trial;
3. "sort by score ↓" puts the trials best first (k=2, k=1, k=3);
4. ticking two trials shows their diff (k 1 → 2);
5. the group meets WCAG AA contrast in the light and dark themes (axe-core, as in test_lab_actions).
"""

from __future__ import annotations

import json

import pytest

from helpers import run_cli
from test_lab_actions import AXE, _contrast_violations, _open, switch_theme
from test_lab_e2e import SIDEBAR
from test_lab_history import _diff_row

pytestmark = pytest.mark.ui
PlaywrightTimeout = pytest.importorskip("playwright.sync_api", reason="pip install playwright").TimeoutError

HISTORY = f"{SIDEBAR} .jp-nb2pipe-history"
GROUP = f"{HISTORY} .jp-nb2pipe-sweep"
TRIALS = f"{GROUP} .jp-nb2pipe-sweep-trials > .jp-nb2pipe-run"


def _cell(source: str, *tags: str) -> dict:
    return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": source, "outputs": [], "execution_count": None}


def _swept_notebook(path) -> None:
    cells = [
        _cell("k = 1", "parameters"),
        _cell("open('base.txt', 'w').write('1')", "stage:prep", "out:base.txt"),
        _cell("score = [0, 0.5, 0.9, 0.1][k] * float(open('base.txt').read())", "stage:score", "in:base.txt", "metrics"),
    ]
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook = {"cells": cells, "metadata": {"kernelspec": kernel}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(notebook, indent=1))


def _trial_texts(page) -> list[str]:
    return page.locator(f"{TRIALS} .jp-nb2pipe-run-params").all_inner_texts()


def _wait_trials(page, count: int) -> None:
    """Wait until the sweep's group lists `count` finished trials."""
    try:
        page.wait_for_function(
            """([selector, n]) => {
                 const rows = [...document.querySelectorAll(selector)];
                 return rows.length === n && rows.every(row => row.dataset.status === 'ok');
               }""",
            arg=[TRIALS, count],
            timeout=120_000,
        )
    except PlaywrightTimeout:
        seen = page.locator(f"{HISTORY} .jp-nb2pipe-runs").inner_text()
        raise AssertionError(f"the History shows no sweep of {count} finished trials; it shows: {seen!r}") from None


def test_a_sweep_is_one_group_in_the_history_sorted_by_its_metric(lab, page, shoot):
    assert AXE.is_file(), f"{AXE} is missing: run `jlpm install` in labextension/ (axe-core is a dev dependency)"
    _swept_notebook(lab.root / "swept.ipynb")
    code, out, err = run_cli("sweep", "swept.ipynb", "-p", "k=1,2,3", cwd=lab.root)
    assert code == 0, (out, err)

    # 2. one group: its title, the swept parameter, three trials, the shared stage's run apart
    _open(page, lab, "swept.ipynb")
    _wait_trials(page, 3)
    assert page.locator(GROUP).count() == 1
    title = page.locator(f"{GROUP} .jp-nb2pipe-sweep-title").inner_text()
    assert title.startswith("Sweep sweep-") and title.endswith(": 3 trials, 3 ok"), title
    assert page.locator(f"{GROUP} .jp-nb2pipe-sweep-params").inner_text() == "swept: k"
    assert _trial_texts(page) == ["trial: k=1", "trial: k=2", "trial: k=3"]  # trial order
    shared = page.locator(f"{GROUP} .jp-nb2pipe-sweep-others > .jp-nb2pipe-sweep-shared")
    assert shared.count() == 1
    assert shared.locator(".jp-nb2pipe-sweep-role").inner_text() == "the stages the trials share"
    assert page.locator(f"{HISTORY} .jp-nb2pipe-runs > .jp-nb2pipe-run").count() == 0  # no run of the sweep outside it

    # 3. sorted by the metric, best first
    page.locator(f"{GROUP} select.jp-nb2pipe-sweep-sort-select").select_option(label="score ↓")
    page.wait_for_function(
        """selector => [...document.querySelectorAll(selector + ' .jp-nb2pipe-run-params')]
             .map(e => e.textContent).join('|') === 'trial: k=2|trial: k=1|trial: k=3'""",
        arg=TRIALS,
        timeout=30_000,
    )
    assert page.locator(f"{TRIALS} .jp-nb2pipe-run-metrics").all_inner_texts() == ["score=0.9", "score=0.5", "score=0.1"]

    # 4. two trials ticked: their diff
    page.locator(TRIALS).nth(0).locator("input.jp-nb2pipe-run-select").check()  # k=2
    page.locator(TRIALS).nth(1).locator("input.jp-nb2pipe-run-select").check()  # k=1, the older
    assert _diff_row(page, "params", "k") == ["k", "1", "2", "changed"]
    page.locator(GROUP).scroll_into_view_if_needed()
    shoot(page, "sweep-sorted")

    # 5. contrast in both themes
    assert _contrast_violations(page) == []
    switch_theme(page, "JupyterLab Dark")
    assert _contrast_violations(page) == []
    shoot(page, "sweep-sorted-dark")
    assert not page.page_errors, page.page_errors
