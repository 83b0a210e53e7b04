"""The plan and the run agree: what `status` and `run --dry-run` call stale is what `run` reruns,
also for a stage that follows another only by `after:` (no data flows, so no file hash can tell
the run that its upstream changed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import code, write_nb
from helpers import set_cell

pytestmark = pytest.mark.slow

PARAMS, CELL_A = 1, 2


def write_project(root: Path) -> Path:
    """a writes a.txt from `alpha`; b comes after a by `after:` only and writes b.txt, reading nothing of a's."""
    return write_nb(
        root / "nb.ipynb",
        code("alpha = 1", "parameters"),
        code("with open('a.txt', 'w') as f:\n    f.write(str(alpha))", "stage:a"),
        code("with open('b.txt', 'w') as f:\n    f.write('b')\nprint('b ran')", "stage:b", "after:a"),
    )


def stale_stages(cli, *argv: str) -> set[str]:
    exit_code, out, err = cli("status", "pipelines/nb", "--json", *argv)
    assert exit_code == 0, err
    return {s["name"] for s in json.loads(out)["stages"] if s["state"] != "up-to-date"}


def ran_stages(cli, *argv: str) -> dict[str, str]:
    exit_code, out, err = cli("run", "nb.ipynb", "--events", "jsonl", *argv)
    assert exit_code == 0, err
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    finished = [e for e in events if e.get("event") == "run_finished"]
    assert finished, out
    return {name: str(outcome) for name, outcome in finished[-1]["outcomes"].items()}


def make_a_stale(root: Path, how: str) -> list[str]:
    """Make stage a stale the way a user would; the extra `run`/`status` arguments it needs."""
    if how == "param":
        return ["-p", "alpha=2"]
    if how == "code":
        set_cell(root / "nb.ipynb", CELL_A, "with open('a.txt', 'w') as f:\n    f.write(str(alpha) + '!')")
        return []
    (root / "a.txt").unlink()  # how == "out deleted"
    return []


@pytest.mark.parametrize("how", ["param", "code", "out deleted"])
def test_an_after_only_dependant_reruns_when_its_upstream_does(tmp_path, monkeypatch, cli, how):
    monkeypatch.chdir(tmp_path)
    write_project(tmp_path)
    assert set(ran_stages(cli).values()) == {"ran"}
    extra = make_a_stale(tmp_path, how)
    if how == "code":
        assert cli("export", "nb.ipynb")[0] == 0

    planned_stale = stale_stages(cli, *extra)
    exit_code, out, err = cli("run", "nb.ipynb", "--dry-run", *extra)
    assert exit_code == 0, err
    would_run = {name for name in ("a", "b") if f"would run {name}" in out + err}
    outcomes = ran_stages(cli, *extra)
    # a stage the plan calls stale runs, or is restored from the run cache when seen before
    ran = {name for name, outcome in outcomes.items() if outcome in ("ran", "restored")}

    assert planned_stale == {"a", "b"}, "status calls the after:-only dependant stale"
    assert would_run == ran == planned_stale, f"dry run {would_run}, run {outcomes}"
    assert stale_stages(cli, *extra) == set(), "after the run, everything is up to date"


def test_an_after_only_dependant_stays_put_when_its_upstream_is_up_to_date(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    write_project(tmp_path)
    ran_stages(cli)
    assert stale_stages(cli) == set()
    assert set(ran_stages(cli).values()) == {"up to date"}


def test_a_data_dependant_still_cuts_off_when_its_upstream_writes_the_same_bytes(tmp_path, monkeypatch, cli):
    """Early cut-off (DESIGN §4) is kept for a stage that reads what its upstream writes, even when
    it also names that upstream in `after:`: the run hashes the file after the upstream ran."""
    monkeypatch.chdir(tmp_path)
    write_nb(
        tmp_path / "nb.ipynb",
        code("with open('a.txt', 'w') as f:\n    f.write('A')", "stage:a", "out:a.txt"),
        code("with open('a.txt') as f:\n    print(f.read())", "stage:b", "in:a.txt", "after:a"),
    )
    ran_stages(cli)
    set_cell(tmp_path / "nb.ipynb", 1, "with open('a.txt', 'w') as f:\n    f.write('A' + '')")
    assert ran_stages(cli) == {"a": "ran", "b": "up to date"}
