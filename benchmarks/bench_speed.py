"""Issue 13's goals: a pipeline no slower than its notebook, measured as whole processes.

Rows (each the median of --repeat runs per side, the two sides interleaved after one warm-up
each, as benchmarks/bench_run.py does; ratio = nb2pipe / other):

E  the three examples, `nb2pipe run NOTEBOOK.ipynb --force` (its export check included; the
   diamond with `--jobs 2`) vs `papermill NOTEBOOK.ipynb out.ipynb`, in a copy of
   example_notebooks/                                      goals <= 1.15x, 1.2x, 1.2x
B  10 trivial stages in a chain, `nb2pipe run --force` vs 10 `papermill` calls     goal <= 0.15x
S  `nb2pipe run PIPELINE --force --events jsonl`: process start -> the first `stage_started`
   event (its `time` field) vs the whole of `python -c "import yaml"`             goal <= 3x
   (median of --repeat-startup, default 11: a 0.1-s process swings with the machine's load more
   than a whole run does)

After the table, for the E rows: the CPU seconds of one run of each side (the process and the
kernels it waited for), which bound the wall time from below on this many cores.

Measured elsewhere: the 1 GiB hand-off (benchmarks/bench_handoff.py) and the Dask row
(benchmarks/bench_dask.py).

The nb2pipe measured is the tree this file sits in (put first on PYTHONPATH of every child), so a
worktree can be measured against the installed one. Run from the checkout, with the virtualenv
papermill is installed in:

    /work/main/.venv-ci/bin/python benchmarks/bench_speed.py              # all rows, median of 3
    /work/main/.venv-ci/bin/python benchmarks/bench_speed.py --rows S --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_run
from bench_run import BIN, ENV, Row, bench_env, interleaved, run

TREE = Path(__file__).resolve().parents[1]
EXAMPLES = (  # notebook, extra run arguments, goal
    ("wine_quality.ipynb", (), 1.15),
    ("diabetes_kale.ipynb", ("--jobs", "2"), 1.2),
    ("breast_cancer_untagged.ipynb", (), 1.2),
)
TARGET_TEN_STAGES, TARGET_FIRST_STAGE = 0.15, 3.0


def nb2pipe(*args: str) -> list[str]:
    return [str(BIN / "python"), "-m", "nb2pipe", *args]


def papermill(notebook: str, out: str) -> list[str]:
    return [str(BIN / "papermill"), notebook, out]


# --- E: the examples against papermill ------------------------------------------------------


def rows_examples(root: Path, repeat: int) -> list[Row]:
    folder = root / "examples"
    shutil.copytree(TREE / "example_notebooks", folder, ignore=shutil.ignore_patterns("pipelines", "data", "models", "reports"))
    rows = []
    for notebook, extra, goal in EXAMPLES:
        print(f"E: {notebook}: nb2pipe run --force {' '.join(extra)} vs papermill ...", file=sys.stderr)
        mine, other = interleaved(
            lambda n=notebook, e=extra: run(nb2pipe("run", n, "--force", *e), folder),
            lambda n=notebook: run(papermill(n, str(root / f"out-{n}")), folder),
            repeat,
        )
        rows.append((f"E {notebook}, `run --force{''.join(' ' + a for a in extra)}` (vs `papermill`)", mine, other, goal))
        CPU[notebook] = (cpu_seconds(nb2pipe("run", notebook, "--force", *extra), folder),
                         cpu_seconds(papermill(notebook, str(root / f"out-{notebook}")), folder))
    return rows


CPU: dict[str, tuple[float, float]] = {}  # notebook -> CPU seconds of (nb2pipe, papermill), one run each


def cpu_seconds(argv: list[str], cwd: Path) -> float:
    """User + system CPU seconds of one run of `argv` and every process it waited for (its kernels)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run(argv, cwd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def print_cpu() -> None:
    """Where the examples' time goes: a wall time cannot be below CPU seconds / cores."""
    if not CPU:
        return
    cores = os.cpu_count() or 1
    print(f"\nCPU seconds (user + system, the process and its kernels; one run each) and the least wall time they allow on {cores} cores:")
    print("| notebook | nb2pipe CPU s | papermill CPU s | ratio | nb2pipe CPU s / cores |")
    print("|---|---:|---:|---:|---:|")
    for notebook, (mine, other) in CPU.items():
        print(f"| {notebook} | {mine:.2f} | {other:.2f} | {mine / other:.2f}x | {mine / cores:.2f} |")


# --- B: ten trivial stages against ten papermill calls ---------------------------------------


def rows_ten_stages(root: Path, repeat: int) -> list[Row]:
    (name, mine, other, _), *_ = bench_run.scenario_b(root, repeat)
    return [(name, mine, other, TARGET_TEN_STAGES)]


# --- S: start-up to the first stage ----------------------------------------------------------


def first_stage_after(argv: list[str], cwd: Path) -> float:
    """Seconds from starting `argv` to the `time` of its first `stage_started` event."""
    started = time.time()
    proc = subprocess.run(argv, cwd=cwd, env=ENV, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"`{' '.join(argv)}` failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    for line in proc.stdout.splitlines():
        event = json.loads(line)
        if event.get("event") == "stage_started":
            return float(event["time"]) - started
    raise SystemExit(f"`{' '.join(argv)}` printed no stage_started event:\n{proc.stdout}")


def rows_first_stage(root: Path, repeat: int) -> list[Row]:
    folder = root / "startup"
    folder.mkdir()
    shutil.copy(TREE / "example_notebooks" / "wine_quality.ipynb", folder)
    run(nb2pipe("export", "wine_quality.ipynb"), folder)
    pipeline = str(folder / "pipelines" / "wine_quality")
    print("S: process start -> first stage_started vs python -c 'import yaml' ...", file=sys.stderr)
    mine, other = interleaved(
        # the `nb2pipe` command users type (a console script), not `python -m nb2pipe`
        lambda: first_stage_after([str(BIN / "nb2pipe"), "run", pipeline, "--force", "--events", "jsonl"], folder),
        lambda: run([str(BIN / "python"), "-c", "import yaml"], folder),
        repeat,
    )
    name = "S `run PIPELINE --force`: process start -> first `stage_started` (vs `python -c 'import yaml'`)"
    return [(name, mine, other, TARGET_FIRST_STAGE)]


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per side (median; default 3)")
    parser.add_argument("--rows", default="EBS", help="which rows to measure, e.g. S or EB (default EBS)")
    parser.add_argument(
        "--repeat-startup", type=int, default=11,
        help="measured runs per side for the S row (median; default 11): 0.1-s processes swing more than whole runs",
    )  # fmt: skip
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(TREE / "nb2pipe")], check=True)
    root = Path(tempfile.mkdtemp(prefix="nb2pipe-bench-speed-"))
    ENV.update(bench_env(root))
    ENV["PYTHONPATH"] = str(TREE)  # measure this tree, also in the stage kernels
    load_before, started = bench_run.load_average(), time.perf_counter()
    rows: list[Row] = []
    try:
        wanted = args.rows.upper()
        if "E" in wanted:
            rows += rows_examples(root, args.repeat)
        if "B" in wanted:
            rows += rows_ten_stages(root, args.repeat)
        if "S" in wanted:
            rows += rows_first_stage(root, max(args.repeat, args.repeat_startup))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"nb2pipe {bench_run.nb2pipe_tree()} at {TREE}; Python {platform.python_version()}, {os.cpu_count()} cores; "
        f"load average {load_before} before, {bench_run.load_average()} after; median of {args.repeat} "
        f"(S: of {max(args.repeat, args.repeat_startup)}; whole processes, interleaved); total {time.perf_counter() - started:.0f} s\n"
    )
    print("| scenario | nb2pipe s | other s | ratio | goal | met? |")
    print("|---|---:|---:|---:|---:|---|")
    for row in rows:
        print(bench_run.table_row(row))
    print(f"\ngoals met: {sum(mine / other <= goal for _, mine, other, goal in rows)} of {len(rows)}")
    print_cpu()
    return 0


if __name__ == "__main__":
    sys.exit(main())
