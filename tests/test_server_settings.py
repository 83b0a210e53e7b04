"""GET /nb2pipe/status gives each stage's effective settings (its own over the notebook's
defaults), as the saved notebook makes them: what the sidebar's stage row summarises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import code, notebook
from helpers import fetch_json

PATH = "work/settings.ipynb"


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"nb2pipe.server": True}}}


def _write(root: Path, timeout: str) -> None:
    data = notebook(
        code("x = 1\n", "stage:load", f"timeout:{timeout}", "env:MODE=fast", "secret:API_TOKEN"),
        code("y = x\n", "stage:train"),
    )
    data["metadata"]["nb2pipe"] = {"defaults": {"retries": 2, "memory": "4GiB"}}
    (root / PATH).parent.mkdir(parents=True, exist_ok=True)
    (root / PATH).write_text(json.dumps(data))


async def _settings(jp_fetch) -> dict[str, dict]:
    code_, status = await fetch_json(jp_fetch, "status", params={"path": PATH})
    assert code_ == 200, status
    return {stage["name"]: stage["settings"] for stage in status["stages"]}


async def test_status_gives_each_stages_effective_settings_as_the_saved_notebook_makes_them(jp_fetch, jp_root_dir):
    _write(jp_root_dir, "30m")
    code_, _ = await fetch_json(jp_fetch, "export", method="POST", body=json.dumps({"path": PATH}))
    assert code_ == 200
    assert await _settings(jp_fetch) == {
        "load": {"timeout": "30m", "retries": 2, "memory": "4GiB", "env": {"MODE": "fast"}, "secret": ["API_TOKEN"]},
        "train": {"retries": 2, "memory": "4GiB"},
    }
    _write(jp_root_dir, "1h")  # saved, not exported again: the sidebar shows it already
    assert (await _settings(jp_fetch))["load"]["timeout"] == "1h"


async def test_status_gives_the_pipeline_defaults(jp_fetch, jp_root_dir):
    _write(jp_root_dir, "30m")
    await fetch_json(jp_fetch, "export", method="POST", body=json.dumps({"path": PATH}))
    _, status = await fetch_json(jp_fetch, "status", params={"path": PATH})
    assert status["defaults"] == {"retries": 2, "memory": "4GiB"}
