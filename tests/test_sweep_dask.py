"""`nb2pipe sweep --executor dask`: a grid's trials run on a Dask LocalCluster (real kernels and
papermill on its workers), every trial finishes with its metrics, and the shared stage runs once."""

from __future__ import annotations

import pytest

pytest.importorskip("distributed", reason="dask is an optional extra: pip install 'dask[distributed]'")

from nb2pipe.run.dask_executor import DaskExecutor
from test_sweep import history, project, sweep_runs

pytestmark = [pytest.mark.exports, pytest.mark.slow]


def test_a_grid_on_dask_finishes_every_trial_with_metrics_and_runs_the_shared_stage_once(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    project(tmp_path)
    sent: list[str] = []  # the stages the sweep handed to dask (the real submit runs them)
    submit = DaskExecutor.submit

    def counted(self, job):
        sent.append(job.name)
        return submit(self, job)

    monkeypatch.setattr(DaskExecutor, "submit", counted)

    status, out, err = cli("sweep", "nb.ipynb", "-p", "alpha=0.1,0.2", "-p", "depth=3,4", "--jobs", "2", "--executor", "dask")
    assert status == 0, out + err

    trials = sweep_runs(cli)
    assert sorted((t["trial"]["alpha"], t["trial"]["depth"]) for t in trials) == [(0.1, 3), (0.1, 4), (0.2, 3), (0.2, 4)]
    assert all(t["status"] == "ok" for t in trials), [(t["id"], t["status"], t.get("error")) for t in trials]
    values = {(t["trial"]["alpha"], t["trial"]["depth"]): t for t in trials}
    expected = {(alpha, depth): (sum(range(4)) * alpha + depth) / 2 for alpha, depth in values}  # size 4: data 0..3
    scores = {key: t["metrics"].get("score") for key, t in values.items()}
    assert scores == pytest.approx(expected), scores
    load_ran = [row for row in history(tmp_path) if row["stage"] == "load" and row["outcome"] == "ran"]
    assert len(load_ran) == 1, history(tmp_path)
    assert len({t["id"] for t in trials}) == 4
    assert sorted(sent) == ["evaluate"] * 4 + ["load"] + ["train"] * 4, "every stage that ran went through dask"
