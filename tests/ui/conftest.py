"""Fixtures of the browser tests: a real `jupyter lab` and Debian's Chromium through Playwright.

The tests are marked `ui` and run only when selected: `pytest tests/ui -m ui`.

Needs, in the environment running pytest:
- the nb2pipe lab extension installed where this Python's Jupyter finds it
  (`pip install .`, or for development `pip install -e .` plus
  `jupyter labextension develop --overwrite .`, after `cd labextension && jlpm build`);
- `pip install playwright` (never `playwright install`: the browser is Debian's);
- `apt-get install chromium` (/usr/bin/chromium).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import wait_until

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
# git-ignored; scripts/screenshots copies the ones the docs show into docs/
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "ui-artifacts"
WIDGETS_MANAGER = "/@jupyter-widgets/jupyterlab-manager/"  # where ipywidgets' page errors come from
LAB_START_TIMEOUT = float(os.environ.get("NB2PIPE_UI_LAB_TIMEOUT", "180"))


def pytest_configure(config):
    config.addinivalue_line("markers", "ui: browser test against a real JupyterLab (run with -m ui)")


def pytest_collection_modifyitems(config, items):
    """Browser tests are slow: they run only when `-m` selects them."""
    if "ui" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="browser test; run with `pytest tests/ui -m ui`")
    for item in items:
        if "ui" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def jp_asyncio_loop():
    """Replace pytest-jupyter's autouse loop fixture (tests/conftest.py loads the plugin):
    Playwright's sync API runs its own loop, which that fixture would try to close."""
    yield None


@pytest.fixture
def jp_server_cleanup():
    """No in-process server here; the lab runs in its own process (fixture `lab`)."""
    yield


@dataclass
class Lab:
    url: str  # e.g. http://127.0.0.1:40123/
    token: str
    root: Path
    log: Path
    startup_s: float
    gate: Path  # kernels see it as $NB2PIPE_UI_GATE: a test can hold a stage until it creates it

    def page_url(self, path: str = "lab") -> str:
        return f"{self.url}{path}?token={self.token}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _labextension_installed() -> bool:
    from jupyter_core.paths import jupyter_path

    return any((Path(p) / "nb2pipe" / "package.json").is_file() for p in jupyter_path("labextensions"))


def _stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """Stop the server we started: its own process group, nothing else."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    if not _labextension_installed():
        pytest.fail(
            "the nb2pipe lab extension is not installed for this Python: run "
            "`cd labextension && jlpm build` then `jupyter labextension develop --overwrite .` "
            "(editable install) or `pip install .`"
        )
    with running_lab(tmp_path_factory.mktemp("lab")) as lab:
        yield lab


@contextlib.contextmanager
def running_lab(base: Path) -> Iterator[Lab]:
    """A `jupyter lab` serving `base`/root with fresh settings, stopped on exit (the fixture
    `lab`, and benchmarks/bench_lab.py)."""
    root, state = base / "root", base / "state"
    root.mkdir()
    # Fresh settings: no news toast, no update check; a restored workspace must not leak in.
    settings = state / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(state / "config"),  # no user config
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "PYTHONUNBUFFERED": "1",
        "NB2PIPE_UI_GATE": str(base / "gate"),
    }
    port, token = _free_port(), "nb2pipe-ui-test"
    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={state / 'workspaces'}",
        f"--LabApp.user_settings_dir={state / 'settings'}",
        "--ServerApp.jpserver_extensions=nb2pipe.server=True",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = base / "lab.log"
    t0 = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"{url}api/status?token={token}", timeout=5) as resp:
                return resp.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    try:
        wait_until(answers, "jupyter lab answers", timeout=LAB_START_TIMEOUT, proc=proc, seen=log.read_text, interval=0.25)
        lab = Lab(url, token, root, log, time.monotonic() - t0, base / "gate")
        # The server extension answers (a 404 here would mean it is not loaded).
        with urllib.request.urlopen(f"{url}nb2pipe/runs?path=x.ipynb&token={token}", timeout=30) as resp:
            assert json.load(resp) == {"runs": [], "sweep_trials": {}}
        yield lab
    finally:
        _stop(proc)
        if os.environ.get("NB2PIPE_UI_SHOW_LOG"):
            print(log.read_text())


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, lab):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []

    def on_error(exc) -> None:
        # ipywidgets' manager reads `session.kernel` of every notebook opened, null for one opened
        # without a kernel (an executed notebook, read-only): its error, not ours
        if WIDGETS_MANAGER not in (getattr(exc, "stack", "") or ""):
            errors.append(str(exc))

    page.on("pageerror", on_error)
    page.page_errors = errors  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def shoot(request):
    """`shoot(page, "name")` saves build/ui-artifacts/<test>-<n>-<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    counter = {"n": 0}

    def take(page, name: str, **kwargs) -> Path:
        counter["n"] += 1
        path = SCREENSHOTS / f"{request.node.name}-{counter['n']:02d}-{name}.png"
        page.screenshot(path=str(path), **kwargs)
        return path

    return take


@pytest.fixture
def copy_example(lab):
    examples = Path(__file__).resolve().parents[2] / "example_notebooks"

    def copy(name: str) -> Path:
        target = lab.root / name
        shutil.copy(examples / name, target)
        return target

    return copy
