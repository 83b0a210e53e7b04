"""Per-stage settings and the pipeline defaults, edited from the sidebar, land in nb2pipe.yaml.

One journey over diabetes_kale.ipynb (train_ridge's second cell carries `cell-timeout:1m`):
1. export from the sidebar; a stage row's gear opens the stage's settings dialog (and the cell
   menu's "Stage Settings…" the dialog of the cell's stage);
2. a bad timeout ("soon") is said in the dialog with export's words and Save is disabled;
   Enter past it opens the dialog again with what was typed; cancelled, the notebook is unchanged;
3. a cell timeout other than the other cell's is named with that cell, and goes when cleared;
4. timeout 5m, retries 2, an env row, a secret name and the python3 kernel (from Lab's
   kernelspecs) saved, the notebook saved and re-exported: nb2pipe.yaml has them under the
   stage's `settings:` (with the other cell's cell-timeout), the row summarises them;
5. "Defaults…" (below the stages) sets a memory limit: nb2pipe.yaml's `defaults:`, the
   sidebar and every row show it;
6. the dialog and the sidebar meet WCAG AA contrast (axe-core) in the light and the dark theme.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import disk_cells, wait_until
from nb2pipe.spec import safe_load
from test_lab_actions import AXE, _contrast_violations, _open, switch_theme
from test_lab_chips import _menu_item
from test_lab_e2e import SIDEBAR, STAGES, _cell, _stage, _wait_states, save_until

pytestmark = pytest.mark.ui

DIALOG = ".jp-Dialog .jp-nb2pipe-settings-dialog"
NAME = "diabetes_settings"


def _tag_cell(notebook: Path, number: int, tag: str) -> None:
    content = json.loads(notebook.read_text())
    content["cells"][number - 1]["metadata"].setdefault("tags", []).append(tag)
    notebook.write_text(json.dumps(content, indent=1))


def _spec(lab) -> dict:
    return safe_load((lab.root / "pipelines" / NAME / "nb2pipe.yaml").read_text())


def _open_dialog(page, button: str):
    page.locator(button).click()
    dialog = page.locator(DIALOG)
    dialog.wait_for(state="visible")
    return dialog


def _save(page, name: str = NAME) -> None:
    """Ctrl+S in the notebook; wait until its tab is no longer marked as changed."""
    page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell .jp-InputPrompt").first.click()
    dirty = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-dirty", has_text=name)
    save_until(page, lambda: dirty.count() == 0, f"the tab of {name} is no longer marked as changed")


def _save_and_reexport(page, notebook: Path, expected: str, name: str = NAME) -> None:
    """Save, wait until the notebook on disk holds `expected`, re-export from the sidebar's banner."""
    _save(page, name)
    wait_until(
        lambda: expected in notebook.read_text(), f"the saved notebook holds {expected}", timeout=60,
        seen=lambda: notebook.read_text()[-400:],
    )  # fmt: skip
    page.locator(f"{SIDEBAR} button.jp-nb2pipe-reexport").click()
    page.locator(f"{SIDEBAR} .jp-nb2pipe-banner").wait_for(state="detached", timeout=60_000)


def _settings_line(page, stage: str) -> str:
    line = _stage(page, stage).locator(".jp-nb2pipe-stage-settings")
    line.wait_for(timeout=60_000)
    return line.inner_text()


