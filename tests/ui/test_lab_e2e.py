"""What a user sees in JupyterLab: tag cells, export, run, stale reasons, a failed stage.

One scenario on a copy of example_notebooks/diabetes_kale.ipynb (4 stages: load_data,
train_ridge, train_forest, compare), in a real `jupyter lab` driven through Chromium:

1. the cells show their stage (chip + border); a new cell gets stage `report` through the
   cell toolbar button (with the name checked inline), then `skip` through the context menu;
   Ctrl+S writes both tags and `metadata.nb2pipe` to disk;
2. the sidebar offers Export; after it, four stages "never run";
3. "Run stale" shows progress (train_forest waits for a file the test creates once it has
   seen "cell i of n", so the check does not depend on how fast the stages are) and ends with four stages "up to date" and their metrics;
   an edit of the notebook brings the "changed since the last export" banner; Re-export;
4. alpha 1.0 -> 0.5 in params.yaml: train_ridge turns stale with "param changed: alpha 1.0 → 0.5"
   and compare with "upstream stale: train_ridge" (scripts/screenshots copies that screenshot
   to docs/sidebar.png);
5. alpha -1 makes train_ridge fail; "Open executed notebook" opens it at the failing cell.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from helpers import disk_cells

pytestmark = pytest.mark.ui

NOTEBOOK = "diabetes_kale.ipynb"
STAGES = ["load_data", "train_ridge", "train_forest", "compare"]
SIDEBAR = "#jp-nb2pipe-sidebar"
RUN_TIMEOUT_MS = 400_000  # a run starts 4 kernels; the machine may be busy


def _panel_of_tab(page, title: str) -> str:
    """CSS selector of the main-area widget whose tab shows `title` (hidden tabs are only
    scaled to 0 in JupyterLab 4, so `:not(.lm-mod-hidden)` cannot tell them apart)."""
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=title)
    tab.wait_for(timeout=60_000)
    return f"#{tab.get_attribute('data-id')}"


def _cell(page, index: int, panel: str = ".jp-NotebookPanel"):
    """The index-th (0-based) cell of a notebook."""
    return page.locator(f"{panel} .jp-Notebook .jp-Cell").nth(index)


SAVE_AGAIN_S = 10  # a Ctrl+S whose save has not shown on disk by then is pressed again


def save_until(page, saved, what: str, timeout: float = 60, seen=None):
    """Press Ctrl+S until `saved()` is true (what the save puts on disk, or the tab no longer
    marked changed) and return its value. On a loaded machine a keystroke can be lost while the
    page redraws; pressing it again only saves again."""
    deadline = time.monotonic() + timeout
    while True:
        page.keyboard.press("Control+s")
        again = time.monotonic() + SAVE_AGAIN_S
        while time.monotonic() < again:
            if value := saved():
                return value
            time.sleep(0.1)
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s of pressing Ctrl+S; seen: {seen() if seen else '(nothing recorded)'}")


def _select(cell) -> None:
    """Make `cell` active in command mode (click its prompt, above the stage chip)."""
    cell.locator(".jp-InputPrompt").click(position={"x": 20, "y": 6})


def _stage(page, name: str):
    return page.locator(f'{SIDEBAR} .jp-nb2pipe-stage[data-stage="{name}"]')


def _wait_states(page, states: dict[str, str], timeout: float) -> None:
    page.wait_for_function(
        """states => Object.entries(states).every(([name, state]) =>
             document.querySelector(`#jp-nb2pipe-sidebar .jp-nb2pipe-stage[data-stage="${name}"]`)
               ?.dataset.state === state)""",
        arg=states,
        timeout=timeout,
    )


def _hold_stage_at_gate(notebook: Path, index: int) -> None:
    """Make the cell at `index` wait until the lab's gate file exists (see conftest.Lab.gate)."""
    content = json.loads(notebook.read_text())
    cell = content["cells"][index]
    wait = 'import os, time\nwhile not os.path.exists(os.environ["NB2PIPE_UI_GATE"]):\n    time.sleep(0.1)\n'
    cell["source"] = wait + "".join(cell["source"])
    notebook.write_text(json.dumps(content, indent=1))


def _disk_cell(path: Path, index: int) -> dict:
    return disk_cells(path)[index]


