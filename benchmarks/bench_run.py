"""Wall time of `nb2pipe status` / `nb2pipe run` next to DVC and papermill, on the same data.

Every number is the wall time of one whole process (interpreter start-up and imports included),
the median of --repeat runs (default 5). The two sides of a row are measured alternately (nb2pipe
first on even repetitions, the other tool first on odd ones), each side is warmed up once first,
and everything runs in one fresh temporary folder.

A. 20 chained stages (s01 -> s02 -> ... -> s20, tiny text files) plus a stage `big` reading a
   --big-size file of random bytes (default 2 GiB, made once and kept at /tmp/nb2pipe-bench-big.bin;
   other sizes get their own /tmp file). nb2pipe: a generated notebook of 21 `stage:` cells tagged
   with in:/out:, exported and run once. DVC: a dvc.yaml of the same 21 stages as
   `cmd: python stage_<name>.py` with the same deps and outs (DVC is not told about the scripts,
   nb2pipe does hash its stage code), in a `git init` + `dvc init` folder, `dvc repro` once.
   Both folders are then committed to git (the big file and the outs ignored), as a real
   project would be: `nb2pipe run` asks git for the commit and dirty flag of every run.
   The big file is hard-linked into both folders (copied if it cannot be), so it sits in the page
   cache for both tools; hashing speed from a cold disk is benchmarks/bench_hashing.py's job.
     A1 `nb2pipe status` vs `dvc status`, nothing changed                    target <= 0.2x
     A2 the same right after `touch big.bin` (before every measured call:
        mtime changed, content not, so both must re-hash 2 GiB)               target <= 0.3x
     A3 no-op `nb2pipe run` vs no-op `dvc repro`                              target <= 0.25x
B. 10 chained trivial notebook stages (each prints and writes a tiny file the next reads):
   `nb2pipe run --force` vs ten sequential `papermill stage_NN.ipynb out/stage_NN.ipynb` calls on
   notebooks with the same setup and stage cells                            target <= 0.5x
C. 4 independent stages that each `time.sleep(2)`: `nb2pipe run --force --jobs 2` vs
   `--jobs 1`                                                               target <= 0.6x

Prints a markdown table: scenario, nb2pipe s, other s, ratio (nb2pipe / other), target, met?,
under a line naming the versions, the nb2pipe commit measured and the load average; the samples
of every row go to stderr. The A rows are skipped, with a message, when the dvc binary is missing.
Child processes get DVC_NO_ANALYTICS=1, this virtualenv first on PATH (`python` in dvc.yaml), and
bytecode caches in the temp folder (PYTHONPYCACHEPREFIX; PYTHONDONTWRITEBYTECODE is dropped, since
without .pyc files an editable nb2pipe recompiles its modules on every start, ~0.1 s, while the
pip-installed DVC does not). A run that fails only because a kernel did not start (the known
port race, "Address already in use", on a busy machine) is retried and noted; only the
successful attempt is timed.
On a shared machine the times swing with the load: compare the ratios, and rerun when it is quiet.

Set-up (DVC lives in its own virtualenv, so it cannot disturb nb2pipe's dependencies):

    python3 -m venv /work/venv-bench && /work/venv-bench/bin/pip install dvc

Run from the checkout with the virtualenv nb2pipe is installed in (takes ~5 minutes):

    /work/venv/bin/python benchmarks/bench_run.py                    # full: 2 GiB file
    /work/venv/bin/python benchmarks/bench_run.py --big-size 64M --repeat 3   # quick
    options: --dvc PATH (default /work/venv-bench/bin/dvc), --scenarios A|B|C|AB... (default ABC),
             --keep (leave the temp folder)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

GiB = 1 << 30
DEFAULT_BIG_SIZE = 2 * GiB
DEFAULT_BIG_PATH = Path("/tmp/nb2pipe-bench-big.bin")
DEFAULT_DVC = "/work/venv-bench/bin/dvc"
WRITE_BLOCK = 64 << 20
RACY_WINDOW_S = 2.0  # nb2pipe.hashing.RACY_WINDOW_NS: files younger than this are not stat-cached

CHAIN_STAGES, PAPERMILL_STAGES, SLEEP_STAGES, SLEEP_S = 20, 10, 4, 2
TARGET_STATUS, TARGET_STATUS_TOUCHED, TARGET_NOOP_RUN, TARGET_PAPERMILL, TARGET_JOBS = 0.2, 0.3, 0.25, 0.5, 0.6

BIN = Path(sys.executable).parent  # the virtualenv nb2pipe (and papermill) is installed in


# --- helpers ---------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    """'2G', '512M', '64K' (binary units) or a number of bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"bad size '{text}'; write e.g. 2G, 256M or 1048576")
    number, unit = float(match.group(1)), match.group(2).upper()
    return int(number * (1 << (10 * " KMGT".index(unit or " "))))