def test_stage_settings_and_defaults_edited_from_the_sidebar_land_in_nb2pipe_yaml(lab, page, shoot, copy_example):
    assert AXE.is_file(), f"{AXE} is missing: run `jlpm install` in labextension/"
    notebook = copy_example("diabetes_kale.ipynb").rename(lab.root / f"{NAME}.ipynb")
    _tag_cell(notebook, 11, "cell-timeout:1m")  # train_ridge's second cell
    first_cell_before = disk_cells(notebook)[9]["metadata"]  # train_ridge's first cell
    _open(page, lab, notebook.name)
    page.locator(f"{SIDEBAR} button.jp-nb2pipe-export").click()
    _wait_states(page, {name: "never-run" for name in STAGES}, timeout=60_000)
    assert _settings_line(page, "train_ridge") == "cell timeout 1m"
    assert page.locator(f"{SIDEBAR} .jp-nb2pipe-defaults-summary").inner_text() == "Pipeline defaults: none"
    assert _contrast_violations(page) == []  # the sidebar with its settings line and buttons, light

    # --- a bad value is said in the dialog and nothing is written ----------------------------
    dialog = _open_dialog(page, f'{SIDEBAR} .jp-nb2pipe-stage[data-stage="train_ridge"] .jp-nb2pipe-stage-settings-button')
    assert "Saved on cell 10, the stage's first" in dialog.inner_text()
    timeout = dialog.locator('input[data-setting="timeout"]')
    timeout.fill("soon")
    error = dialog.locator(".jp-nb2pipe-dialog-error")
    assert error.inner_text() == "timeout: 'soon' is not a duration; write a positive number with s, m or h, e.g. 30m"
    assert page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").is_disabled()
    assert "jp-mod-error" in (timeout.get_attribute("class") or "")
    assert _contrast_violations(page, [[".jp-Dialog-content"]]) == []
    shoot(page, "bad-timeout")
    timeout.press("Enter")  # past the disabled button: the dialog comes back with the mistake
    page.wait_for_function(
        """() => { const all = document.querySelectorAll('.jp-nb2pipe-settings-dialog');
                   return all.length === 1 && all[0].querySelector('input[data-setting="timeout"]').value === 'soon'
                     && all[0].querySelector('.jp-nb2pipe-dialog-error').textContent.includes("'soon' is not a duration"); }""",
        timeout=30_000,
    )
    page.keyboard.press("Escape")
    page.locator(DIALOG).wait_for(state="detached")
    _menu_item(page, _cell(page, 10), "nb2pipe:edit-stage-settings")  # the cell menu: cell 11's stage
    page.locator(".jp-Dialog-header", has_text="Settings of stage 'train_ridge'").wait_for()
    page.keyboard.press("Escape")
    page.locator(DIALOG).wait_for(state="detached")
    _save(page)  # the kernel's start may have changed the notebook's metadata; the cells are as they were
    assert disk_cells(notebook)[9]["metadata"] == first_cell_before, "a refused value was written"

    # --- dark theme: a clash with another cell of the stage is named with its cell -------------
    switch_theme(page, "JupyterLab Dark")
    dialog = _open_dialog(page, f'{SIDEBAR} .jp-nb2pipe-stage[data-stage="train_ridge"] .jp-nb2pipe-stage-settings-button')
    cell_timeout = dialog.locator('input[data-setting="cell-timeout"]')
    assert cell_timeout.input_value() == ""  # the first cell's own settings: the other cell's are named below
    cell_timeout.fill("2m")
    conflict = dialog.locator(".jp-nb2pipe-settings-conflict")
    assert conflict.inner_text().startswith("cell 11 of this stage sets cell-timeout to 1m, here to 2m")
    assert _contrast_violations(page, [[".jp-Dialog-content"]]) == []
    shoot(page, "conflict-dark")
    cell_timeout.fill("")
    assert conflict.count() == 0

    # --- valid settings are saved on the stage's first cell and exported ---------------------
    dialog.locator('input[data-setting="timeout"]').fill("5m")
    dialog.locator('input[data-setting="retries"]').fill("2")
    dialog.locator("button.jp-nb2pipe-env-add").click()
    dialog.locator('.jp-nb2pipe-env-row input[data-env="name"]').fill("MODE")
    dialog.locator('.jp-nb2pipe-env-row input[data-env="value"]').fill("fast")
    dialog.locator('input[data-setting="secret"]').fill("API_TOKEN")
    dialog.locator('select[data-setting="kernel"]').select_option("python3")
    assert dialog.locator(".jp-nb2pipe-dialog-error").inner_text() == ""
    page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
    page.locator(DIALOG).wait_for(state="detached")
    _save_and_reexport(page, notebook, '"retries": 2')
    assert _spec(lab)["stages"]["train_ridge"]["settings"] == {
        "timeout": "5m", "cell-timeout": "1m", "retries": 2, "kernel": "python3", "env": {"MODE": "fast"}, "secret": ["API_TOKEN"],
    }  # fmt: skip
    wait_until(lambda: _settings_line(page, "train_ridge").startswith("timeout 5m"), "the row shows the new settings", timeout=60,
               seen=lambda: _settings_line(page, "train_ridge"))  # fmt: skip
    assert _settings_line(page, "train_ridge") == "timeout 5m · cell timeout 1m · ↻2 · kernel python3 · env MODE · secret API_TOKEN"

    # --- pipeline defaults -------------------------------------------------------------------
    dialog = _open_dialog(page, f"{SIDEBAR} button.jp-nb2pipe-defaults")
    dialog.locator('input[data-setting="memory"]').fill("2GiB")
    page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
    page.locator(DIALOG).wait_for(state="detached")
    _save_and_reexport(page, notebook, '"memory": "2GiB"')
    assert _spec(lab)["defaults"] == {"memory": "2GiB"}
    defaults = page.locator(f"{SIDEBAR} .jp-nb2pipe-defaults-summary")
    wait_until(lambda: defaults.inner_text() == "Pipeline defaults: 2GiB", "the sidebar shows the defaults", timeout=60,
               seen=defaults.inner_text)  # fmt: skip
    wait_until(lambda: _settings_line(page, "compare") == "2GiB", "every row shows the default", timeout=60,
               seen=lambda: _settings_line(page, "compare"))  # fmt: skip
    assert _contrast_violations(page) == []  # dark
    shoot(page, "settings-in-the-sidebar")
    assert not page.page_errors, page.page_errors


def test_the_first_section_of_a_notebook_split_at_headings_gets_its_settings_too(lab, page):
    """Where the notebook alone does not tell a stage's cells (the first section's code, which
    export parses), the gear writes on the first code cell the status names."""
    notebook = lab.root / "sections.ipynb"
    cells = [("markdown", "## Load"), ("code", "data = [1, 2]\nprint(data)"), ("markdown", "## Use"), ("code", "print(len(data))")]
    notebook.write_text(json.dumps({
        "cells": [
            {"cell_type": kind, "metadata": {}, "source": source, **({"outputs": [], "execution_count": None} if kind == "code" else {})}
            for kind, source in cells
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 4,
    }))  # fmt: skip
    _open(page, lab, notebook.name)
    page.locator(f"{SIDEBAR} button.jp-nb2pipe-export").click()
    _wait_states(page, {"load": "never-run", "use": "never-run"}, timeout=60_000)
    dialog = _open_dialog(page, f'{SIDEBAR} .jp-nb2pipe-stage[data-stage="load"] .jp-nb2pipe-stage-settings-button')
    dialog.locator('input[data-setting="retries"]').fill("1")
    page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
    page.locator(DIALOG).wait_for(state="detached")
    _save_and_reexport(page, notebook, '"retries": 1', name="sections")
    spec = safe_load((lab.root / "pipelines" / "sections" / "nb2pipe.yaml").read_text())
    assert spec["stages"]["load"]["settings"] == {"retries": 1}
    assert disk_cells(notebook)[1]["metadata"]["nb2pipe"] == {"retries": 1}
    assert not page.page_errors, page.page_errors
