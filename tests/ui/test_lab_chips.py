"""The notebook tells the pipeline's state, and the sidebar fits, orders and verifies.

1. Each stage chip shows its stage's state (`data-state`, an icon, the state in words in its
   tooltip and accessible name), live from the sidebar's model: `running` while a stage is held
   at the gate, `up-to-date` after; the chips meet WCAG AA in the light and the dark theme.
2. A stage with a 60-character name: its chip stays in the prompt column (never over the
   editor), truncated, the full name in its tooltip.
3. The sidebar opens wide enough for its buttons: none is clipped, the button row is one line.
4. "Run After Stages…" sets `after:` from the cell's menu; a cycle is refused with its reason;
   the exported nb2pipe.yaml has the edge.
5. Verify runs `nb2pipe verify` through the server: progress, then "The pipeline matches the
   notebook."
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers import disk_cells, saved_cells, wait_until
from test_lab_actions import RUN_TIMEOUT_MS, _contrast_violations, _low_contrast_chips, _open, switch_theme
from test_lab_e2e import SIDEBAR, STAGES, _cell, _hold_stage_at_gate, _wait_states, save_until

pytestmark = pytest.mark.ui

LONG_NAME = "a_stage_whose_name_is_sixty_characters_long_for_the_chip_060"
assert len(LONG_NAME) == 60


def _chip_states(page) -> dict[str, str]:
    """{stage: data-state} of the stage chips (one per stage: they agree, or the test says)."""
    found = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell.jp-nb2pipe-staged > .jp-nb2pipe-chip").evaluate_all(
        "chips => chips.map(c => [c.textContent, c.dataset.state ?? ''])"
    )
    states: dict[str, set[str]] = {}
    for name, state in found:
        states.setdefault(name, set()).add(state)
    return {name: "/".join(sorted(s)) for name, s in states.items()}


def _wait_chip_states(page, expected: dict[str, str], timeout: float) -> None:
    wait_until(lambda: all(_chip_states(page).get(k) == v for k, v in expected.items()),
               f"the chips show {expected}", timeout=timeout, seen=lambda: _chip_states(page))


def test_the_chips_show_each_stage_state_live(lab, page, copy_example, shoot):
    notebook = copy_example("diabetes_kale.ipynb").rename(lab.root / "diabetes_chips.ipynb")
    _hold_stage_at_gate(notebook, 12)  # train_forest waits until the test creates the gate file
    _open(page, lab, notebook.name)
    cells = len(disk_cells(notebook))
    wait_until(lambda: page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").count() == cells, "every cell drawn", timeout=60)
    sidebar = page.locator(SIDEBAR)
    sidebar.locator("button.jp-nb2pipe-export").click()
    _wait_states(page, {name: "never-run" for name in STAGES}, timeout=60_000)
    _wait_chip_states(page, {name: "never-run" for name in STAGES}, timeout=30)

    sidebar.locator("button.jp-nb2pipe-run-stale").click()
    _wait_states(page, {"train_forest": "running"}, timeout=RUN_TIMEOUT_MS)
    _wait_chip_states(page, {"train_forest": "running", "load_data": "up-to-date"}, timeout=30)
    chip = _cell(page, 12).locator(".jp-nb2pipe-chip")
    label = chip.get_attribute("aria-label") or ""
    assert label.startswith("stage 'train_forest': running —"), label  # no past reason ("never run")
    shoot(page, "chips-running")

    lab.gate.touch()
    _wait_states(page, {name: "up-to-date" for name in STAGES}, timeout=RUN_TIMEOUT_MS)
    _wait_chip_states(page, {name: "up-to-date" for name in STAGES}, timeout=30)
    assert "up to date" in (chip.get_attribute("title") or ""), chip.get_attribute("title")
    params = lab.root / "pipelines" / "diabetes_chips" / "params.yaml"
    params.write_text(params.read_text().replace("alpha: 1.0", "alpha: 0.5"))
    sidebar.locator("button.jp-nb2pipe-refresh").click()
    _wait_chip_states(page, {"train_ridge": "stale", "compare": "stale", "load_data": "up-to-date"}, timeout=30)
    ridge = _cell(page, 9).locator(".jp-nb2pipe-chip")
    assert ridge.get_attribute("title", timeout=5_000).startswith("stage 'train_ridge': stale (param changed: alpha 1.0 → 0.5)")
    ridge.scroll_into_view_if_needed()
    page.wait_for_function(  # the docs show this shot: no run in the sidebar's progress box
        "() => !['starting', 'running'].includes(document.querySelector('#jp-nb2pipe-sidebar .jp-nb2pipe-progress')?.dataset.status)",
        timeout=60_000,
    )
    shoot(page, "chips-stale")

    assert page.evaluate("() => document.body.dataset.jpThemeLight") == "true"
    assert _contrast_violations(page) == []
    assert _low_contrast_chips(page) == []
    switch_theme(page, "JupyterLab Dark")
    assert _contrast_violations(page) == []
    assert _low_contrast_chips(page) == []
    assert not page.page_errors, page.page_errors


def _notebook(path: Path, *cells: tuple[str, list[str]]) -> None:
    path.write_text(json.dumps({
        "cells": [{"cell_type": "code", "execution_count": None, "metadata": {"tags": tags}, "outputs": [], "source": source}
                  for source, tags in cells],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }))


def test_a_long_stage_name_stays_in_its_column_and_the_sidebar_fits_its_buttons(lab, page, shoot):
    _notebook(lab.root / "long.ipynb", ("x = 1\nprint(x)", [f"stage:{LONG_NAME}"]), ("print('two')", ["stage:two"]))
    _open(page, lab, "long.ipynb")
    chip = _cell(page, 0).locator(".jp-nb2pipe-chip")
    chip.wait_for()
    assert chip.get_attribute("title").startswith(f"stage '{LONG_NAME}'")
    boxes = _cell(page, 0).evaluate(
        """cell => {
             const box = n => { const r = n.getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
             const chip = cell.querySelector('.jp-nb2pipe-chip');
             return {chip: box(chip), prompt: box(cell.querySelector('.jp-InputPrompt')),
                     editor: box(cell.querySelector('.jp-InputArea-editor')),
                     truncated: chip.scrollWidth > chip.clientWidth};
           }"""
    )
    chip_box, prompt, editor = boxes["chip"], boxes["prompt"], boxes["editor"]
    overlaps = not (chip_box["right"] <= editor["left"] or chip_box["bottom"] <= editor["top"] or chip_box["top"] >= editor["bottom"])
    assert not overlaps, boxes
    assert prompt["left"] <= chip_box["left"] and chip_box["right"] <= prompt["right"], boxes  # fits its column
    assert boxes["truncated"], boxes  # the ellipsis, not a wider chip

    sidebar = page.locator(SIDEBAR)
    sidebar.locator("button.jp-nb2pipe-export").click()
    _wait_states(page, {LONG_NAME: "never-run", "two": "never-run"}, timeout=60_000)
    row = sidebar.locator(".jp-nb2pipe-actions").first  # the pipeline's buttons (the parameters form has a row too)
    fits = row.evaluate(
        """row => {
             const verify = document.querySelectorAll('#jp-nb2pipe-sidebar button.jp-nb2pipe-verify-button');
             const buttons = [...row.querySelectorAll('button'), ...verify];
             return {
               clipped: buttons.filter(b => b.scrollWidth > b.clientWidth).map(b => b.textContent),
               lines: new Set([...row.querySelectorAll('button')].map(b => b.offsetTop)).size,
               overflow: row.scrollWidth > row.clientWidth,
               outside: [...document.querySelectorAll('#jp-nb2pipe-sidebar button')]
                 .filter(b => b.getBoundingClientRect().right > document.querySelector('#jp-nb2pipe-sidebar').getBoundingClientRect().right)
                 .map(b => b.closest('[data-stage]')?.dataset.stage ?? b.textContent),
               sidebar: document.querySelector('#jp-nb2pipe-sidebar').getBoundingClientRect().width,
             };
           }"""
    )
    assert fits["clipped"] == [] and fits["lines"] == 1 and not fits["overflow"], fits
    assert fits["outside"] == [], fits  # a long stage name is cut short, its Run button stays in view
    name = sidebar.locator(f'.jp-nb2pipe-stage[data-stage="{LONG_NAME}"] .jp-nb2pipe-stage-name')
    assert (name.get_attribute("title") or "").startswith(LONG_NAME)
    shoot(page, "sidebar-default-width")
    assert not page.page_errors, page.page_errors


def _menu_item(page, cell, command: str) -> None:
    """Open the cell's context menu (again while its item is disabled) and click `command`."""
    item = page.locator(f'.lm-Menu .lm-Menu-item[data-command="{command}"]')
    for _ in range(10):
        cell.locator(".jp-InputPrompt").click(button="right", position={"x": 20, "y": 6})
        page.locator(".lm-Menu .lm-Menu-item", has_text="nb2pipe").hover()
        item.wait_for()
        if "lm-mod-disabled" not in (item.get_attribute("class") or ""):
            break
        page.keyboard.press("Escape")
        page.keyboard.press("Escape")
        page.wait_for_timeout(500)
    item.click()


def test_run_after_is_set_from_the_cell_menu(lab, page, shoot):
    notebook = lab.root / "order.ipynb"
    _notebook(notebook, ("print('a')", ["stage:first"]), ("print('b')", ["stage:second"]), ("print('c')", ["stage:third"]))
    _open(page, lab, notebook.name)
    page.wait_for_function("() => document.querySelectorAll('.jp-Notebook .jp-Cell .jp-nb2pipe-chip').length === 3")

    _menu_item(page, _cell(page, 2), "nb2pipe:set-after")
    dialog = page.locator(".jp-Dialog")
    dialog.locator('input[data-stage="first"]').check()
    shoot(page, "after-dialog")
    dialog.locator("button.jp-mod-accept").click()
    dialog.wait_for(state="detached")

    _menu_item(page, _cell(page, 0), "nb2pipe:set-after")  # first after third: a cycle
    dialog.locator('input[data-stage="third"]').check()
    error = dialog.locator(".jp-nb2pipe-dialog-error")
    assert error.inner_text() == "'first' after 'third' makes a cycle (first → third → first); leave 'third' out"
    dialog.locator("button.jp-mod-accept").click()
    page.locator(".jp-Dialog", has_text="makes a cycle").wait_for()  # refused, with the reason
    page.keyboard.press("Escape")
    page.locator(".jp-Dialog").wait_for(state="detached")

    save_until(page, lambda: "after:first" in json.dumps((saved_cells(notebook) or [{}] * 3)[2].get("metadata")),
               "the notebook is saved with after:first", seen=notebook.read_text)  # fmt: skip
    assert "after:" not in json.dumps(disk_cells(notebook)[0]["metadata"])
    page.locator(SIDEBAR).locator("button.jp-nb2pipe-export").click()
    spec = lab.root / "pipelines" / "order" / "nb2pipe.yaml"
    wait_until(spec.is_file, "the pipeline is exported", timeout=60)
    stages = yaml.safe_load(spec.read_text())["stages"]
    assert stages["third"]["after"] == ["first"], stages
    assert "after" not in stages["first"], stages
    assert not page.page_errors, page.page_errors


def test_verify_says_the_pipeline_matches_the_notebook(lab, page, shoot):
    _notebook(lab.root / "check.ipynb", ("n = 3", ["parameters"]), ("numbers = list(range(n))\nprint(numbers)", ["stage:make"]),
              ("print(sum(numbers))", ["stage:use"]))
    _open(page, lab, "check.ipynb")
    sidebar = page.locator(SIDEBAR)
    sidebar.locator("button.jp-nb2pipe-export").click()
    _wait_states(page, {"make": "never-run", "use": "never-run"}, timeout=60_000)
    page.evaluate(  # remember that progress showed, however short the verify took
        """() => new MutationObserver(() => {
             const result = document.querySelector('#jp-nb2pipe-sidebar .jp-nb2pipe-verify-result[data-status="running"], '
                                                  + '#jp-nb2pipe-sidebar .jp-nb2pipe-verify-result[data-status="starting"]');
             if (result?.textContent.startsWith('Verifying')) window.nb2pipeSawVerifying = true;
           }).observe(document.querySelector('#jp-nb2pipe-sidebar'), {childList: true, subtree: true, attributes: true})"""
    )
    sidebar.locator("button.jp-nb2pipe-verify-button").click()
    result = sidebar.locator('.jp-nb2pipe-verify-result[data-status="ok"]')
    result.wait_for(timeout=RUN_TIMEOUT_MS)
    assert page.evaluate("() => window.nb2pipeSawVerifying === true"), "no progress was shown"
    assert result.get_attribute("data-equal") == "true"
    text = result.inner_text()
    assert text.startswith("The pipeline matches the notebook.") and "verified: 2 cells" in text, text
    shoot(page, "verified")
    assert _contrast_violations(page) == []
    assert not page.page_errors, page.page_errors