def human_size(size: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            return f"{size / (1 << shift):g} {unit}"
    return f"{size} B"


def big_file(size: int) -> Path:
    """The random file of `size` bytes in /tmp, created once and reused by later runs."""
    path = DEFAULT_BIG_PATH if size == DEFAULT_BIG_SIZE else DEFAULT_BIG_PATH.with_name(f"nb2pipe-bench-big-{size}.bin")
    if path.is_file() and path.stat().st_size == size:
        print(f"reusing {path} ({human_size(size)})", file=sys.stderr)
        return path
    print(f"creating {path} ({human_size(size)} of random bytes) ...", file=sys.stderr)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as handle:
        for offset in range(0, size, WRITE_BLOCK):
            handle.write(os.urandom(min(WRITE_BLOCK, size - offset)))
    os.replace(partial, path)
    return path


def link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def touch(path: Path) -> None:
    os.utime(path, None)


def wait_out_racy_window(path: Path) -> None:
    """Sleep until `path` is old enough for nb2pipe's stat cache to keep its hash."""
    age = time.time() - path.stat().st_mtime
    if age < RACY_WINDOW_S + 0.1:
        time.sleep(RACY_WINDOW_S + 0.1 - age)


def bench_env(root: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["DVC_NO_ANALYTICS"] = "1"
    # Bytecode caches as in any normal installation: without them every process of an editable
    # install recompiles its modules (~0.1 s), while pip-installed DVC has .pyc files. The prefix
    # keeps them out of the checkout; the warm-up run of each side fills it.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if root is not None:
        env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # `python` in dvc.yaml is this Python
    env.pop("PYTHONPATH", None)
    return env


ENV = bench_env()


# A kernel that loses the race for its TCP ports (jupyter_client picks free ports, then the kernel
# binds them) dies at start-up; on a busy machine this hits papermill and nb2pipe alike (nb2pipe's
# pool kernels have their stderr discarded, so there it shows only as "didn't respond").
KERNEL_PORT_RACE = re.compile(r"Address already in use|Kernel died before replying to kernel_info|Kernel didn't respond in \d+ seconds")
PORT_RACE_RETRIES = 2


def run(argv: list[str], cwd: Path, check: Callable[[str], str | None] | None = None) -> float:
    """Run one process; return its wall time. Fails loudly on a non-zero exit or a failed check.

    A run that failed only because a kernel lost the port race is retried (and only the successful
    attempt is timed), with a note on stderr.
    """
    for attempt in range(PORT_RACE_RETRIES + 1):
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        elapsed = time.perf_counter() - start
        if proc.returncode == 0 or not KERNEL_PORT_RACE.search(proc.stdout) or attempt == PORT_RACE_RETRIES:
            break
        print(f"note: `{' '.join(map(str, argv))}` failed: a kernel did not start (port race?); retrying", file=sys.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"`{' '.join(map(str, argv))}` in {cwd} failed (exit {proc.returncode}):\n{proc.stdout}")
    problem = check(proc.stdout) if check else None
    if problem:
        raise SystemExit(f"`{' '.join(map(str, argv))}` in {cwd}: {problem}:\n{proc.stdout}")
    return elapsed


def interleaved(ours: Callable[[], float], theirs: Callable[[], float], repeat: int) -> tuple[float, float]:
    """Median wall times of `ours` and `theirs`, run alternately after one warm-up each."""
    ours(), theirs()
    mine, other = [], []
    for i in range(repeat):
        if i % 2 == 0:
            mine.append(ours())
            other.append(theirs())
        else:
            other.append(theirs())
            mine.append(ours())
    print(f"  nb2pipe {' '.join(f'{t:.3f}' for t in mine)} | other {' '.join(f'{t:.3f}' for t in other)}", file=sys.stderr)
    return statistics.median(mine), statistics.median(other)


def code_cell(source: str, tags: list[str]) -> dict:
    return {"cell_type": "code", "execution_count": None, "metadata": {"tags": tags}, "outputs": [], "source": source}


def write_notebook(path: Path, cells: list[dict]) -> None:
    notebook = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 4,
    }
    path.write_text(json.dumps(notebook, indent=1) + "\n", encoding="utf-8")


def git_commit_all(folder: Path, ignored: list[str]) -> None:
    """`git init` (if needed) and commit everything but `ignored`, as a user's project would be."""
    with open(folder / ".gitignore", "a", encoding="utf-8") as handle:
        handle.write("".join(f"{pattern}\n" for pattern in ignored))
    if not (folder / ".git").exists():
        run(["git", "init", "-q"], folder)
    run(["git", "add", "-A"], folder)
    run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-q", "-m", "bench"], folder)


def nb2pipe(*args: str) -> list[str]:
    return [str(BIN / "nb2pipe"), *args]


def export(folder: Path, notebook: str) -> Path:
    run(nb2pipe("export", notebook), folder)
    return folder / "pipelines" / Path(notebook).stem


def no_stage_ran(output: str) -> str | None:
    match = re.search(r"(\d+) ran,", output)
    if not match or match.group(1) != "0":
        return "expected a no-op run"
    return None


def all_up_to_date(output: str) -> str | None:
    return "expected every stage up to date" if re.search(r"stale|never-run|failed", output) else None


def dvc_up_to_date(output: str) -> str | None:
    return None if "up to date" in output else "expected dvc to report everything up to date"


def dvc_noop(output: str) -> str | None:
    return "expected dvc repro to run nothing" if "Running stage" in output else None


Row = tuple[str, float, float, float]  # scenario, nb2pipe s, other s, target ratio


# --- A: status and no-op run against DVC ----------------------------------------------------

SETUP_CODE = "import os"


def chain_stages() -> list[tuple[str, str, list[str], list[str]]]:
    """(name, code, deps, outs) of the 20 chained stages and the big-file stage."""
    stages = []
    for i in range(1, CHAIN_STAGES + 1):
        out = f"chain/s{i:02d}.txt"
        if i == 1:
            code = f"os.makedirs('chain', exist_ok=True)\nwith open({out!r}, 'w') as f:\n    f.write('1\\n')"
            deps = []
        else:
            dep = f"chain/s{i - 1:02d}.txt"
            code = f"with open({dep!r}) as f:\n    value = int(f.read())\nwith open({out!r}, 'w') as f:\n    f.write(f'{{value + 1}}\\n')"
            deps = [dep]
        stages.append((f"s{i:02d}", code, deps, [out]))
    big_code = (
        "size = 0\nwith open('big.bin', 'rb') as f:\n    while chunk := f.read(1 << 24):\n        size += len(chunk)\n"
        "with open('big_size.txt', 'w') as f:\n    f.write(f'{size}\\n')"
    )
    stages.append(("big", big_code, ["big.bin"], ["big_size.txt"]))
    return stages


def setup_a_nb2pipe(root: Path, big: Path) -> Path:
    folder = root / "a_nb2pipe"
    folder.mkdir()
    link_or_copy(big, folder / "big.bin")
    cells = [code_cell(SETUP_CODE, ["setup"])]
    for name, code, deps, outs in chain_stages():
        cells.append(code_cell(code, [f"stage:{name}", *(f"in:{d}" for d in deps), *(f"out:{o}" for o in outs)]))
    write_notebook(folder / "chain.ipynb", cells)
    pipeline = export(folder, "chain.ipynb")
    print("A: first nb2pipe run (21 stages) ...", file=sys.stderr)
    run(nb2pipe("run", str(pipeline)), folder)
    git_commit_all(folder, ["big.bin", ".nb2pipe/", "chain/", "big_size.txt"])
    return pipeline


def setup_a_dvc(root: Path, big: Path, dvc: str) -> Path:
    folder = root / "a_dvc"
    folder.mkdir()
    link_or_copy(big, folder / "big.bin")
    lines = ["stages:"]
    for name, code, deps, outs in chain_stages():
        (folder / f"stage_{name}.py").write_text(f"{SETUP_CODE}\n\n{code}\n", encoding="utf-8")
        lines += [f"  {name}:", f"    cmd: python stage_{name}.py"]
        if deps:
            lines.append(f"    deps: [{', '.join(deps)}]")
        lines.append(f"    outs: [{', '.join(outs)}]")
    (folder / "dvc.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run(["git", "init", "-q"], folder)
    run([dvc, "init", "-q"], folder)
    print("A: first dvc repro (21 stages) ...", file=sys.stderr)
    run([dvc, "repro"], folder)
    git_commit_all(folder, ["big.bin"])  # dvc repro has already listed the outs in .gitignore
    return folder


def scenario_a(root: Path, big_size: int, dvc: str, repeat: int) -> list[Row]:
    big = big_file(big_size)
    pipeline = setup_a_nb2pipe(root, big)
    dvc_dir = setup_a_dvc(root, big, dvc)
    nb_dir = root / "a_nb2pipe"
    wait_out_racy_window(nb_dir / "big.bin")
    for out in (nb_dir / "chain").iterdir():
        wait_out_racy_window(out)
    rows: list[Row] = []

    status = lambda: run(nb2pipe("status", str(pipeline)), nb_dir, all_up_to_date)  # noqa: E731
    dvc_status = lambda: run([dvc, "status"], dvc_dir, dvc_up_to_date)  # noqa: E731
    print("A1: status, nothing changed ...", file=sys.stderr)
    mine, other = interleaved(status, dvc_status, repeat)
    rows.append(("A1 `status`, nothing changed (vs `dvc status`)", mine, other, TARGET_STATUS))

    print(f"A2: status after touch big.bin ({human_size(big_size)}) ...", file=sys.stderr)

    def touched(measure: Callable[[], float], path: Path) -> Callable[[], float]:
        return lambda: (touch(path), measure())[1]

    mine, other = interleaved(touched(status, nb_dir / "big.bin"), touched(dvc_status, dvc_dir / "big.bin"), repeat)
    rows.append((f"A2 `status` after `touch big.bin` ({human_size(big_size)}) (vs `dvc status`)", mine, other, TARGET_STATUS_TOUCHED))

    print("A3: no-op run ...", file=sys.stderr)
    wait_out_racy_window(nb_dir / "big.bin")
    noop_run = lambda: run(nb2pipe("run", str(pipeline)), nb_dir, no_stage_ran)  # noqa: E731
    noop_repro = lambda: run([dvc, "repro"], dvc_dir, dvc_noop)  # noqa: E731
    mine, other = interleaved(noop_run, noop_repro, repeat)
    rows.append(("A3 no-op `run` (vs no-op `dvc repro`)", mine, other, TARGET_NOOP_RUN))
    return rows


# --- B: a chain of notebooks against papermill ----------------------------------------------


def papermill_stage_code(i: int) -> str:
    out = f"b{i:02d}.txt"
    if i == 1:
        return f"print('stage 1')\nwith open({out!r}, 'w') as f:\n    f.write('1\\n')"
    dep = f"b{i - 1:02d}.txt"
    return (
        f"with open({dep!r}) as f:\n    value = int(f.read())\nprint('stage {i}:', value)\n"
        f"with open({out!r}, 'w') as f:\n    f.write(f'{{value + 1}}\\n')"
    )


def scenario_b(root: Path, repeat: int) -> list[Row]:
    nb_dir, pm_dir = root / "b_nb2pipe", root / "b_papermill"
    nb_dir.mkdir()
    (pm_dir / "out").mkdir(parents=True)
    cells = [code_cell(SETUP_CODE, ["setup"])]
    for i in range(1, PAPERMILL_STAGES + 1):
        deps = [f"in:b{i - 1:02d}.txt"] if i > 1 else []
        cells.append(code_cell(papermill_stage_code(i), [f"stage:b{i:02d}", *deps, f"out:b{i:02d}.txt"]))
        write_notebook(pm_dir / f"stage_{i:02d}.ipynb", [code_cell(SETUP_CODE, []), code_cell(papermill_stage_code(i), [])])
    write_notebook(nb_dir / "chain10.ipynb", cells)
    pipeline = export(nb_dir, "chain10.ipynb")
    papermill = str(BIN / "papermill")

    def ten_papermills() -> float:
        return sum(
            run([papermill, f"stage_{i:02d}.ipynb", f"out/stage_{i:02d}.ipynb"], pm_dir)
            for i in range(1, PAPERMILL_STAGES + 1)
        )

    print(f"B: nb2pipe run --force vs {PAPERMILL_STAGES} papermill calls ...", file=sys.stderr)
    mine, other = interleaved(lambda: run(nb2pipe("run", "--force", str(pipeline)), nb_dir), ten_papermills, repeat)
    return [
        (f"B {PAPERMILL_STAGES}-notebook chain, `run --force` (vs {PAPERMILL_STAGES} `papermill` calls)", mine, other, TARGET_PAPERMILL)
    ]


# --- C: parallel stages ---------------------------------------------------------------------


def scenario_c(root: Path, repeat: int) -> list[Row]:
    folder = root / "c_nb2pipe"
    folder.mkdir()
    cells = [code_cell("import time", ["setup"])]
    for i in range(1, SLEEP_STAGES + 1):
        code = f"time.sleep({SLEEP_S})\nwith open('c{i}.txt', 'w') as f:\n    f.write('done\\n')"
        cells.append(code_cell(code, [f"stage:c{i}", f"out:c{i}.txt"]))
    write_notebook(folder / "sleepers.ipynb", cells)
    pipeline = export(folder, "sleepers.ipynb")
    print(f"C: {SLEEP_STAGES} x sleep({SLEEP_S}), --jobs 2 vs --jobs 1 ...", file=sys.stderr)
    mine, other = interleaved(
        lambda: run(nb2pipe("run", "--force", "--jobs", "2", str(pipeline)), folder),
        lambda: run(nb2pipe("run", "--force", "--jobs", "1", str(pipeline)), folder),
        repeat,
    )
    return [(f"C {SLEEP_STAGES} independent `sleep({SLEEP_S})` stages, `run --force --jobs 2` (vs `--jobs 1`)", mine, other, TARGET_JOBS)]


# --- main ------------------------------------------------------------------------------------


def table_row(row: Row) -> str:
    name, mine, other, target = row
    ratio = mine / other
    return f"| {name} | {mine:.3f} | {other:.3f} | {ratio:.3f}x | <= {target:g}x | {'yes' if ratio <= target else 'NO'} |"


def nb2pipe_tree() -> str:
    """Where the measured nb2pipe comes from: its git commit, and whether the checkout is dirty."""
    try:
        package = subprocess.run([str(BIN / "python"), "-c", "import nb2pipe; print(nb2pipe.__file__)"], env=ENV,
                                 capture_output=True, text=True, check=True).stdout.strip()
        folder = Path(package).parent
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=folder, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "."], cwd=folder, capture_output=True, text=True
        ).stdout.strip()
        return f"{commit}{' + uncommitted changes' if dirty else ''}"
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"