def test_tag_export_run_stale_and_failure(lab, page, shoot, copy_example):
    timings: dict[str, float] = {}
    t = time.monotonic()
    notebook = copy_example(NOTEBOOK)
    _hold_stage_at_gate(notebook, 12)  # train_forest

    # --- open the notebook: chips and borders follow the tags --------------------------------
    page.goto(lab.page_url(f"lab/tree/{NOTEBOOK}"))
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=120_000)
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_function(
        "() => document.querySelectorAll('.jp-Notebook .jp-Cell .jp-nb2pipe-chip').length >= 13"
    )
    timings["open notebook"] = time.monotonic() - t
    expected = {  # 0-based cell index -> chip
        1: "setup", 2: "setup", 3: "parameters", 5: "load_data", 6: "load_data", 7: "skip",
        9: "train_ridge", 10: "train_ridge", 12: "train_forest", 15: "compare", 17: "compare",
    }
    for index, chip in expected.items():
        assert _cell(page, index).locator(".jp-nb2pipe-chip").inner_text() == chip, index
    assert _cell(page, 0).locator(".jp-nb2pipe-chip").count() == 0  # markdown
    colour = lambda i: _cell(page, i).evaluate(  # noqa: E731
        "n => getComputedStyle(n).getPropertyValue('--jp-nb2pipe-stage-color').trim()"
    )
    assert colour(5) == colour(6) != "" and colour(5) != colour(9)
    assert "inset" in _cell(page, 5).evaluate("n => getComputedStyle(n).boxShadow")

    # --- a new cell: stage through the cell toolbar, skip through the context menu ------------
    t = time.monotonic()
    last = _cell(page, 17)
    _select(last)
    page.keyboard.press("b")  # insert below
    new = _cell(page, 18)
    new.locator(".cm-content").click()
    page.keyboard.type('summary = "done"')
    page.keyboard.press("Escape")
    assert new.locator(".jp-nb2pipe-chip").inner_text() == "compare"  # inherits the stage above

    button = page.locator('.jp-Cell.jp-mod-active .jp-cell-toolbar [data-jp-item-name="nb2pipe-stage"]')
    button.wait_for(timeout=30_000)
    assert button.locator("svg").count() >= 1
    shoot(page, "cell-toolbar")
    button.locator("button, jp-button").first.click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for()
    choices = dialog.locator(".jp-nb2pipe-stage-choice")
    assert [choices.nth(i).inner_text() for i in range(choices.count())] == STAGES
    name_input = dialog.locator(".jp-nb2pipe-stage-input")
    name_input.fill("Report Stage")
    error = dialog.locator(".jp-nb2pipe-dialog-error")
    assert "not a valid stage name" in error.inner_text()
    accept = dialog.locator("button.jp-mod-accept")
    assert accept.is_disabled()
    shoot(page, "stage-dialog-invalid")
    name_input.fill("report")
    assert error.inner_text() == ""
    assert accept.is_enabled()
    accept.click()
    dialog.wait_for(state="detached")
    page.wait_for_function(
        """() => [...document.querySelectorAll('.jp-Notebook .jp-Cell')][18]
                  ?.querySelector('.jp-nb2pipe-chip')?.textContent === 'report'"""
    )
    assert colour(18) not in ("", colour(17))
    shoot(page, "stage-set")

    new.locator(".jp-InputPrompt").click(button="right", position={"x": 20, "y": 6})
    page.locator(".lm-Menu .lm-Menu-item", has_text="nb2pipe").hover()
    skip_item = page.locator('.lm-Menu .lm-Menu-item[data-command="nb2pipe:toggle-skip"]')
    skip_item.wait_for()
    labels = page.locator(".lm-Menu .lm-Menu-item[data-command^='nb2pipe:'] .lm-Menu-itemLabel").all_inner_texts()
    assert {"Set Stage…", "Parameters Cell", "Setup Cell", "Skip Cell", "Metrics Cell",
            "Declare Input Files…", "Declare Output Files…"} <= set(labels), labels
    shoot(page, "context-menu")
    skip_item.click()
    page.wait_for_function(
        """() => [...document.querySelectorAll('.jp-Notebook .jp-Cell')][18]
                  ?.querySelector('.jp-nb2pipe-chip')?.textContent === 'skip'"""
    )
    new.locator(".jp-InputPrompt").click(button="right", position={"x": 20, "y": 6})
    page.locator(".lm-Menu .lm-Menu-item", has_text="nb2pipe").hover()
    skip_item.wait_for()
    assert "lm-mod-toggled" in skip_item.get_attribute("class")  # the menu shows the mark
    assert "lm-mod-toggled" not in page.locator(
        '.lm-Menu .lm-Menu-item[data-command="nb2pipe:toggle-metrics"]'
    ).get_attribute("class")
    page.keyboard.press("Escape")
    page.keyboard.press("Escape")

    _select(new)
    def saved_cells() -> list | None:
        cells = disk_cells(notebook)
        return cells if len(cells) == 19 else None

    cells = save_until(page, saved_cells, "Ctrl+S saves the notebook with its new cell", seen=lambda: notebook.read_text()[-500:])
    saved = cells[18]
    assert saved["metadata"]["tags"] == ["stage:report", "skip"]
    assert saved["metadata"]["nb2pipe"] == {"stage": "report", "deps": [], "outs": [], "after": []}
    assert "".join(saved["source"]) == 'summary = "done"'
    timings["tag and save"] = time.monotonic() - t

    # --- sidebar: export ---------------------------------------------------------------------
    t = time.monotonic()
    page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="jp-nb2pipe-sidebar"]').click()
    sidebar = page.locator(SIDEBAR)
    sidebar.wait_for(state="visible")
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle:not(.lm-mod-hidden)").first
    if handle.count():  # widen the sidebar a little, for readable screenshots
        box = handle.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + 110, box["y"] + box["height"] / 2, steps=5)
        page.mouse.up()
    assert sidebar.locator(".jp-nb2pipe-path").inner_text() == NOTEBOOK
    export = sidebar.locator("button.jp-nb2pipe-export")
    export.wait_for(timeout=30_000)
    shoot(page, "sidebar-no-pipeline")
    export.click()
    _wait_states(page, {name: "never-run" for name in STAGES}, timeout=60_000)
    assert sidebar.locator(".jp-nb2pipe-stage").count() == 4  # the skipped `report` cell is left out
    assert sidebar.locator(".jp-nb2pipe-pipeline").inner_text() == "pipelines/diabetes_kale"
    assert sidebar.locator(".jp-nb2pipe-banner").count() == 0
    shoot(page, "exported")
    timings["export"] = time.monotonic() - t

    # --- run stale: progress, then all up to date ----------------------------------------------
    t = time.monotonic()
    sidebar.locator("button.jp-nb2pipe-run-stale").click()
    progress = sidebar.locator(".jp-nb2pipe-progress")
    progress.wait_for(timeout=30_000)
    saw_cell_progress = False
    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        text = progress.inner_text() if progress.count() else ""
        if "cell " in text and " of " in text and not saw_cell_progress:
            saw_cell_progress = True
            assert sidebar.locator('.jp-nb2pipe-stage[data-state="running"]').count() >= 1
            shoot(page, "running")
            lab.gate.touch()  # let train_forest go on
        states = [_stage(page, name).get_attribute("data-state") for name in STAGES]
        if all(s == "up-to-date" for s in states):
            break
        assert "failed" not in states, (states, sidebar.inner_text())
        time.sleep(0.2)
    else:
        pytest.fail(f"stages not up to date in time: {sidebar.inner_text()}")
    timings["run stale (4 stages)"] = time.monotonic() - t
    assert saw_cell_progress, "no 'cell i of n' progress was shown during the run"
    page.wait_for_function(
        "() => document.querySelector('#jp-nb2pipe-sidebar .jp-nb2pipe-progress')?.dataset.status === 'ok'"
    )
    compare = _stage(page, "compare")
    metric_names = compare.locator(".jp-nb2pipe-metric-name").all_inner_texts()
    assert {"r2_ridge", "r2_forest", "best_r2"} <= set(metric_names), metric_names
    assert compare.locator(".jp-nb2pipe-duration").inner_text().endswith("s")
    shoot(page, "up-to-date")

    # --- the notebook changes after export: banner, Re-export ---------------------------------
    new.locator(".cm-content").click()
    page.keyboard.press("End")
    page.keyboard.type("  # edited")
    page.keyboard.press("Escape")
    # status is fetched again when the save completes
    save_until(page, lambda: "# edited" in notebook.read_text(), "the edit is saved", seen=lambda: notebook.read_text()[-500:])
    banner = sidebar.locator(".jp-nb2pipe-banner")
    banner.wait_for(timeout=30_000)
    assert "changed since the last export" in banner.inner_text()
    shoot(page, "out-of-sync")
    banner.locator("button.jp-nb2pipe-reexport").click()
    banner.wait_for(state="detached", timeout=30_000)
    # only the skipped cell changed: every stage is still up to date
    _wait_states(page, {name: "up-to-date" for name in STAGES}, timeout=30_000)

    # --- a parameter changes on disk: the stages that read it turn stale ---------------------
    params = lab.root / "pipelines" / "diabetes_kale" / "params.yaml"
    params.write_text(params.read_text().replace("alpha: 1.0", "alpha: 0.5"))
    sidebar.locator("button.jp-nb2pipe-refresh").click()
    _wait_states(
        page,
        {"load_data": "up-to-date", "train_ridge": "stale", "train_forest": "up-to-date", "compare": "stale"},
        timeout=30_000,
    )
    assert _stage(page, "train_ridge").locator(".jp-nb2pipe-reason").all_inner_texts() == [
        "param changed: alpha 1.0 → 0.5"
    ]
    assert "upstream stale: train_ridge" in _stage(page, "compare").locator(".jp-nb2pipe-reason").all_inner_texts()
    shoot(page, "stale-reason")  # docs/sidebar.png, through scripts/screenshots

    # --- a failing stage: error shown, executed notebook opened at the failing cell -----------
    t = time.monotonic()
    params.write_text(params.read_text().replace("alpha: 0.5", "alpha: -1.0"))
    sidebar.locator("button.jp-nb2pipe-refresh").click()
    page.wait_for_function(
        """() => [...document.querySelectorAll('#jp-nb2pipe-sidebar .jp-nb2pipe-reason')]
                  .some(n => n.textContent.includes('alpha 1.0 → -1.0'))""",
        timeout=30_000,
    )
    sidebar.locator("button.jp-nb2pipe-run-stale").click()
    _wait_states(page, {"train_ridge": "failed"}, timeout=RUN_TIMEOUT_MS)
    page.wait_for_function(
        "() => document.querySelector('#jp-nb2pipe-sidebar .jp-nb2pipe-progress')?.dataset.status === 'failed'",
        timeout=60_000,
    )
    ridge = _stage(page, "train_ridge")
    error = ridge.locator(".jp-nb2pipe-stage-error")  # the stage's StageError: exception, cell, message
    assert "alpha" in error.locator(".jp-nb2pipe-error-exception").inner_text(), error.inner_text()
    assert error.locator(".jp-nb2pipe-error-cell").inner_text().startswith(f"in {NOTEBOOK} cell "), error.inner_text()
    assert "stage 'train_ridge' failed" in (error.get_attribute("title") or "")
    assert _stage(page, "compare").get_attribute("data-state") == "stale"  # not run after the failure
    shoot(page, "failed")
    timings["failing run"] = time.monotonic() - t

    ridge.locator("button.jp-nb2pipe-open-executed").click()
    panel = _panel_of_tab(page, "train_ridge.ipynb")
    executed = page.locator(panel)
    try:
        page.wait_for_function(
            """panel => {
                 const active = document.querySelector(panel)?.querySelector('.jp-Cell.jp-mod-active');
                 return !!active && active.classList.contains('jp-nb2pipe-failing-cell')
                   && !!active.querySelector('.jp-OutputArea-output');
               }""",
            arg=panel,
            timeout=60_000,
        )
    except Exception:
        shoot(page, "executed-notebook-timeout")
        raise
    assert executed.is_visible()
    assert page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current").inner_text().startswith(
        "train_ridge.ipynb"
    )
    assert executed.locator(".jp-nb2pipe-chip").count() == 0  # a run's output is not cut into stages
    assert "executed notebook" in sidebar.locator(".jp-nb2pipe-executed-note").inner_text()
    active_text = executed.locator(".jp-Cell.jp-mod-active").inner_text()
    assert "Ridge(alpha=alpha)" in active_text, active_text
    assert "alpha" in executed.locator(".jp-Cell.jp-mod-active .jp-OutputArea").inner_text()
    shoot(page, "executed-notebook")

    assert not page.page_errors, page.page_errors
    print("\n" + "\n".join(f"{k}: {v:.1f} s" for k, v in timings.items()) + f"\nlab startup: {lab.startup_s:.1f} s")
