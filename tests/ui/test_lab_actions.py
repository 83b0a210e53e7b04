"""The sidebar's actions tell the truth: a run uses the notebook as the user sees it, and an
action's error stays until the user dismisses it.

1. With a parameter edited but not saved, "Run stale" saves the notebook first, so the stages
   that read the parameter run with the new value (the run re-exports the changed notebook).
2. An export refused for a user mistake (two parameters cells) keeps its message on screen
   through later status polls, until "Dismiss".
3. A saved edit of a stage's cell shows that stage stale, with the cell, and its dependant
   stale after it, before any re-export.
4. Deleting cells throws nothing and leaves the chips as the notebook reopened shows them.
5. Cancel says "Cancelling" at once; the stopped stage ends `cancelled`, not failed.
6. Marking a second parameters cell is refused with export's own words.
7. Every text of the sidebar and of the stage chips meets WCAG AA contrast in the light and the
   dark theme (axe-core, from the extension's dev dependencies, run in the page).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers import disk_cells, saved_cells, wait_until
from test_lab_e2e import SIDEBAR, STAGES, _cell, _hold_stage_at_gate, _stage, _wait_states, save_until

pytestmark = pytest.mark.ui

RUN_TIMEOUT_MS = 400_000  # a run starts kernels; the machine may be busy
AXE = Path(__file__).resolve().parents[2] / "labextension" / "node_modules" / "axe-core" / "axe.min.js"


def _open(page, lab, name: str) -> None:
    page.goto(lab.page_url(f"lab/tree/{name}") + "&reset")  # not the notebooks an earlier journey left open
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=120_000)
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=60_000)
    page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="jp-nb2pipe-sidebar"]').click()
    page.locator(SIDEBAR).wait_for(state="visible")


def _job_status(page, status: str, timeout: float = RUN_TIMEOUT_MS, other_than: str = "") -> str:
    """Wait until the progress box shows a finished job with `status` and a text other than
    `other_than` (the previous run's); its text."""
    page.wait_for_function(
        """([status, before]) => {
             const box = document.querySelector('#jp-nb2pipe-sidebar .jp-nb2pipe-progress');
             return box?.dataset.status === status && box.textContent !== before;
           }""",
        arg=[status, other_than],
        timeout=timeout,
    )
    return page.locator(f"{SIDEBAR} .jp-nb2pipe-progress").inner_text()


def _export_and_run(page) -> str:
    """Export the open notebook from the sidebar, run its stages, wait for all four up to date;
    the progress box's summary."""
    sidebar = page.locator(SIDEBAR)
    sidebar.locator("button.jp-nb2pipe-export").click()
    _wait_states(page, {name: "never-run" for name in STAGES}, timeout=60_000)
    sidebar.locator("button.jp-nb2pipe-run-stale").click()
    _wait_states(page, {name: "up-to-date" for name in STAGES}, timeout=RUN_TIMEOUT_MS)
    return _job_status(page, "ok")


def test_run_stale_saves_unsaved_edits_first(lab, page, copy_example):
    notebook = copy_example("diabetes_kale.ipynb")
    _open(page, lab, notebook.name)
    sidebar = page.locator(SIDEBAR)
    first = _export_and_run(page)
    assert first.startswith("4 ran"), first

    parameters = _cell(page, 3)  # alpha = 1.0 / n_estimators = 40 / seed = 0
    parameters.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.type("alpha = 1.0\nn_estimators = 60\nseed = 0")
    page.keyboard.press("Escape")
    assert "n_estimators = 40" in notebook.read_text()  # not saved yet
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-dirty").wait_for(timeout=10_000)  # Lab marks it unsaved

    sidebar.locator("button.jp-nb2pipe-run-stale").click()
    text = _job_status(page, "ok", other_than=first)
    saved = disk_cells(notebook)[3]
    assert "".join(saved["source"]) == "alpha = 1.0\nn_estimators = 60\nseed = 0"
    assert text.startswith("2 ran, 2 up to date"), text  # train_forest and compare, with the new value
    runs = lab.root / "pipelines" / "diabetes_kale" / "runs"
    newest = max(runs.iterdir(), key=lambda p: p.stat().st_mtime)
    assert "train_forest: n_estimators=60" in (newest / "train_forest.ipynb").read_text()
    _wait_states(page, {name: "up-to-date" for name in STAGES}, timeout=60_000)
    assert not page.page_errors, page.page_errors


def _two_parameters_cells(path: Path) -> None:
    def code(source: str, tags: list[str]) -> dict:
        return {"cell_type": "code", "execution_count": None, "metadata": {"tags": tags}, "outputs": [], "source": source}

    path.write_text(json.dumps({
        "cells": [code("a = 1", ["parameters"]), code("print(a)", []), code("b = 2", ["parameters"])],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }))


def test_an_export_error_stays_until_dismissed(lab, page):
    _two_parameters_cells(lab.root / "two_params.ipynb")
    _open(page, lab, "two_params.ipynb")
    sidebar = page.locator(SIDEBAR)
    sidebar.locator("button.jp-nb2pipe-export").click()
    error = sidebar.locator(".jp-nb2pipe-error")
    error.wait_for(timeout=30_000)
    message = error.locator(".jp-nb2pipe-error-text").inner_text()
    assert "two parameters cells" in message and "cell 1" in message and "cell 3" in message, message

    for _ in range(3):  # the sidebar polls status about every second
        with page.expect_response(lambda response: "/nb2pipe/status" in response.url, timeout=60_000):
            pass
    assert error.locator(".jp-nb2pipe-error-text").inner_text() == message  # still there

    error.locator("button.jp-nb2pipe-dismiss").click()
    error.wait_for(state="detached", timeout=10_000)
    assert not page.page_errors, page.page_errors



def test_a_saved_edit_shows_what_it_makes_stale_before_any_re_export(lab, page, copy_example):
    notebook = copy_example("diabetes_kale.ipynb").rename(lab.root / "diabetes_saved.ipynb")  # a pipeline of its own
    _open(page, lab, notebook.name)
    sidebar = page.locator(SIDEBAR)
    _export_and_run(page)

    forest = _cell(page, 12)  # train_forest's first cell: notebook cell 13
    forest.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.type("\nprint('forest trained')")
    page.keyboard.press("Escape")
    save_until(page, lambda: "forest trained" in notebook.read_text(), "the edit is saved", seen=lambda: notebook.read_text()[-500:])
    _wait_states(
        page,
        {"load_data": "up-to-date", "train_ridge": "up-to-date", "train_forest": "stale", "compare": "stale"},
        timeout=30_000,
    )
    assert _stage(page, "train_forest").locator(".jp-nb2pipe-reason").all_inner_texts() == ["code changed: cell 13"]
    assert "upstream stale: train_forest" in _stage(page, "compare").locator(".jp-nb2pipe-reason").all_inner_texts()
    banner = sidebar.locator(".jp-nb2pipe-banner")
    assert "the stages show what it changes" in banner.inner_text()
    assert "forest trained" not in (lab.root / "pipelines" / "diabetes_saved" / "stages" / "train_forest.py").read_text()
    assert not page.page_errors, page.page_errors


def test_deleting_cells_keeps_the_chips_right(lab, page, copy_example):
    """Cells deleted (one, then two at once) leave no page error, and the chips of the cells
    after them still show their stages."""
    notebook = copy_example("diabetes_kale.ipynb").rename(lab.root / "diabetes_delete.ipynb")
    _open(page, lab, notebook.name)
    page.wait_for_function("() => document.querySelectorAll('.jp-Notebook .jp-Cell .jp-nb2pipe-chip').length >= 11")

    def chips() -> list[str]:
        return page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").evaluate_all(
            "cells => cells.map(c => c.querySelector('.jp-nb2pipe-chip')?.textContent ?? '')"
        )

    def delete(index: int, count: int) -> None:
        """Select `count` cells from `index` (click, shift-click) and delete them with the cell
        context menu's Delete Cell. The menu is opened again (never clicked twice) while its item
        is still disabled: Lab enables it once the notebook is the current widget."""
        cells = len(chips())
        _cell(page, index).locator(".jp-InputPrompt").click(position={"x": 20, "y": 6})
        if count > 1:
            _cell(page, index + count - 1).locator(".jp-InputPrompt").click(position={"x": 20, "y": 6}, modifiers=["Shift"])
        item = page.locator('.lm-Menu .lm-Menu-item[data-command="notebook:delete-cell"]')
        for _ in range(10):
            _cell(page, index).locator(".jp-InputPrompt").click(button="right", position={"x": 20, "y": 6})
            item.wait_for()
            if "lm-mod-disabled" not in (item.get_attribute("class") or ""):
                break
            page.keyboard.press("Escape")
            page.wait_for_timeout(500)
        item.click()
        page.wait_for_function("n => document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell').length === n", arg=cells - count)

    cells_on_disk = len(disk_cells(notebook))
    # every cell drawn and decorated (Lab draws a long notebook's cells as they come into view)
    wait_until(lambda: len(chips()) == cells_on_disk and chips()[-1] == "compare", "all cells with their chips", timeout=60, seen=chips)
    before = chips()
    assert before[7] == "skip" and before[9] == "train_ridge", before
    delete(7, 1)  # the skip cell: nothing else changes
    expected = before[:7] + before[8:]
    wait_until(lambda: chips() == expected, "the chips after deleting one cell", timeout=30, seen=chips)
    delete(10, 2)  # train_forest's heading and tagged cell: its untagged cell now follows train_ridge
    wait_until(lambda: chips()[10] == "train_ridge", "the chips after deleting two cells", timeout=30, seen=chips)
    after = chips()
    assert not page.page_errors, page.page_errors

    # the same notebook opened afresh shows the same chips
    save_until(page, lambda: len(saved_cells(notebook) or ()) == len(after), "the notebook is saved")
    _open(page, lab, notebook.name)
    page.wait_for_function("() => document.querySelectorAll('.jp-Notebook .jp-Cell .jp-nb2pipe-chip').length >= 9")
    wait_until(lambda: chips() == after, "the reopened notebook shows the same chips", timeout=30, seen=chips)


