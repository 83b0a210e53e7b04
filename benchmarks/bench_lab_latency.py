"""Two waits a JupyterLab user feels, in a real JupyterLab and Chromium (the browser tests'
machinery, tests/ui/conftest.py), measured here instead of asserted by the tests.

1. save -> stale: from Ctrl+S of an edit in a stage's cell to the sidebar showing that stage
   stale (the server computes the status from the saved notebook, no re-export)   target ~1 s
2. run click -> first stage running: from the click on "Run stale" to the sidebar showing the
   stage running (the server starts the run's worker process, which exports and dispatches)   reported

The notebook is example_notebooks/diabetes_kale.ipynb, run once before; each repeat edits the
first cell of `train_forest`, saves, then runs what the edit made stale. Each figure is the median
of --repeat (default 5). Times are taken by this script around the browser's actions (Playwright's
round trip, a few milliseconds, included).

    PYTHONPATH=. .venv-ci/bin/python benchmarks/bench_lab_latency.py     # about two minutes
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "ui"), str(REPO / "tests")]

from bench_lab import print_medians  # noqa: E402
from conftest import CHROMIUM, CHROMIUM_ARGS, running_lab  # noqa: E402  (tests/ui: the browser tests' lab)

NOTEBOOK = "diabetes_kale.ipynb"
STAGES = ("load_data", "train_ridge", "train_forest", "compare")
EDITED, EDITED_CELL = "train_forest", 12  # its first cell, 0-based among the notebook's cells
SIDEBAR = "#jp-nb2pipe-sidebar"
TARGETS = {"save -> stale": 1.0, "run click -> first stage running": None}


def stage_is(page, name: str, state: str, timeout: float = 300_000) -> None:
    page.wait_for_selector(f'{SIDEBAR} .jp-nb2pipe-stage[data-stage="{name}"][data-state="{state}"]', timeout=timeout)


def all_up_to_date(page) -> None:
    for name in STAGES:
        stage_is(page, name, "up-to-date")


def one_edit(page, index: int) -> dict[str, float]:
    cell = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(EDITED_CELL)
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.type(f"\nedit_{index} = {index}")
    page.keyboard.press("Escape")
    started = time.perf_counter()
    page.keyboard.press("Control+s")
    stage_is(page, EDITED, "stale")
    figures = {"save -> stale": time.perf_counter() - started}
    started = time.perf_counter()
    page.locator(f"{SIDEBAR} button.jp-nb2pipe-run-stale").click()
    page.wait_for_selector(f'{SIDEBAR} .jp-nb2pipe-stage[data-state="running"]', timeout=300_000)
    figures["run click -> first stage running"] = time.perf_counter() - started
    all_up_to_date(page)
    print("  " + ", ".join(f"{name} {value:.3f} s" for name, value in figures.items()), flush=True)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    with tempfile.TemporaryDirectory() as tmp, running_lab(Path(tmp)) as lab, sync_playwright() as p:
        shutil.copy(REPO / "example_notebooks" / NOTEBOOK, lab.root / NOTEBOOK)
        subprocess.run([sys.executable, "-m", "nb2pipe", "run", NOTEBOOK], cwd=lab.root, env=env, check=True, capture_output=True)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
            page.set_default_timeout(300_000)
            page.goto(lab.page_url(f"lab/tree/{NOTEBOOK}") + "&reset")
            page.wait_for_selector("#jupyterlab-splash", state="detached")
            page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="jp-nb2pipe-sidebar"]').click()
            all_up_to_date(page)
            runs = [one_edit(page, i) for i in range(args.repeat)]
        finally:
            browser.close()
    print(f"JupyterLab latencies, {NOTEBOOK}, median of {args.repeat} (Chromium)")
    print_medians(runs, TARGETS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
