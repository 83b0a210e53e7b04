"""A stage's environment and secrets in the sidebar (issue 17: `env:` and `secret:`).

One journey over a notebook of two stages, both given the secret NB2PIPE_UI_TOKEN from `.env`
beside the notebook: `talk` (`env:MODE=...`) prints the secret, `boom` raises it in its error.
1. The notebook was run once with MODE=fast, then its tag changed to MODE=slow and re-exported:
   the sidebar shows `talk` stale with the reason `env changed: MODE`, and no value.
2. Run stale from the sidebar: `talk`, held at the lab's gate, shows `token *** slow` in its
   output box; `boom`'s failure box shows `ValueError: bad ***`. A MutationObserver installed before the run records whether the
   secret's value ever appeared in the sidebar: it never does.
"""

from __future__ import annotations

import secrets

import pytest

from helpers import main_quietly
from test_lab_actions import _open
from test_lab_chips import _notebook
from test_lab_e2e import SIDEBAR, _stage
from test_lab_output import _states

pytestmark = pytest.mark.ui

NOTEBOOK = "secretive.ipynb"
# prints the secret, then waits at the lab's gate file (in a lab's run only) so its output box shows
TALK = (
    "import os, time\nprint('token', os.environ['NB2PIPE_UI_TOKEN'], os.environ['MODE'], flush=True)\n"
    "gate = os.environ.get('NB2PIPE_UI_GATE')\nwhile gate and not os.path.exists(gate):\n    time.sleep(0.1)\n"
)
BOOM = "import os\nraise ValueError('bad ' + os.environ['NB2PIPE_UI_TOKEN'])"
# records in the page whether `token` ever shows in the sidebar, from now on
WATCH = """token => {
  const sidebar = document.querySelector('#jp-nb2pipe-sidebar');
  window.nb2pipeSecretSeen = sidebar.textContent.includes(token);
  new MutationObserver(() => {
    if (sidebar.textContent.includes(token)) window.nb2pipeSecretSeen = true;
  }).observe(sidebar, {subtree: true, childList: true, characterData: true});
}"""


def _write_notebook(path, mode: str) -> None:
    secret = "secret:NB2PIPE_UI_TOKEN"
    _notebook(path, (TALK, ["stage:talk", secret, f"env:MODE={mode}"]), (BOOM, ["stage:boom", secret]))


def test_env_reason_and_redacted_secret_in_the_sidebar(lab, page, shoot):
    token = secrets.token_hex(16)
    (lab.root / ".env").write_text(f"NB2PIPE_UI_TOKEN={token}\n")
    notebook = lab.root / NOTEBOOK
    _write_notebook(notebook, "fast")
    main_quietly("run", NOTEBOOK, cwd=lab.root)  # talk runs, boom fails
    _write_notebook(notebook, "slow")
    exit_code, _, err = main_quietly("export", NOTEBOOK, cwd=lab.root)
    assert exit_code == 0, err

    # 1. talk is stale because MODE changed; the reason names the variable, never a value
    _open(page, lab, NOTEBOOK)
    _states(page, {"talk": "stale", "boom": "failed"}, "the sidebar shows the state after the first run", timeout=120_000)
    reasons = _stage(page, "talk").locator(".jp-nb2pipe-reason").all_inner_texts()
    assert any("env changed: MODE" in reason for reason in reasons), reasons
    assert not any("slow" in reason or "fast" in reason for reason in reasons), reasons
    shoot(page, "env-changed")

    # 2. run stale: the printed and the raised secret show as ***, and never as its value
    page.evaluate(WATCH, token)
    page.locator(SIDEBAR).locator("button.jp-nb2pipe-run-stale").click()
    _states(page, {"talk": "running", "boom": "failed"}, "talk reruns (held at the gate), boom fails again")
    page.wait_for_function(
        """() => document.querySelector('#jp-nb2pipe-sidebar .jp-nb2pipe-stage[data-stage="talk"] .jp-nb2pipe-output')
                   ?.textContent.includes('token')""",
        timeout=120_000,
    )
    assert _stage(page, "talk").locator(".jp-nb2pipe-output").inner_text() == "token *** slow"
    failure = _stage(page, "boom").locator(".jp-nb2pipe-stage-error").inner_text().splitlines()
    assert failure[0] == "ValueError: bad ***", failure
    lab.gate.touch()
    _states(page, {"talk": "up-to-date", "boom": "failed"}, "talk ends once the gate opens")
    assert page.evaluate("window.nb2pipeSecretSeen") is False
    assert token not in page.locator(SIDEBAR).inner_text()
    shoot(page, "secret-redacted")
    assert page.page_errors == []  # type: ignore[attr-defined]
