"""Hand a big DataFrame and a big array from one stage to the next, against the raw bytes.

A two-stage notebook: `make` builds a float64 array and a DataFrame of float64 columns of
--size each (default 1 GiB), `use` reads both. The hand-off is timed from the executed
notebooks' own cell times (papermill's `start_time`/`end_time`): from the start of `make`'s
generated save cell to the end of `use`'s generated load cell, so it holds the save, hashing the
saved files, storing them in the output cache, starting `use` and the load. It is set against
writing the same bytes to files and reading them back into memory in one process
(`ndarray.tofile` + `numpy.fromfile`), the least any hand-off through files can cost. Both
sides start after `sync`, so neither waits for the other's data to reach the disk.
Goal: <= 1.5x. One line per run; the median of --repeat runs is compared.

    /work/main/.venv-ci/bin/python benchmarks/bench_handoff.py              # 1 GiB, median of 3
    /work/main/.venv-ci/bin/python benchmarks/bench_handoff.py --size 256M --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_run import BIN, bench_env, human_size, parse_size

TARGET = 1.5
COLUMNS = 8

MAKE = """import numpy as np
import pandas as pd
rng = np.random.default_rng(0)
array = rng.random({n})
frame = pd.DataFrame({{f"c{{i}}": rng.random({n} // {columns}) for i in range({columns})}})"""
USE = """print(float(array[:1000].sum()), frame.shape, float(frame["c0"].iloc[:1000].sum()))"""


def notebook(size: int) -> dict:
    n = size // 8
    cells = [
        ("## make", "markdown"),
        (MAKE.format(n=n, columns=COLUMNS), "code"),
        ("## use", "markdown"),
        (USE, "code"),
    ]
    return {
        "cells": [
            {"cell_type": kind, "metadata": {}, "source": text, **({"outputs": [], "execution_count": None} if kind == "code" else {})}
            for text, kind in cells
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _times(cell: dict) -> tuple[float, float]:
    meta = cell["metadata"]["papermill"]
    return tuple(datetime.fromisoformat(meta[key].replace("Z", "+00:00")).timestamp() for key in ("start_time", "end_time"))  # type: ignore[return-value]


def _generated(executed: Path, word: str) -> dict:
    """The cell nb2pipe generated to `word` (save/load) variables."""
    cells = json.loads(executed.read_text())["cells"]
    return next(c for c in cells if c["metadata"].get("title", "").startswith(f"nb2pipe: {word} variables"))


def handoff_seconds(folder: Path) -> float:
    env = bench_env()
    subprocess.run([str(BIN / "python"), "-m", "nb2pipe", "run", "handoff.ipynb", "--force", "--jobs", "1"],
                   cwd=folder, env=env, check=True, stdout=subprocess.DEVNULL)
    runs = folder / "pipelines" / "handoff" / "runs"
    run = max(runs.iterdir(), key=lambda p: p.stat().st_mtime)
    save_start, _ = _times(_generated(run / "make.ipynb", "save"))
    _, load_end = _times(_generated(run / "use.ipynb", "load"))
    return load_end - save_start


def raw_seconds(folder: Path, size: int) -> float:
    code = f"""
import numpy as np, time, os
rng = np.random.default_rng(0)
array = rng.random({size // 8}); columns = [rng.random({size // 8 // COLUMNS}) for _ in range({COLUMNS})]
t = time.perf_counter()
array.tofile("array.raw")
for i, c in enumerate(columns): c.tofile(f"c{{i}}.raw")
a = np.fromfile("array.raw"); cs = [np.fromfile(f"c{{i}}.raw") for i in range({COLUMNS})]
print(time.perf_counter() - t)
for name in ["array.raw"] + [f"c{{i}}.raw" for i in range({COLUMNS})]: os.remove(name)
"""
    out = subprocess.run([str(BIN / "python"), "-c", code.replace("COLUMNS", str(COLUMNS))], cwd=folder,
                         check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"), help="size of the array and of the DataFrame (default 1G)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (median; default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nb2pipe-bench-handoff-") as tmp:
        folder = Path(tmp)
        (folder / "handoff.ipynb").write_text(json.dumps(notebook(args.size)))
        ours, raw = [], []
        for i in range(args.repeat):  # each side starts with nothing left to write back (os.sync)
            os.sync()
            ours.append(handoff_seconds(folder))
            os.sync()
            raw.append(raw_seconds(folder, args.size))
            print(f"run {i + 1}: hand-off {ours[-1]:.2f} s, raw bytes {raw[-1]:.2f} s", file=sys.stderr)
    ratio = statistics.median(ours) / statistics.median(raw)
    verdict = "met" if ratio <= TARGET else "NOT met"
    print(f"hand a {human_size(args.size)} DataFrame and a {human_size(args.size)} array to the next stage: "
          f"{statistics.median(ours):.2f} s vs raw bytes {statistics.median(raw):.2f} s = {ratio:.2f}x "
          f"(goal <= {TARGET}x: {verdict}; {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}); "
          f"best of each: {min(ours):.2f} s vs {min(raw):.2f} s = {min(ours) / min(raw):.2f}x")


if __name__ == "__main__":
    main()
