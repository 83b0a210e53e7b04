"""Latencies a user feels, measured here instead of asserted by the tests (a loaded 2-core CI
machine must not fail a test for being slow; the tests prove the behaviour, this file the speed).

1. inference of 1,000 code cells (`infer.analyze_cell`, in process)        target < 0.5 s
2. a second `nb2pipe run` while one holds the pipeline: the whole process,
   from start to its "already running" error                               target < 4 s
3. Ctrl-C on a terminal (SIGINT to the process group) while a stage sleeps:
   from the signal to the runner's exit (local executor)                   target < 30 s
4. the same with `--executor dask` (a LocalCluster of 2 workers), when
   dask[distributed] is installed                                          target < 30 s

Each number is the median of --repeat measurements (default 3), in one fresh temporary folder.
Run from the checkout with the virtualenv nb2pipe is installed in:

    .venv-ci/bin/python benchmarks/bench_latency.py          # about a minute; 4. needs .venv-exports
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from textwrap import dedent

TARGETS = {"infer": 0.5, "refused": 4.0, "ctrl-c local": 30.0, "ctrl-c dask": 30.0}


def notebook(*cells: tuple[str, list[str]]) -> dict:
    return {
        "cells": [
            {"cell_type": "code", "execution_count": None, "metadata": {"tags": tags}, "outputs": [], "source": src} for src, tags in cells
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def infer_thousand_cells() -> float:
    from nb2pipe.infer import analyze_cell

    analyze_cell("%time x = 1")  # import IPython outside the measurement
    cells = [
        dedent(
            f"""\
            df{i} = pd.read_csv('data_{i}.csv')
            df{i}['total'] = df{i}.a + df{i}.b * factor
            model.fit(df{i}[cols], y)
            scores = [s for s in model.predict(df{i}) if s > {i}]
            print(len(scores), np.mean(scores))
            """
        )
        for i in range(1000)
    ]
    cells[::50] = ["%matplotlib inline\nimport numpy as np\n!ls data\n" for _ in cells[::50]]
    start = time.perf_counter()
    for cell in cells:
        analyze_cell(cell)
    return time.perf_counter() - start


def start_run(folder: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nb2pipe", "run", "sleepy.ipynb", *args],
        cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def wait_for_file(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise SystemExit(f"the run ended before {path.name} appeared:\n{proc.stderr.read()}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{path.name} did not appear within {timeout:.0f} s")
        time.sleep(0.05)


def sleepy_folder(base: Path, name: str) -> Path:
    folder = base / name
    folder.mkdir()
    stage = "open('started', 'w').close()\ntime.sleep(3600)\nopen('done.txt', 'w').write('done')\n"
    (folder / "sleepy.ipynb").write_text(json.dumps(notebook(("import time", ["setup"]), (stage, ["stage:sleepy", "out:done.txt"]))))
    return folder


def second_run_refused(base: Path, i: int) -> float:
    folder = sleepy_folder(base, f"refused-{i}")
    holder = start_run(folder)
    try:
        wait_for_file(folder / "started", holder)
        start = time.perf_counter()
        second = subprocess.run([sys.executable, "-m", "nb2pipe", "run", "sleepy.ipynb"], cwd=folder, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if "already running" not in second.stderr:
            raise SystemExit(f"the second run was not refused:\n{second.stderr}")
        return elapsed
    finally:
        os.killpg(holder.pid, signal.SIGINT)
        holder.wait(timeout=300)


def ctrl_c(base: Path, i: int, executor: str) -> float:
    folder = sleepy_folder(base, f"ctrl-c-{executor}-{i}")
    proc = start_run(folder, "--executor", executor)
    try:
        wait_for_file(folder / "started", proc)
        start = time.perf_counter()
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
        proc.wait(timeout=600)
        elapsed = time.perf_counter() - start
        if proc.returncode != 130:
            raise SystemExit(f"the interrupted {executor} run exited {proc.returncode}:\n{proc.stderr.read()}")
        return elapsed
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="measurements of each (median; default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    args = parser.parse_args()
    try:
        import distributed  # noqa: F401
        has_dask = True
    except ImportError:
        has_dask = False

    base = Path(tempfile.mkdtemp(prefix="nb2pipe-bench-latency-"))
    measured: dict[str, list[float]] = {name: [] for name in TARGETS}
    try:
        for i in range(args.repeat):
            measured["infer"].append(infer_thousand_cells())
            measured["refused"].append(second_run_refused(base, i))
            measured["ctrl-c local"].append(ctrl_c(base, i, "local"))
            if has_dask:
                measured["ctrl-c dask"].append(ctrl_c(base, i, "dask"))
    finally:
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)

    print(
        f"python {platform.python_version()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} "
        f"(at the end), median of {args.repeat}\n"
    )
    print("| what | median s | all runs | target | met? |")
    print("|---|---|---|---|---|")
    for name, target in TARGETS.items():
        times = measured[name]
        if not times:
            print(f"| {name} | n/a | dask[distributed] is not installed here | < {target:g} s | n/a |")
            continue
        median = statistics.median(times)
        print(f"| {name} | {median:.2f} | {', '.join(f'{t:.2f}' for t in times)} | < {target:g} s | {'yes' if median < target else 'no'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
