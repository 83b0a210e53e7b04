"""`nb2pipe explain`, whole process: a generated notebook of 500 code cells in 25 stages that hand
variables to each other, and the largest notebook of the shared corpus. Target: under 1 s each.

Run: /work/venv/bin/python benchmarks/bench_explain.py   (median of 5 runs each)
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def generated(stages: int = 25, cells_per_stage: int = 20) -> dict:
    rng = random.Random(7)
    cells = [
        {"cell_type": "code", "metadata": {"tags": ["setup"]}, "source": "import math\nimport json", "outputs": [], "execution_count": None}
    ]
    names: list[str] = []
    for s in range(stages):
        for c in range(cells_per_stage):
            tags = [f"stage:s{s:02d}"] if c == 0 else []
            used = rng.sample(names, k=min(2, len(names)))
            new = f"v{s}_{c}"
            body = [f"{new} = [{', '.join(used) or '1'}]", f"{new}.append(math.sqrt(len({new})))"]
            if used and rng.random() < 0.2:
                body.append(f"{used[0]}.append(0)  # mutation")
            cells.append(
                {"cell_type": "code", "metadata": {"tags": tags}, "source": "\n".join(body), "outputs": [], "execution_count": None}
            )
            names.append(new)
    return {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="nb2pipe-bench-explain-"))
    notebook = folder / "gen.ipynb"
    notebook.write_text(json.dumps(generated()))
    targets = [("generated, 500 cells in 25 stages", notebook)]
    if CORPUS.is_dir():
        largest = max(CORPUS.glob("*.ipynb"), key=lambda p: p.stat().st_size)
        cells = len(json.loads(largest.read_text())["cells"])
        targets.append((f"largest corpus notebook ({largest.stat().st_size // 1024} KB, {cells} cells)", largest))
    print("| notebook | median s | target | met? |\n|---|---:|---|---|")
    for label, path in targets:
        argv = [sys.executable, "-m", "nb2pipe", "explain", str(path)]
        timed(argv)  # warm the file cache
        median = statistics.median(timed(argv) for _ in range(5))
        print(f"| {label} | {median:.3f} | < 1 s | {'yes' if median < 1 else 'NO'} |")


if __name__ == "__main__":
    main()