def load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "?"


def version(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, env=ENV, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "?"


def main() -> int:
    # Users' installs carry compiled bytecode (pip compiles at install); this machine sets
    # PYTHONDONTWRITEBYTECODE, so compile nb2pipe once rather than measure the compiler.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(__file__).resolve().parents[1] / "nb2pipe")], check=True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dvc", default=DEFAULT_DVC, help=f"the dvc binary (default {DEFAULT_DVC})")
    parser.add_argument("--big-size", type=parse_size, default=DEFAULT_BIG_SIZE, help="size of scenario A's big file (default 2G)")
    parser.add_argument("--repeat", type=int, default=5, help="measured runs per side (median; default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    parser.add_argument("--scenarios", default="ABC", help="which scenarios to run, e.g. A or BC (default ABC)")
    args = parser.parse_args()
    if not (BIN / "nb2pipe").exists():
        raise SystemExit(f"no nb2pipe next to {sys.executable}; run this with the virtualenv nb2pipe is installed in")

    dvc = shutil.which(args.dvc)
    root = Path(tempfile.mkdtemp(prefix="nb2pipe-bench-run-"))
    ENV.update(bench_env(root))
    rows: list[Row] = []
    started, load_before = time.perf_counter(), load_average()
    if os.cpu_count() and float(load_before if load_before != "?" else 0) > os.cpu_count() / 2:
        print(f"warning: load average {load_before} on {os.cpu_count()} cores; other processes will skew the times", file=sys.stderr)
    try:
        wanted = args.scenarios.upper()
        if "A" in wanted and dvc:
            rows += scenario_a(root, args.big_size, dvc, args.repeat)
        elif "A" in wanted:
            print(
                f"skipping scenario A: no dvc at '{args.dvc}' (python3 -m venv /work/venv-bench && /work/venv-bench/bin/pip install dvc)",
                file=sys.stderr,
            )
        if "B" in wanted:
            rows += scenario_b(root, args.repeat)
        if "C" in wanted:
            rows += scenario_c(root, args.repeat)
        header = (  # before the clean-up: these processes write bytecode under root too
            f"{version(nb2pipe('--version'))} ({nb2pipe_tree()}), {version([str(BIN / 'papermill'), '--version'])}, "
            f"dvc {version([dvc, '--version']) if dvc else 'not found'}; Python {platform.python_version()}, "
            f"{os.cpu_count()} cores, {platform.system()} {platform.release()}; "
            f"load average {load_before} before, {load_average()} after; "
            f"median of {args.repeat} (whole processes, interleaved); total {time.perf_counter() - started:.0f} s\n"
        )
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)

    print(header)
    print("| scenario | nb2pipe s | other s | ratio | target | met? |")
    print("|---|---:|---:|---:|---:|---|")
    for row in rows:
        print(table_row(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
