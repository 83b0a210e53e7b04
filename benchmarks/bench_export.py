"""Wall time of the `nb2pipe` command on a big notebook, and of `nb2pipe --help`.

Measures, as whole processes (startup and imports included):
1. `nb2pipe export gen.ipynb` on a generated notebook: 20 stages of 50 code cells (1,000 cells)
   plus a setup and a parameters cell and a markdown cell before each stage. The first stage
   defines a helper function that every later stage calls (so its definition is copied into
   each of them). Median of 5 first
   runs (output folder deleted before each) and of 5 reruns (nothing changes).
2. `nb2pipe --help` next to `python -c pass`, alternating 21 times each; medians and their ratio.
Prints a markdown table against the targets: export <= 0.5 s, `--help` <= 6x `python -c pass`.

Run from the checkout, with the virtualenv nb2pipe is installed in:

    /work/venv/bin/python benchmarks/bench_export.py
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES, CELLS_PER_STAGE, RUNS, HELP_RUNS = 20, 50, 5, 21
EXPORT_TARGET_S, HELP_TARGET_RATIO = 0.5, 6.0
PARAMS = {"seed": 42, "n_rows": 1000, "threshold": 0.5, "learning_rate": 0.01, "label": "target"}
SETUP = """import json
import os

import numpy as np
import pandas as pd


def ensure_dir(path):
    os.makedirs(path, exist_ok=True)
    return path"""


def stage_cell(rng: random.Random, stage: int, index: int) -> str:
    """One cell of 3-8 lines that only uses names of its own stage, the setup cell and params."""
    param, col = rng.choice(list(PARAMS)), f"f{stage:02d}_{index:02d}"
    blocks = [  # in execution order; each block binds what it uses
        f"{col} = df[{param!r}].mean() if {param!r} in df else {param}",
        f"df[{col!r}] = np.arange(len(df)) * learning_rate + {rng.randint(1, 99)}",
        f"for i in range({rng.randint(2, 5)}):\n    df[{col!r}] = df[{col!r}] + i * threshold",
        f"def step_{index}(frame):\n    return frame.sample(frac=0.9, random_state=seed)\n"
        f"df = step_{index}(df) if len(df) > n_rows // 10 else df",
        f"summary_{index} = {{'stage': {stage}, 'rows': len(df)}}\nprint(json.dumps(summary_{index}))",
        f"mask_{index} = df[{col!r}] > threshold\ndf = df[mask_{index}]",
    ]
    while True:
        chosen = [b for b in blocks if rng.random() < 0.5]
        if rng.random() < 0.15:
            chosen.append(f'df.to_csv("data/s{stage:02d}_{index:02d}.csv")')
        text = "\n".join(chosen)
        if 3 <= text.count("\n") + 1 <= 8:
            return text


def generate_notebook(seed: int = 0) -> dict:
    rng = random.Random(seed)
    cells = [
        ("markdown", "# Generated benchmark notebook", []),
        ("code", SETUP, ["setup"]),
        ("code", "\n".join(f"{k} = {v!r}" for k, v in PARAMS.items()), ["parameters"]),
    ]
    for s in range(STAGES):
        cells.append(("markdown", f"## Stage {s:02d}\n\nStep {s} of the generated pipeline.", []))
        first = (
            "df = pd.DataFrame({'x': np.arange(n_rows)})\nensure_dir('data')\nprint(len(df))\n\n"
            "def tidy(frame):\n    return frame.dropna().reset_index(drop=True)"
            if s == 0
            else f"df = tidy(pd.read_csv('data/s{s - 1:02d}_final.csv'))\nensure_dir('data')\nprint(df.shape)"
        )
        cells.append(("code", first, [f"stage:s{s:02d}"]))
        cells += [("code", stage_cell(rng, s, i), []) for i in range(1, CELLS_PER_STAGE - 1)]
        cells.append(("code", f"df = df.reset_index(drop=True)\ndf.to_csv('data/s{s:02d}_final.csv')\nprint('done')", []))
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [
            {"id": f"c{n:04d}", "cell_type": kind, "metadata": {"tags": tags} if tags else {},
             "source": source.splitlines(keepends=True),
             **({"outputs": [], "execution_count": None} if kind == "code" else {})}
            for n, (kind, source, tags) in enumerate(cells, start=1)
        ],
    }


def timed(cmd: list[str], cwd: Path, expect: str = "") -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or expect not in done.stdout:
        sys.exit(f"{' '.join(cmd)} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return elapsed


def main() -> None:
    # Users' installs carry compiled bytecode (pip compiles at install); this machine sets
    # PYTHONDONTWRITEBYTECODE, so compile nb2pipe once rather than measure the compiler.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(__file__).resolve().parents[1] / "nb2pipe")], check=True)
    nb2pipe = Path(sys.executable).parent / "nb2pipe"
    if not nb2pipe.exists():
        sys.exit(f"no {nb2pipe}; run with the python of the virtualenv nb2pipe is installed in")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "gen.ipynb").write_text(json.dumps(generate_notebook(), indent=1), encoding="utf-8")
        export, out = [str(nb2pipe), "export", "gen.ipynb"], work / "pipelines" / "gen"
        timed(export, work)  # warm-up: byte-compile nb2pipe and fill the OS caches
        first, rerun = [], []
        for _ in range(RUNS):
            shutil.rmtree(out)
            first.append(timed(export, work, expect="; wrote "))
            rerun.append(timed(export, work, expect="nothing changed"))
        passes, helps = [], []
        for _ in range(HELP_RUNS):
            passes.append(timed([sys.executable, "-c", "pass"], work))
            helps.append(timed([str(nb2pipe), "--help"], work, expect="usage:"))

    code_cells = STAGES * CELLS_PER_STAGE
    export_first, export_rerun = statistics.median(first), statistics.median(rerun)
    t_pass, t_help = statistics.median(passes), statistics.median(helps)
    ratio = t_help / t_pass
    rows = [
        (f"`nb2pipe export`, {code_cells:,} cells, first run", f"{export_first:.3f}",
         f"<= {EXPORT_TARGET_S} s", export_first <= EXPORT_TARGET_S),
        (f"`nb2pipe export`, {code_cells:,} cells, rerun", f"{export_rerun:.3f}",
         f"<= {EXPORT_TARGET_S} s", export_rerun <= EXPORT_TARGET_S),
        ("`python -c pass`", f"{t_pass:.3f}", "", None),
        ("`nb2pipe --help`", f"{t_help:.3f}", "", None),
        ("`--help` / `pass` ratio", f"{ratio:.1f}x", f"<= {HELP_TARGET_RATIO:g}x", ratio <= HELP_TARGET_RATIO),
    ]
    print(f"median of {RUNS} export runs, {HELP_RUNS} alternating --help/pass runs; python {sys.version.split()[0]}\n")
    print("| measurement | median (s) | target | met? |\n|---|---:|---|---|")
    for name, value, target, met in rows:
        print(f"| {name} | {value} | {target} | {'' if met is None else 'yes' if met else 'NO'} |")


if __name__ == "__main__":
    main()
