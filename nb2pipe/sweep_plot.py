"""`--plot METRIC` of `nb2pipe sweep` and `nb2pipe runs --sweep`: a PNG of a metric against each
swept parameter.

1. The trials are the sweep's runs (as `runs --json` gives them). A trial that did not finish ok,
   or has no such metric, is left out and counted in the title.
2. One subplot per swept parameter: numeric values (not booleans) on a numeric x axis, anything
   else as categories in the order the trials first show them.
3. matplotlib is optional and imported only here, with the Agg backend (no display needed);
   without it, one line says how to install it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nb2pipe.errors import SpecError
from nb2pipe.vocabulary import RunStatus

PLOTS_DIR = "runs"  # in the pipeline folder, git-ignored there as the executed notebooks are


@dataclass(frozen=True)
class Series:
    """The points of one subplot: x values (numbers, or category labels) and the metric."""

    parameter: str
    numeric: bool
    xs: list[Any]
    ys: list[float]


def default_plot_path(pipeline_folder: Path, sweep_id: str, metric: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in metric)
    name = sweep_id if sweep_id.startswith("sweep-") else f"sweep-{sweep_id}"
    return pipeline_folder / PLOTS_DIR / f"{name}-{safe}.png"


def require_matplotlib() -> None:
    """matplotlib is there (checked before a sweep runs, so a missing one costs no trials)."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise SpecError("--plot needs matplotlib, which is not installed; pip install matplotlib")


def check_metric(runs: Sequence[dict[str, Any]], metric: str, sweep_id: str) -> None:
    """An unknown metric is one line naming the metrics the trials have."""
    known = {name for run in runs for name in run.get("metrics") or {}}
    if metric not in known:
        shown = sorted(name for name in known if "." not in name) or sorted(known)  # as the trials' table: not `stage.name`
        have = ", ".join(shown) if shown else "none (no trial recorded a metric)"
        raise SpecError(f"sweep {sweep_id} has no metric '{metric}'; its metrics: {have}; plot one of them with --plot NAME")


def plotted(runs: Sequence[dict[str, Any]], metric: str) -> tuple[list[dict[str, Any]], int]:
    """The trials that finished ok with a numeric `metric`, and how many others were left out."""
    kept = [
        run for run in runs
        if run.get("status") == RunStatus.OK and _is_number((run.get("metrics") or {}).get(metric))
    ]  # fmt: skip
    return kept, len(runs) - len(kept)


def series(runs: Sequence[dict[str, Any]], parameter: str, metric: str) -> Series:
    """The metric against one parameter over `runs` (all plotted)."""
    values = [(run.get("params") or {}).get(parameter) for run in runs]
    ys = [float(run["metrics"][metric]) for run in runs]
    numbers = [float(value) for value in values if isinstance(value, (int, float)) and not isinstance(value, bool)]
    if len(numbers) == len(values):
        pairs = sorted(zip(numbers, ys, strict=True))
        return Series(parameter, True, [x for x, _ in pairs], [y for _, y in pairs])
    return Series(parameter, False, [_label(value) for value in values], ys)


def write_plot(
    runs: Sequence[dict[str, Any]], swept: Sequence[str], metric: str, sweep_id: str, path: Path
) -> Path:
    """Draw the metric against each swept parameter into the PNG `path`; the path written."""
    check_metric(runs, metric, sweep_id)
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    kept, left_out = plotted(runs, metric)
    parameters = list(swept) or sorted({name for run in runs for name in run.get("trial") or {}})
    figure, axes = pyplot.subplots(1, max(1, len(parameters)), figsize=(4.5 * max(1, len(parameters)), 4), squeeze=False)
    try:
        for axis, parameter in zip(axes[0], parameters, strict=False):
            _draw(axis, series(kept, parameter, metric) if kept else Series(parameter, True, [], []), metric)
        title = f"{sweep_id}: {metric} ({len(kept)} trials"
        figure.suptitle(title + (f"; {left_out} failed or without it, left out)" if left_out else ")"))
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png", dpi=100)
    finally:
        pyplot.close(figure)
    return path


def _draw(axis: Any, points: Series, metric: str) -> None:
    if points.numeric:
        axis.plot(points.xs, points.ys, "o")
    else:
        labels = list(dict.fromkeys(points.xs))
        axis.plot([labels.index(x) for x in points.xs], points.ys, "o")
        axis.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    axis.set_xlabel(points.parameter)
    axis.set_ylabel(metric)
    axis.grid(True, alpha=0.3)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _label(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
