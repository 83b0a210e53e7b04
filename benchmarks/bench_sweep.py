"""`nb2pipe sweep` over --trials trials (default 100) next to the same trials as papermill calls.

The pipeline: `load` (reads `size`, which is not swept: shared), `train` (reads the two swept
parameters `alpha` and `depth`, sleeps --work seconds to stand for training), `evaluate` (a
metrics cell: `score`). The grid is alpha x depth, --trials of it in all.

Prints one line per figure, with its goal:
  trials finished with metrics                      goal: all of them
  times `load` ran in the sweep                     goal: 1
  trials without an executed notebook of their own  goal: 0
  wall time / (sum of the trials' stage times / jobs)   goal <= 1.2x
  the CPU seconds of the sweep and its kernels, and the wall time they allow at best on this
  many cores, as a ratio like the one above: where it is over 1.2x the goal cannot be met here
  papermill: the notebook run once per trial with -p, --jobs calls at once: its wall time, and
  the ratio sweep / papermill
  DVC: the same trials as a DVC experiment queue (`nb2pipe sweep ... --export dvc`: `dvc exp run --queue`
  per trial, `dvc queue start -j JOBS`, in a git + DVC copy of the project; bench_sweep_dvc.py): the trials
  with metrics, failed and lost (never reported), its wall time from the script's start until the queue is
  empty, and the ratio sweep / DVC. dvc is --dvc PATH, else `dvc` on PATH, else a `dvc` next to this Python;
  with none the side is skipped in one line. --no-dvc skips it. Measured with dvc 3.67 on 2 cores (load ~4): 20
  trials, --jobs 2: 20/20 with metrics, 0 lost, DVC 109.6 s (31.6 s of it queueing) against the sweep's 8.6 s;
  100 trials, --jobs 4: 100/100, 0 lost, 290.4 s (96.0 s queueing) against 45.6 s.

    PYTHONPATH=. python benchmarks/bench_sweep.py                  # 100 trials, --jobs 4
    PYTHONPATH=. python benchmarks/bench_sweep.py --trials 20 --jobs 2 --keep
    PYTHONPATH=. python benchmarks/bench_sweep.py --trials 20 --jobs 2 --dvc OTHER_VENV/bin/dvc   # dvc in another venv
    PYTHONPATH=OTHER_CHECKOUT python benchmarks/bench_sweep.py --trials 20 --jobs 2 --no-papermill --no-dvc   # A/B
On a shared machine the times swing with the load: compare the ratios, and rerun when it is quiet.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_sweep_dvc import dvc_side, find_dvc, print_dvc_line

PIPE = "pipelines/bench"


def notebook(work: float) -> dict:
    def cell(source: str, *tags: str) -> dict:
        return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": source, "outputs": [], "execution_count": None}

    return {
        "cells": [
            cell("size = 1000\nalpha = 0.5\ndepth = 3", "parameters"),
            cell("data = list(range(size))", "stage:load"),
            cell(f"import time\ntime.sleep({work})\nmodel = sum(data) * alpha + depth", "stage:train"),
            cell("score = model / 1000", "stage:evaluate", "metrics"),
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def grid_axes(trials: int) -> tuple[list[float], list[int]]:
    """alpha and depth values whose product has exactly `trials` trials (alpha x depth)."""
    depths = max(d for d in range(1, math.isqrt(trials) + 1) if trials % d == 0)
    alphas = trials // depths
    return [round(0.01 * (i + 1), 2) for i in range(alphas)], list(range(1, depths + 1))


def run_sweep(root: Path, alphas: list[float], depths: list[int], jobs: int) -> tuple[float, float]:
    """The sweep's wall time, and the CPU seconds of its process and every process it waited for
    (its kernels, one per stage run)."""
    argv = [sys.executable, "-m", "nb2pipe", "sweep", "bench.ipynb", "-p", "alpha=" + ",".join(map(str, alphas)),
            "-p", "depth=" + ",".join(map(str, depths)), "--jobs", str(jobs)]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=root, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(done.stdout.splitlines()[-1] if done.stdout else done.stderr[-2000:], file=sys.stderr)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def sweep_figures(root: Path, jobs: int) -> dict[str, float]:
    listed = subprocess.run(
        [sys.executable, "-m", "nb2pipe", "runs", PIPE, "--sweep", "latest", "--json"], cwd=root, capture_output=True, text=True, check=True
    )
    trials = json.loads(listed.stdout)
    with_metrics = sum(1 for t in trials if t["status"] == "ok" and "score" in t["metrics"])
    without_notebook = sum(
        1 for t in trials
        if not all(s["notebook"] and (root / PIPE / s["notebook"]).exists() for s in t["stages"] if s["outcome"] == "ran")
        or not any(s["outcome"] == "ran" for s in t["stages"])
    )  # fmt: skip
    db = sqlite3.connect(root / PIPE / ".nb2pipe" / "runs.db")
    load_ran = db.execute("SELECT count(*) FROM stages WHERE stage = 'load' AND outcome = 'ran'").fetchone()[0]
    stage_seconds = sum(s["duration"] or 0 for t in trials for s in t["stages"])
    return {"trials": len(trials), "with_metrics": with_metrics, "load_ran": load_ran, "without_notebook": without_notebook,
            "ideal": stage_seconds / jobs}  # fmt: skip


def papermill_side(root: Path, alphas: list[float], depths: list[int], jobs: int) -> float:
    out = root / "papermill-out"
    out.mkdir()
    calls = [
        [sys.executable, "-m", "papermill", "bench.ipynb", str(out / f"{i}.ipynb"),
         "-p", "alpha", str(a), "-p", "depth", str(d), "--no-progress-bar"]
        for i, (a, d) in enumerate((a, d) for a in alphas for d in depths)
    ]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(lambda argv: subprocess.run(argv, cwd=root, capture_output=True, stdin=subprocess.DEVNULL), calls))
    wall = time.perf_counter() - started
    failed = sum(1 for r in results if r.returncode != 0)
    if failed:
        print(f"papermill: {failed} of {len(calls)} calls failed", file=sys.stderr)
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--work", type=float, default=0.5, help="seconds train sleeps in every trial (default 0.5)")
    parser.add_argument("--keep", action="store_true", help="leave the temp folder")
    parser.add_argument("--no-papermill", action="store_true", help="measure the sweep only (A/B runs of nb2pipe on a busy machine)")
    parser.add_argument("--dvc", metavar="PATH", help="the dvc executable (default: `dvc` on PATH, else next to this Python)")
    parser.add_argument("--no-dvc", action="store_true", help="skip the DVC experiment-queue side")
    parser.add_argument("--dvc-timeout", type=float, default=1800, help="seconds the DVC queue may take in all (default 1800)")
    args = parser.parse_args()
    dvc = None if args.no_dvc else find_dvc(args.dvc)
    if args.dvc and not os.access(args.dvc, os.X_OK):
        parser.error(f"--dvc {args.dvc}: not an executable file; give the path of a dvc executable, or --no-dvc")
    root = Path(tempfile.mkdtemp(prefix="nb2pipe-bench-sweep-"))
    try:
        (root / "bench.ipynb").write_text(json.dumps(notebook(args.work)))
        alphas, depths = grid_axes(args.trials)
        wall, cpu = run_sweep(root, alphas, depths, args.jobs)
        figures = sweep_figures(root, args.jobs)
        paper = None if args.no_papermill else papermill_side(root, alphas, depths, args.jobs)
        n = len(alphas) * len(depths)
        print(f"nb2pipe sweep: {n} trials ({len(alphas)} alpha x {len(depths)} depth), --jobs {args.jobs}, "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
        print(f"  trials finished with metrics           {figures['with_metrics']}/{n}   (goal {n}/{n})")
        print(f"  times load ran                         {figures['load_ran']}   (goal 1)")
        print(f"  trials without an executed notebook    {figures['without_notebook']}   (goal 0)")
        ratio = wall / figures["ideal"] if figures["ideal"] else float("inf")
        print(f"  wall {wall:.1f}s vs stage time / jobs {figures['ideal']:.1f}s: {ratio:.2f}x   (goal <= 1.2x)")
        cores = os.cpu_count() or 1
        floor = cpu / cores / figures["ideal"] if figures["ideal"] else float("inf")
        print(f"  CPU {cpu:.1f}s (the sweep and its kernels, {cpu / n:.2f}s a trial): no less than {cpu / cores:.1f}s of wall "
              f"on {cores} cores = {floor:.2f}x of stage time / jobs")  # fmt: skip
        if paper is not None:
            print(f"  the same trials as {n} papermill calls, {args.jobs} at once: {paper:.1f}s; sweep / papermill {wall / paper:.2f}x")
        if dvc is None and not args.no_dvc:
            print("DVC side: skipped (no dvc executable; pass --dvc PATH)")
        elif dvc is not None:
            try:
                figures_dvc = dvc_side(dvc, notebook(args.work), alphas, depths, args.jobs, args.dvc_timeout, args.keep)
            except RuntimeError as failure:  # a dvc or git command failed: say which, keep the figures above
                print(f"  DVC side: failed: {failure}")
            else:
                print_dvc_line(figures_dvc, wall, args.dvc_timeout)
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
