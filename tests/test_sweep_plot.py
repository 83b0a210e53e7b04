"""`--plot METRIC` of `nb2pipe sweep` and `nb2pipe runs --sweep`: a PNG of the metric against
each swept parameter, the failed trials left out; an unknown metric or a missing matplotlib is
one line saying what to do."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nb2pipe.errors import SpecError
from nb2pipe.sweep_plot import plotted, series, write_plot
from test_sweep import PIPE, project

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"'{path}' is not a PNG: {data[:16]!r}"
    assert len(data) > 5000, f"'{path}' holds only {len(data)} bytes"


@pytest.mark.slow
def test_sweep_and_runs_plot_a_metric_and_name_the_metrics_when_asked_for_another(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    project(tmp_path)  # depth 5 fails in train

    status, out, err = cli("sweep", "nb.ipynb", "-p", "alpha=0.1,0.2", "-p", "depth=3,5", "--jobs", "2", "--plot", "score")
    assert status == 1, out + err  # the depth 5 trials failed
    written = [line.removeprefix("wrote ") for line in out.splitlines() if line.startswith("wrote ")]
    assert len(written) == 1 and Path(written[0]).name.startswith("sweep-") and written[0].endswith("-score.png"), out
    assert Path(written[0]).parent == Path(PIPE) / "runs"
    assert_png(Path(written[0]))

    status, out, err = cli("runs", PIPE, "--sweep", "latest", "--plot", "score", "--plot-file", "plots/score.png")
    assert status == 0, err
    assert "wrote plots/score.png" in out
    assert_png(tmp_path / "plots" / "score.png")

    status, out, err = cli("runs", PIPE, "--sweep", "latest", "--plot", "accuracy")
    assert status == 2, out + err
    assert err.strip().count("\n") == 0 and "no metric 'accuracy'" in err and "its metrics: score" in err, err
    assert not list((tmp_path / PIPE / "runs").glob("*accuracy*"))


def test_without_matplotlib_plot_is_one_line_saying_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    trials = [{"status": "ok", "params": {"alpha": 0.1}, "trial": {"alpha": 0.1}, "metrics": {"score": 1.0}}]
    with pytest.raises(SpecError, match=r"^--plot needs matplotlib, which is not installed; pip install matplotlib$"):
        write_plot(trials, ["alpha"], "score", "s1", tmp_path / "p.png")
    assert not (tmp_path / "p.png").exists()


def test_numbers_go_on_a_numeric_axis_other_values_are_categories_and_failed_trials_are_left_out():
    runs = [
        {"status": "ok", "params": {"alpha": 0.2, "kind": "tree"}, "metrics": {"score": 2.0}},
        {"status": "ok", "params": {"alpha": 0.1, "kind": "linear"}, "metrics": {"score": 1.0}},
        {"status": "failed", "params": {"alpha": 0.3, "kind": "tree"}, "metrics": {}},
        {"status": "ok", "params": {"alpha": 0.3, "kind": "tree"}, "metrics": {"loss": 1.0}},
    ]
    kept, left_out = plotted(runs, "score")
    assert left_out == 2
    numeric = series(kept, "alpha", "score")
    assert (numeric.numeric, numeric.xs, numeric.ys) == (True, [0.1, 0.2], [1.0, 2.0])
    categories = series(kept, "kind", "score")
    assert (categories.numeric, categories.xs, categories.ys) == (False, ["tree", "linear"], [2.0, 1.0])
