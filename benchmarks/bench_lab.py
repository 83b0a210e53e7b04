"""The pipeline graph at 1,000 stages, in a real JupyterLab and Chromium (the browser tests'
machinery, tests/ui/conftest.py): how long a user waits, measured here instead of asserted by
the tests.

1. first paint: from a click on the sidebar's Graph button to all 1,000 stage nodes drawn
   (in their provisional layered layout while elkjs works in its web worker) target < 1 s
   final layout: from the same click to elk's layout drawn (`data-layout="final"`), and the
   longest frame the page took meanwhile (how interactive it stayed)          reported
   and the same once the graph was closed (the layout is remembered)        target < 1 s
2. failed-only filter: from the click on the checkbox to the next frame     target < 0.1 s
3. a state change: from the server's answer that queues every stage (Run all)
   to the nodes showing it (the run is then cancelled); the graph must not be
   laid out again (`data-layouts` stays 1)                                  target < 0.1 s

The pipeline: 1,000 stages exported by `nb2pipe export` from a generated notebook (100 chains
of 10 stages from one root, each stage loading the variable of the one before; every tenth
stage, from the third chain on, also loads one of the chain before). Each figure is the median
of --repeat graphs opened afresh (default 3).

    PYTHONPATH=. .venv-ci/bin/python benchmarks/bench_lab.py     # about two minutes
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "ui"), str(REPO / "tests")]

from conftest import CHROMIUM, CHROMIUM_ARGS, running_lab  # noqa: E402  (tests/ui: the browser tests' lab)

STAGES = 1000
TARGETS = {"first paint": 1.0, "final layout": None, "longest frame": None, "reopened": 1.0, "failed-only filter": 0.1, "state change": 0.1}
NODE = ".jp-nb2pipe-graph-node"


def write_notebook(path: Path, stages: int = STAGES) -> None:
    def code(source: str, *tags: str) -> dict:
        return {"cell_type": "code", "execution_count": None, "metadata": {"tags": list(tags)}, "outputs": [], "source": source}

    cells = [code("n = 1", "parameters"), code("x0000 = n", "stage:s0000")]
    for i in range(1, stages):
        parent = 0 if i % 10 == 1 else i - 1
        source = f"x{i:04d} = x{parent:04d} + 1" + (f" + x{i - 10:04d}" if i % 10 == 5 and i >= 20 else "")
        cells.append(code(source, f"stage:s{i:04d}"))
    kernel = {"display_name": "Python 3", "language": "python", "name": "python3"}
    path.write_text(json.dumps({"cells": cells, "metadata": {"kernelspec": kernel}, "nbformat": 4, "nbformat_minor": 5}))


def export(notebook: Path) -> float:
    from nb2pipe.export import export_notebook

    t = time.perf_counter()
    export_notebook(notebook)
    return time.perf_counter() - t


FIRST_PAINT = """async ([selector, count]) => {
  const t0 = performance.now();
  document.querySelector('#jp-nb2pipe-sidebar button.jp-nb2pipe-show-graph').click();
  while (document.querySelectorAll(selector + '[data-state]').length < count) {
    await new Promise(requestAnimationFrame);
  }
  await new Promise(requestAnimationFrame);
  const paint = (performance.now() - t0) / 1000;
  let last = performance.now(), longest = 0;
  while (document.querySelector('.jp-nb2pipe-graph')?.dataset.layout !== 'final') {
    await new Promise(requestAnimationFrame);
    longest = Math.max(longest, performance.now() - last);
    last = performance.now();
  }
  await new Promise(requestAnimationFrame);
  return [paint, (performance.now() - t0) / 1000, longest / 1000];
}"""

FILTER = """async () => {
  const t0 = performance.now();
  document.querySelector('.jp-nb2pipe-graph input.jp-nb2pipe-graph-failed-only').click();
  await new Promise(requestAnimationFrame);
  return (performance.now() - t0) / 1000;
}"""

WATCH_STATES = """() => {
  window.nb2pipeBench = {batch: 0, at: 0};
  new MutationObserver(records => {
    if (records.length > window.nb2pipeBench.batch) {
      window.nb2pipeBench = {batch: records.length, at: performance.now()};
    }
  }).observe(document.querySelector('.jp-nb2pipe-graph-canvas'), {attributes: true, subtree: true, attributeFilter: ['data-state']});
  performance.clearResourceTimings();
}"""

STATE_CHANGE = """() => {
  const at = window.nb2pipeBench.at;
  const answers = performance.getEntriesByType('resource')
    .filter(e => e.name.includes('/nb2pipe/') && e.responseEnd <= at);
  return (at - answers[answers.length - 1].responseEnd) / 1000;
}"""


def one_graph(page, lab) -> dict[str, float]:
    """Open the notebook afresh, then the graph; time its first paint, the filter, a state change."""
    page.goto(lab.page_url("lab/tree/big.ipynb") + "&reset")
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=180_000)
    page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="jp-nb2pipe-sidebar"]').click()
    page.wait_for_function("n => document.querySelectorAll('#jp-nb2pipe-sidebar .jp-nb2pipe-stage').length === n", arg=STAGES,
                           timeout=180_000)
    paint, final, longest = page.evaluate(FIRST_PAINT, [NODE, STAGES])
    figures = {"first paint": paint, "final layout": final, "longest frame": longest}
    assert page.locator(NODE).count() == STAGES
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Pipeline: big").locator(".lm-TabBar-tabCloseIcon").click()
    page.locator(".jp-nb2pipe-graph").wait_for(state="detached")
    figures["reopened"] = page.evaluate(FIRST_PAINT, [NODE, STAGES])[1]
    figures["failed-only filter"] = page.evaluate(FILTER)
    page.evaluate(FILTER)  # off again
    # a state change: Run all queues every stage (the job's answer), then Cancel
    page.evaluate(WATCH_STATES)
    page.locator("#jp-nb2pipe-sidebar button.jp-nb2pipe-run-all").click()
    page.wait_for_function("n => window.nb2pipeBench.batch >= n", arg=STAGES - 1, timeout=180_000)
    figures["state change"] = page.evaluate(STATE_CHANGE)
    # (clicked in the page: the sidebar redraws its buttons with each progress answer)
    page.evaluate("() => document.querySelector('#jp-nb2pipe-sidebar button.jp-nb2pipe-cancel').click()")
    page.wait_for_function("() => document.querySelector('#jp-nb2pipe-sidebar .jp-nb2pipe-progress')?.dataset.status === 'cancelled'",
                           timeout=180_000)
    layouts = page.locator(".jp-nb2pipe-graph").get_attribute("data-layouts")
    assert layouts == "1", f"a state change laid the graph out again ({layouts} layouts)"
    print("  " + ", ".join(f"{name} {value:.3f} s" for name, value in figures.items()), flush=True)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, running_lab(Path(tmp)) as lab, sync_playwright() as p:
        notebook = lab.root / "big.ipynb"
        write_notebook(notebook)
        print(f"export of {STAGES} stages: {export(notebook):.1f} s (nb2pipe export, in process)")
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
            page.set_default_timeout(180_000)
            runs = [one_graph(page, lab) for _ in range(args.repeat)]
        finally:
            browser.close()
    print(f"pipeline graph, {STAGES} stages, median of {args.repeat} (Chromium, JupyterLab)")
    print_medians(runs, TARGETS)
    return 0


def print_medians(runs: list[dict[str, float]], targets: dict[str, float | None]) -> None:
    """Each figure's median over `runs` against its target (None: reported only), and the load."""
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"load average {load} on {os.cpu_count()} cores (other work on the machine slows every figure)")
    width = max(map(len, targets))
    for name, target in targets.items():
        values = [run[name] for run in runs]
        median = statistics.median(values)
        goal = "(reported)        " if target is None else f"goal < {target} s   {'met' if median < target else 'NOT met'}"
        print(f"  {name:<{width}} {median:7.3f} s   {goal}   (each: {', '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    sys.exit(main())
