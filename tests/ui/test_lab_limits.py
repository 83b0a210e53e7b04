"""Per-stage limits as the sidebar shows them: a run from the sidebar in which a stage with
`timeout:15s` and `allow-failure` is stopped. The stopped stage is failed with the limit and its
cell in its failure box, the independent stage is up to date, and the run itself ended ok with
the allowed failure in its summary.
"""

from __future__ import annotations

import json

import pytest

from test_lab_actions import RUN_TIMEOUT_MS, _job_status, _open
from test_lab_e2e import SIDEBAR, _stage, _wait_states

pytestmark = pytest.mark.ui


def _code(source: str, *tags: str) -> dict:
    return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": source, "outputs": [], "execution_count": None}


def test_a_stage_over_its_timeout_shows_failed_with_its_cell_and_an_allowed_failure_lets_the_run_succeed(lab, page, shoot):
    notebook = lab.root / "limits.ipynb"
    cells = [
        _code("import time", "setup"),
        _code("time.sleep(600)\n", "stage:slow", "timeout:15s", "allow-failure"),
        _code("with open('fine.txt', 'w') as fine_file:\n    fine_file.write('fine')\n", "stage:fine", "out:fine.txt"),
    ]
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    notebook.write_text(json.dumps({"cells": cells, "metadata": kernel, "nbformat": 4, "nbformat_minor": 5}))
    _open(page, lab, notebook.name)
    sidebar = page.locator(SIDEBAR)
    sidebar.locator("button.jp-nb2pipe-export").click()
    _wait_states(page, {"slow": "never-run", "fine": "never-run"}, timeout=60_000)
    sidebar.locator("button.jp-nb2pipe-run-stale").click()
    _wait_states(page, {"slow": "failed", "fine": "up-to-date"}, timeout=RUN_TIMEOUT_MS)
    summary = _job_status(page, "ok")
    assert "1 ran, 0 up to date, 0 restored from cache, 1 failed (allowed)" in summary, summary
    failure = _stage(page, "slow").locator(".jp-nb2pipe-stage-error")
    failure.wait_for(timeout=60_000)
    assert failure.locator(".jp-nb2pipe-error-exception").inner_text() == "StageTimeout: timed out after 15s in cell 2"
    shoot(page, "stopped-by-its-timeout")
    assert not page.page_errors, page.page_errors
