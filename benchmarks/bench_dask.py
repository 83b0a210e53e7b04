"""Wall time of a run on the dask executor (a LocalCluster of 2 workers) next to the local one.

Four independent stages that each `time.sleep(2)`, forced to run:
    dask executor, LocalCluster of 2 single-threaded workers    vs    local executor, --jobs 1
target <= 0.65x. Every number is the wall time of one whole `nb2pipe run --force` process
(interpreter start-up, imports, cluster start and shut-down included):
`--executor dask --jobs 2` vs `--jobs 1`. Median of --repeat runs (default 3) after one warm-up
of each side, the two sides measured alternately, in one fresh temporary folder. Also prints,
once, where the time of one dask run goes (from its events.jsonl).

Needs dask[distributed] in the virtualenv nb2pipe is installed in:

    python3 -m venv /work/venv-dask && /work/venv-dask/bin/pip install -e '.[examples,test]' 'dask[distributed]'
    /work/venv-dask/bin/python benchmarks/bench_dask.py            # ~1.5 minutes
    options: --repeat N, --workers N (default 2), --stages N (4), --sleep S (2), --keep (leave the temp folder)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES, SLEEP_S, TARGET = 4, 2, 0.65  # --stages and --sleep change the first two
BIN = Path(sys.executable).parent



def write_notebook(path: Path) -> None:
    def cell(source: str, tags: list[str]) -> dict:
        return {"cell_type": "code", "execution_count": None, "metadata": {"tags": tags}, "outputs": [], "source": source}

    cells = [cell("import time", ["setup"])]
    for i in range(1, STAGES + 1):
        cells.append(
            cell(f"time.sleep({SLEEP_S})\nwith open('s{i}.txt', 'w') as f:\n    f.write('done\\n')", [f"stage:s{i}", f"out:s{i}.txt"])
        )
    notebook = {
        "cells": cells,
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 4,
    }
    path.write_text(json.dumps(notebook, indent=1) + "\n", encoding="utf-8")


def run(folder: Path, pipeline: Path, executor: str, jobs: int) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DASK_SCHEDULER_ADDRESS")}
    start = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "nb2pipe"), "run", "--force", "--executor", executor, "--jobs", str(jobs), str(pipeline)],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or f"{STAGES} ran" not in proc.stdout:
        raise SystemExit(f"the {executor} run failed (exit {proc.returncode}):\n{proc.stdout}")
    return elapsed


def timeline(pipeline: Path) -> str:
    """Where the time of the newest run went, from its events.jsonl (relative to run_started)."""
    runs = sorted((p for p in (pipeline / "runs").iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    events = [json.loads(line) for line in (runs[-1] / "events.jsonl").read_text().splitlines()]
    t0 = events[0]["time"]
    starts = [e["time"] - t0 for e in events if e["event"] == "stage_started"]
    ends = [e["time"] - t0 for e in events if e["event"] == "stage_finished"]
    done = next(e["time"] - t0 for e in events if e["event"] == "run_finished")
    return (
        f"first stage started {min(starts):.2f} s after run_started (the executor, its cluster included, is made after it), "
        f"last stage finished {max(ends):.2f} s, run_finished (executor closed) {done:.2f} s"
    )


def main() -> int:
    global STAGES, SLEEP_S
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per side (median; default 3)")
    parser.add_argument("--workers", type=int, default=2, help="dask workers (default 2)")
    parser.add_argument("--stages", type=int, default=STAGES, help=f"independent stages (default {STAGES})")
    parser.add_argument("--sleep", type=float, default=SLEEP_S, help=f"seconds each stage sleeps (default {SLEEP_S})")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    args = parser.parse_args()
    STAGES, SLEEP_S = args.stages, args.sleep
    try:
        import distributed
    except ImportError:
        raise SystemExit(f"dask[distributed] is not installed in {sys.prefix}; see this file's docstring") from None

    folder = Path(tempfile.mkdtemp(prefix="nb2pipe-bench-dask-"))
    try:
        write_notebook(folder / "sleepers.ipynb")
        subprocess.run([str(BIN / "nb2pipe"), "export", "sleepers.ipynb"], cwd=folder, check=True, capture_output=True)
        pipeline = folder / "pipelines" / "sleepers"
        dask_side = lambda: run(folder, pipeline, "dask", args.workers)  # noqa: E731
        local_side = lambda: run(folder, pipeline, "local", 1)  # noqa: E731
        dask_side(), local_side()  # warm-up
        dask_times, local_times = [], []
        for i in range(args.repeat):
            order = [(dask_times, dask_side), (local_times, local_side)]
            for times, side in order if i % 2 == 0 else order[::-1]:
                times.append(side())
        dask_run = run(folder, pipeline, "dask", args.workers)
        where = timeline(pipeline)
    finally:
        if args.keep:
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)

    mine, other = statistics.median(dask_times), statistics.median(local_times)
    ratio = mine / other
    print(
        f"python {platform.python_version()}, distributed {distributed.__version__}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f} (at the end), median of {args.repeat}\n"
    )
    print("| scenario | dask s | local s | ratio | target | met? |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {STAGES} independent `sleep({SLEEP_S})` stages: `--executor dask` (LocalCluster, {args.workers} workers) "
        f"vs local `--jobs 1` | {mine:.2f} | {other:.2f} | {ratio:.2f}x | <= {TARGET}x | {'yes' if ratio <= TARGET else 'no'} |"
    )
    print(f"\nall dask runs: {', '.join(f'{t:.2f}' for t in dask_times)}; all local runs: {', '.join(f'{t:.2f}' for t in local_times)}")
    print(f"one more dask run ({dask_run:.2f} s): {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