def test_cancel_answers_at_once_and_the_stopped_stage_is_cancelled(lab, page, copy_example):
    notebook = copy_example("diabetes_kale.ipynb").rename(lab.root / "diabetes_cancel.ipynb")
    _hold_stage_at_gate(notebook, 12)  # train_forest waits for a file no one creates
    _open(page, lab, notebook.name)
    sidebar = page.locator(SIDEBAR)
    sidebar.locator("button.jp-nb2pipe-export").click()
    _wait_states(page, {name: "never-run" for name in STAGES}, timeout=60_000)
    sidebar.locator("button.jp-nb2pipe-run-stale").click()
    _wait_states(page, {"train_forest": "running"}, timeout=RUN_TIMEOUT_MS)

    page.evaluate(  # remember whether "Cancelling" ever showed, however short the cancel took
        """() => new MutationObserver(() => {
             const box = document.querySelector('#jp-nb2pipe-sidebar .jp-nb2pipe-progress[data-cancelling="true"]');
             const button = document.querySelector('#jp-nb2pipe-sidebar button.jp-nb2pipe-cancel');
             if (box && button?.disabled) window.nb2pipeSawCancelling = true;
           }).observe(document.querySelector('#jp-nb2pipe-sidebar'), {childList: true, subtree: true, attributes: true})"""
    )
    sidebar.locator("button.jp-nb2pipe-cancel").click()
    text = _job_status(page, "cancelled")
    assert page.evaluate("() => window.nb2pipeSawCancelling === true"), "no 'Cancelling' feedback was shown"
    assert text == "Run cancelled.", text
    _wait_states(page, {"train_forest": "cancelled"}, timeout=60_000)
    assert _stage(page, "compare").get_attribute("data-state") == "never-run"
    assert not page.page_errors, page.page_errors


