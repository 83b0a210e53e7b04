"""A scratch workspace (api.scratch_workspace): a pipeline runs in an isolated copy of its working
folder; the real workspace, nb2pipe.lock and the run history are untouched, the outs land in the
output cache, and the scratch is gone afterwards. Real kernels and papermill."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from conftest import code, write_nb
from nb2pipe import api
from nb2pipe.errors import SpecError
from nb2pipe.run.cache import OutputCache

pytestmark = pytest.mark.slow

NB = "nb.ipynb"
PIPE = "pipelines/nb"
PREPARE = "with open('raw.txt') as f:\n    rows = f.read().split()\nwith open('clean.txt', 'w') as f:\n    f.write(' '.join(sorted(rows)))"
SCORE = "with open('clean.txt') as f:\n    rows = f.read().split()\nscore = len(rows) * factor\nopen('score.txt', 'w').write(f'{score}')"


@pytest.fixture(autouse=True)
def _no_stale_papermill_cwd():
    from papermill.iorw import papermill_io

    papermill_io.get_handler("local").cwd(None)
    yield


@pytest.fixture
def ran(tmp_path, monkeypatch) -> Path:
    """raw.txt (a dep no stage writes) -> prepare -> clean.txt -> score (uses factor) ->
    score.txt (and its metrics); run once in the real workspace with factor 1."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "raw.txt").write_text("c b a")
    write_nb(
        tmp_path / NB,
        code("factor = 1", "parameters"),
        code(PREPARE, "stage:prepare", "in:raw.txt", "out:clean.txt"),
        code(SCORE, "stage:score", "in:clean.txt", "out:score.txt", "metrics"),
    )
    report = api.run(NB)
    assert report.ok, report.errors
    return tmp_path


def workspace_state(root: Path) -> dict[str, str]:
    """Every file in the workspace but the output cache and scratch area, with a hash of its bytes."""
    state = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and not re.match(r"pipelines/nb/\.nb2pipe/(cache|scratch)/", relative):
            state[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def test_a_scratch_run_leaves_the_workspace_untouched_and_its_outs_in_the_cache(ran):
    before = workspace_state(ran)
    history = api.history(PIPE)
    with api.scratch_workspace(PIPE) as scratch:
        report = scratch.run(params={"factor": 10})
        assert report.ok and not report.recorded, report.errors
        # prepare's code, params and deps are as in the real run: restored from the run cache
        assert report.outcomes == {"prepare": "restored", "score": "ran"}
        assert scratch.path("score.txt").read_text() == "30"
        assert scratch.metrics() == {"score": {"score": 30}}
        outs = scratch.outs()
        assert set(outs) == {"prepare", "score"} and "score.txt" in outs["score"]
        assert scratch.path("raw.txt").is_symlink() and scratch.path("raw.txt").resolve() == (ran / "raw.txt").resolve()
        assert not scratch.path("score.txt").is_symlink()
        assert scratch.root.parent == ran / PIPE / ".nb2pipe" / "scratch"
        where = scratch.root
    assert not where.exists(), "the scratch is removed"
    assert workspace_state(ran) == before, "the workspace, nb2pipe.lock and runs.db are as they were"
    assert (ran / "score.txt").read_text() == "3" and (ran / "raw.txt").read_text() == "c b a"
    assert [r["id"] for r in api.history(PIPE)] == [r["id"] for r in history]
    cache = OutputCache(ran / PIPE / ".nb2pipe")
    assert all(cache.has(digest) for digest in outs["score"].values())
    target = ran / "elsewhere.txt"
    cache.restore(target, outs["score"]["score.txt"])
    assert target.read_text() == "30"


def test_a_scratch_of_a_changed_notebook_runs_the_new_code_and_writes_nothing_real(ran):
    notebook = json.loads((ran / NB).read_text())
    notebook["cells"][2]["source"] = notebook["cells"][2]["source"].replace("len(rows) * factor", "len(rows) * factor + 100")
    (ran / NB).write_text(json.dumps(notebook))
    before = workspace_state(ran)
    with api.scratch_workspace(NB) as scratch:
        report = scratch.run()
        assert report.ok, report.errors
        assert report.outcomes == {"prepare": "restored", "score": "ran"}
        assert scratch.path("score.txt").read_text() == "103"
    assert workspace_state(ran) == before, "the pipeline folder is not re-exported"


def test_a_failing_scratch_run_is_removed_and_changes_nothing(ran):
    before = workspace_state(ran)
    with api.scratch_workspace(PIPE) as scratch:
        report = scratch.run(params={"factor": None}, force=True)
        assert not report.ok and report.outcomes["score"] == "failed"
        assert report.errors["score"].ename == "TypeError"
        where = scratch.root
    assert not where.exists() and workspace_state(ran) == before


def test_a_dep_folder_holding_an_out_is_linked_entry_by_entry(tmp_path, monkeypatch):
    """Nothing a stage writes may go through a link into the real workspace."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "raw.txt").write_text("raw")
    write_nb(
        tmp_path / NB,
        code("import os\nfound = sorted(os.listdir('data'))\nopen('data/clean.txt', 'w').write(open('data/raw.txt').read() + str(found))",
             "stage:clean", "in:data", "out:data/clean.txt"),
    )
    api.export_if_needed(Path(NB))
    with api.scratch_workspace(PIPE) as scratch:
        report = scratch.run()
        assert report.ok, report.errors
        assert not scratch.path("data").is_symlink() and scratch.path("data/raw.txt").is_symlink()
        assert scratch.path("data/clean.txt").read_text() == "raw['raw.txt']"
    assert sorted(os.listdir(tmp_path / "data")) == ["raw.txt"], "nothing was written through a link"


def test_a_dep_outside_the_working_folder_cannot_be_linked(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (tmp_path / "shared.txt").write_text("s")
    monkeypatch.chdir(project.parent)
    write_nb(project / NB, code("open('out.txt', 'w').write(open('../shared.txt').read())", "stage:a", "in:../shared.txt", "out:out.txt"))
    api.export_if_needed(project / NB)
    outside = r"dep '\.\./shared\.txt' lies outside the working folder .*; move it into the project"
    with pytest.raises(SpecError, match=outside), api.scratch_workspace(project / PIPE):
        pass
    assert not list((project / PIPE / ".nb2pipe" / "scratch").iterdir()), "the scratch is removed"
