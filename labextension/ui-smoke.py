#!/usr/bin/env python3
"""UI smoke test of the nb2pipe JupyterLab extension.

Starts `jupyter lab` (from the environment where the nb2pipe wheel is
installed), opens it in Debian's headless Chromium through Playwright, and
checks that the nb2pipe sidebar tab exists, that clicking it shows the panel,
and that the panel follows the active notebook.

    python ui-smoke.py --jupyter /path/to/venv/bin/jupyter --screenshot /tmp/lab.png

Needs: `pip install playwright` (in the interpreter running this script) and
`apt-get install chromium`. Never `playwright install`: its browser download
cannot be fetched here.

The pieces (`start_lab`, `stop_lab`, `launch_browser`, `check_sidebar`) are
meant to become pytest fixtures later.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

SIDEBAR_ID = "jp-nb2pipe-sidebar"
NOTEBOOK_NAME = "demo.ipynb"


@dataclass
class Lab:
    proc: subprocess.Popen
    url: str  # base URL, e.g. http://127.0.0.1:8899/
    token: str
    root_dir: Path
    startup_s: float
    log_path: Path
    state_dir: Path  # workspaces + user settings of this run only


def write_demo_notebook(root_dir: Path) -> Path:
    """A tiny valid nbformat-4 notebook, so the panel has a path to show."""
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": "c1",
                "metadata": {},
                "outputs": [],
                "source": ["x = 1"],
            }
        ],
        # A kernelspec avoids the "Select Kernel" dialog on open.
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = root_dir / NOTEBOOK_NAME
    path.write_text(json.dumps(nb))
    return path


def start_lab(
    jupyter: str,
    root_dir: Path,
    port: int = 8899,
    token: str = "abc",
    timeout: float = 60.0,
) -> Lab:
    """Start `jupyter lab` in the background; return once /api/status answers."""
    root_dir.mkdir(parents=True, exist_ok=True)
    log_path = Path(tempfile.mkstemp(prefix="nb2pipe-lab-", suffix=".log")[1])
    # Fresh workspace and settings: a layout restored from an earlier run
    # (e.g. an open notebook) must not leak into this one.
    state_dir = Path(tempfile.mkdtemp(prefix="nb2pipe-lab-state-"))
    # No "get notified about Jupyter news?" toast, no news/update fetches.
    notification = state_dir / "settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    cmd = [
        jupyter,
        "lab",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port_retries=0",
        f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        f"--LabApp.workspaces_dir={state_dir / 'workspaces'}",
        f"--LabApp.user_settings_dir={state_dir / 'settings'}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    t0 = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}/"
    status = f"{base}api/status?token={token}"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"jupyter lab exited with {proc.returncode}:\n{log_path.read_text()}"
            )
        try:
            with urllib.request.urlopen(status, timeout=2) as resp:
                if resp.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() - t0 > timeout:
            stop_lab_process(proc)
            raise TimeoutError(f"jupyter lab not up after {timeout}s:\n{log_path.read_text()}")
        time.sleep(0.2)
    return Lab(proc, base, token, root_dir, time.monotonic() - t0, log_path, state_dir)


def stop_lab_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop the server we started (its own process group, nothing else)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


def stop_lab(lab: Lab) -> None:
    stop_lab_process(lab.proc)
    shutil.rmtree(lab.state_dir, ignore_errors=True)


def launch_browser(playwright):
    """Debian's Chromium, driven by Playwright (no downloaded browser).

    No `--user-data-dir`: Playwright refuses it in `launch()` and gives every
    launch a fresh temporary profile of its own anyway.
    """
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def check_sidebar(browser, lab: Lab, screenshot: Path | None = None) -> dict:
    """Load the lab page and check the nb2pipe sidebar. Returns timings (s)."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    timings: dict[str, float] = {}

    t0 = time.monotonic()
    page.goto(f"{lab.url}lab?token={lab.token}")
    # Ready: the splash screen is gone and the shell is laid out.
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=60_000)
    page.wait_for_selector(".jp-LabShell", timeout=60_000)
    timings["page_ready_s"] = time.monotonic() - t0

    tab = page.locator(f'.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="{SIDEBAR_ID}"]')
    tab.wait_for(timeout=30_000)
    assert tab.get_attribute("title") == "nb2pipe", tab.get_attribute("title")
    assert tab.locator("svg").count() >= 1, "sidebar tab has no icon"

    panel = page.locator(f"#{SIDEBAR_ID}")
    if panel.is_visible():  # a restored layout may already show it
        tab.click()
        panel.wait_for(state="hidden")
    tab.click()
    panel.wait_for(state="visible", timeout=10_000)
    assert panel.locator(".jp-nb2pipe-title").inner_text() == "nb2pipe"
    # The setting default from schema/plugin.json reached the plugin.
    page.wait_for_function(
        """sel => document.querySelector(sel)?.dataset.pollInterval === '1000'""",
        arg=f"#{SIDEBAR_ID}",
        timeout=10_000,
    )
    path = panel.locator(".jp-nb2pipe-path")
    assert path.inner_text() == "No active notebook", path.inner_text()

    # Open the notebook: the panel must follow INotebookTracker.currentChanged.
    page.goto(f"{lab.url}lab/tree/{NOTEBOOK_NAME}?token={lab.token}")
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=60_000)
    page.wait_for_selector(".jp-NotebookPanel", timeout=30_000)
    if not panel.is_visible():
        page.locator(
            f'.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="{SIDEBAR_ID}"]'
        ).click()
    page.wait_for_function(
        """([sel, want]) => document.querySelector(sel)?.textContent === want""",
        arg=[f"#{SIDEBAR_ID} .jp-nb2pipe-path", NOTEBOOK_NAME],
        timeout=15_000,
    )

    if screenshot is not None:
        page.screenshot(path=str(screenshot))
    assert not errors, f"page errors: {errors}"
    page.close()
    return timings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jupyter", default=shutil.which("jupyter") or "jupyter",
                    help="jupyter executable of the env with nb2pipe installed")
    ap.add_argument("--root-dir", type=Path, default=None,
                    help="lab root dir (default: a new temp dir)")
    ap.add_argument("--port", type=int, default=8899)
    ap.add_argument("--token", default="abc")
    ap.add_argument("--screenshot", type=Path, default=Path("/tmp/lab.png"))
    args = ap.parse_args(argv)

    from playwright.sync_api import sync_playwright

    root_dir = args.root_dir or Path(tempfile.mkdtemp(prefix="nb2pipe-lab-root-"))
    root_dir.mkdir(parents=True, exist_ok=True)
    write_demo_notebook(root_dir)

    lab = start_lab(args.jupyter, root_dir, args.port, args.token)
    try:
        print(f"lab startup: {lab.startup_s:.2f} s")
        with sync_playwright() as p:
            browser = launch_browser(p)
            try:
                timings = check_sidebar(browser, lab, args.screenshot)
            finally:
                browser.close()
        print(f"page ready: {timings['page_ready_s']:.2f} s")
        print(f"screenshot: {args.screenshot}")
        print("ui-smoke: 1 passed, 0 failed")
        return 0
    finally:
        stop_lab(lab)


if __name__ == "__main__":
    sys.exit(main())
