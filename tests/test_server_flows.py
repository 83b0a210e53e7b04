"""GET /nb2pipe/status says, per stage, what flows in and out of it (what `nb2pipe explain`
prints): the variables it loads (from which stage) and saves (for which stages), the files it
reads (and the stage writing each) and writes, its parameters and its `after:` stages. It is
read from the pipeline files; nothing runs."""

from __future__ import annotations

import json

import pytest

from conftest import code, write_nb
from helpers import fetch_json

PATH = "work/flows.ipynb"


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"nb2pipe.server": True}}}


@pytest.fixture
def diamond(jp_root_dir):
    return write_nb(
        jp_root_dir / PATH,
        code("n = 3", "parameters"),
        code("xs = list(range(n))", "stage:load"),
        code("total = sum(xs)\nopen('total.txt', 'w').write(str(total))", "stage:left"),
        code("biggest = max(xs)", "stage:right", "after:left"),
        code("print(open('total.txt').read(), biggest)", "stage:report"),
    )


async def _status(jp_fetch) -> dict[str, dict]:
    code_, _ = await fetch_json(jp_fetch, "export", method="POST", body=json.dumps({"path": PATH}))
    assert code_ == 200
    _, status = await fetch_json(jp_fetch, "status", params={"path": PATH})
    return {stage["name"]: stage for stage in status["stages"]}


async def test_status_names_the_variables_each_stage_loads_and_saves_with_their_stages(jp_fetch, diamond):
    stages = await _status(jp_fetch)
    assert stages["load"]["loads"] == [] and stages["load"]["saves"] == [{"name": "xs", "to": ["left", "right"]}]
    assert stages["left"]["loads"] == [{"name": "xs", "from": "load"}]
    assert stages["report"]["loads"] == [{"name": "biggest", "from": "right"}]
    assert stages["right"]["saves"] == [{"name": "biggest", "to": ["report"]}]


async def test_status_names_the_files_each_stage_reads_and_writes_and_who_writes_them(jp_fetch, diamond):
    stages = await _status(jp_fetch)
    assert stages["left"]["outs"] == [{"path": "total.txt", "how": "inferred"}]
    assert stages["report"]["deps"] == [{"path": "total.txt", "from": ["left"], "how": "inferred"}]
    # the variables' hand-off files under .nb2pipe/vars are named by the variables, not listed as files
    assert all(not f["path"].count(".nb2pipe/") for s in stages.values() for f in s["deps"] + s["outs"])


async def test_status_names_each_stages_parameters_and_after_ordering(jp_fetch, diamond):
    stages = await _status(jp_fetch)
    assert stages["load"]["params"] == ["n"] and stages["load"]["after"] == []
    assert stages["right"]["after"] == ["left"]