def test_a_second_parameters_cell_is_refused(lab, page, copy_example):
    notebook = copy_example("diabetes_kale.ipynb").rename(lab.root / "diabetes_params.ipynb")
    _open(page, lab, notebook.name)
    page.wait_for_function("() => document.querySelectorAll('.jp-Notebook .jp-Cell .jp-nb2pipe-chip').length >= 11")
    cell = _cell(page, 5)  # load_data; cell 4 (index 3) holds the parameters
    cell.locator(".jp-InputPrompt").click(button="right", position={"x": 20, "y": 6})
    page.locator(".lm-Menu .lm-Menu-item", has_text="nb2pipe").hover()
    page.locator('.lm-Menu .lm-Menu-item[data-command="nb2pipe:toggle-parameters"]').click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for()
    assert "two parameters cells: cell 4 and cell 6; merge them into one" in dialog.inner_text()
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    assert cell.locator(".jp-nb2pipe-chip").inner_text() == "load_data"
    assert not page.page_errors, page.page_errors


def switch_theme(page, name: str) -> None:
    """Settings → Theme → `name`, as a user does it, and wait until it applies."""
    page.locator(".lm-MenuBar-item", has_text="Settings").click()
    page.locator(".lm-Menu .lm-Menu-item", has_text=re.compile(r"^Theme$")).hover()
    page.get_by_role("menuitem", name=name, exact=True).click()
    page.wait_for_function("name => document.body.dataset.jpThemeName === name", arg=name, timeout=30_000)
    light = "false" if "Dark" in name else "true"
    page.wait_for_function("light => document.body.dataset.jpThemeLight === light", arg=light, timeout=30_000)


def _contrast_violations(page, where: list[list[str]] | None = None) -> list[str]:
    """axe-core's color-contrast rule over `where` (axe's `include`), by default the sidebar and
    the cells' stage chips."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async (include) => {
             const result = await axe.run(
               {include},
               {runOnly: {type: 'rule', values: ['color-contrast']}, resultTypes: ['violations']});
             return result.violations.flatMap(v => v.nodes.map(n => `${n.target.join(' ')}: ${n.failureSummary}`));
           }""",
        where or [["#jp-nb2pipe-sidebar"], [".jp-nb2pipe-chip"]],
    )
    return list(found)


def _luminance(rgb: str) -> float:
    red, green, blue = (int(v) / 255 for v in re.findall(r"[\d.]+", rgb)[:3])
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (red, green, blue)]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _low_contrast_chips(page) -> list[str]:
    """The stage chips whose text contrasts less than 4.5:1 with their background (axe-core
    leaves them undecided: they sit over the cell's prompt)."""
    colours = page.locator(".jp-nb2pipe-chip").evaluate_all(
        "chips => chips.map(c => [c.textContent, getComputedStyle(c).color, getComputedStyle(c).backgroundColor])"
    )
    low = []
    for text, colour, background in colours:
        high_l, low_l = sorted((_luminance(colour), _luminance(background)), reverse=True)
        ratio = (high_l + 0.05) / (low_l + 0.05)
        if ratio < 4.5:
            low.append(f"{text}: {colour} on {background} = {ratio:.2f}:1")
    return low


def test_the_sidebar_and_chips_meet_wcag_aa_contrast_in_both_themes(lab, page, copy_example):
    assert AXE.is_file(), f"{AXE} is missing: run `jlpm install` in labextension/ (axe-core is a dev dependency)"
    notebook = copy_example("diabetes_kale.ipynb").rename(lab.root / "diabetes_look.ipynb")
    _open(page, lab, notebook.name)
    sidebar = page.locator(SIDEBAR)
    _export_and_run(page)
    params = lab.root / "pipelines" / "diabetes_look" / "params.yaml"
    params.write_text(params.read_text().replace("alpha: 1.0", "alpha: 0.5"))
    sidebar.locator("button.jp-nb2pipe-refresh").click()
    _wait_states(page, {"train_ridge": "stale", "compare": "stale"}, timeout=30_000)

    notebook.write_text(notebook.read_text().replace("Diabetes progression", "Diabetes progression (edited)"))
    sidebar.locator(".jp-nb2pipe-banner").wait_for(timeout=30_000)  # the banner is checked too
    tab = page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="jp-nb2pipe-sidebar"]')
    assert "pipeline" in (tab.get_attribute("title") or ""), tab.get_attribute("title")  # not just "nb2pipe"
    assert _contrast_violations(page) == []
    assert _low_contrast_chips(page) == []
    switch_theme(page, "JupyterLab Dark")
    assert _contrast_violations(page) == []
    assert _low_contrast_chips(page) == []
    assert not page.page_errors, page.page_errors
