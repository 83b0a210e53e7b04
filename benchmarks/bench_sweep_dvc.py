"""The DVC side of bench_sweep.py: the same sweep as a DVC experiment queue, run through nb2pipe's own export.

1. A fresh temporary project holding only bench.ipynb; `nb2pipe sweep bench.ipynb -p alpha=... -p depth=...
   --export dvc --jobs N` writes dvc.yaml and dvc/bench-sweep.sh (nothing runs).
2. git init, dvc init, commit (DVC queues the committed workspace).
3. The clock starts; the script runs (`dvc repro` of the shared `load`, one `dvc exp run --queue -S ...` per trial,
   `dvc queue start -j N`, which returns at once; its output goes to a file, since the workers inherit it);
   `dvc queue status` is followed until nothing is queued or running, or the time-out passes (reported, never
   hidden). The clock stops.
4. `dvc exp show --json` gives the trials that finished with the metric `score`, `dvc queue status` the failed
   ones; the rest are lost (never reported).

The stage commands are `python -m nb2pipe.run.single ...` in DVC's workers: `python` is this benchmark's
interpreter (its folder first on PATH: papermill, ipykernel and the `python3` kernelspec), and PYTHONPATH starts
with the checkout of the nb2pipe under test, as the exports tests do. `dvc` itself may live in another virtualenv:
a folder holding only a `dvc` link to it goes first on PATH, so the script finds it and nothing else changes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nb2pipe
from nb2pipe.run.pidlock import pid_alive

PARAMS_FILE = "pipelines/bench/params.yaml"
SCRIPT = "dvc/bench-sweep.sh"
POLL_SECONDS = 2.0
LINK_DIR = ".bench-bin"  # git-ignored: the `dvc` link and the script's output


@dataclass(frozen=True)
class DvcFigures:
    trials: int
    with_metrics: int
    failed: int
    lost: int
    wall: float
    queueing: float  # of the wall: the script (`dvc repro` of the shared stages, queueing, `dvc queue start`)
    timed_out: bool


def find_dvc(given: str | None) -> str | None:
    """The dvc executable: --dvc PATH, else `dvc` on PATH, else a `dvc` next to this Python."""
    if given:
        return given
    beside = Path(sys.executable).parent / "dvc"
    return shutil.which("dvc") or (str(beside) if os.access(beside, os.X_OK) else None)


def dvc_env(dvc: str, link_dir: Path) -> dict[str, str]:
    """The environment of the DVC side: `dvc` (a link) first on PATH, then this Python's folder; the tree under
    test first on PYTHONPATH; no analytics, git without the user's configuration."""
    link_dir.mkdir(parents=True, exist_ok=True)
    (link_dir / "dvc").symlink_to(Path(dvc).resolve())
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(link_dir), str(Path(sys.executable).parent), env.get("PATH", "")])
    checkout = str(Path(nb2pipe.__file__).resolve().parent.parent)  # the tree under test, as this Python imports it
    env["PYTHONPATH"] = os.pathsep.join(p for p in [checkout, env.get("PYTHONPATH", "")] if p)
    env.update(
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="nb2pipe-bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
        GIT_COMMITTER_NAME="nb2pipe-bench", GIT_COMMITTER_EMAIL="bench@example.invalid",
        GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1",
    )  # fmt: skip
    return env


def _run(argv: list[str], root: Path, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def prepare_project(root: Path, notebook: dict[str, Any], alphas: list[float], depths: list[int], jobs: int, env: dict[str, str]) -> None:
    """bench.ipynb exported as a DVC sweep, in a git + DVC repository with everything committed."""
    (root / "bench.ipynb").write_text(json.dumps(notebook))
    _run([sys.executable, "-m", "nb2pipe", "sweep", "bench.ipynb", "-p", "alpha=" + ",".join(map(str, alphas)),
          "-p", "depth=" + ",".join(map(str, depths)), "--export", "dvc", "--jobs", str(jobs)], root, env)  # fmt: skip
    for argv in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
        _run(argv, root, env)


def queue_status(root: Path, env: dict[str, str]) -> str:
    return _run(["dvc", "queue", "status"], root, env)


def _run_script(root: Path, env: dict[str, str], timeout: float) -> None:
    """The sweep script, its output into a file: the queue's workers inherit it, and a pipe would keep the
    script's call waiting until they exit (the whole queue's run)."""
    log_path = root / LINK_DIR / "sweep-script.log"
    with log_path.open("w") as log:
        done = subprocess.run(["sh", SCRIPT], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              timeout=timeout)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"sh {SCRIPT} exited with {done.returncode}:\n{log_path.read_text()[-3000:]}")


def run_queue(root: Path, env: dict[str, str], timeout: float) -> tuple[float, float, bool, str]:
    """Run the sweep script and follow the queue until it is empty: (wall seconds, seconds of the script,
    timed out, last status)."""
    started = time.perf_counter()
    deadline = started + timeout
    try:
        _run_script(root, env, timeout)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - started, timeout, True, queue_status(root, env)
    queueing = time.perf_counter() - started
    while True:
        status = queue_status(root, env)
        if not re.search(r"\b(Queued|Running)\b", status):
            return time.perf_counter() - started, queueing, False, status
        if time.perf_counter() > deadline:
            return time.perf_counter() - started, queueing, True, status
        time.sleep(POLL_SECONDS)


def trials_with_score(root: Path, env: dict[str, str]) -> set[tuple[float, int]]:
    """The (alpha, depth) of every experiment `dvc exp show` reports with the metric `score`."""
    shown = json.loads(_run(["dvc", "exp", "show", "--json"], root, env))
    found = set()
    for commit in shown:
        for experiment in commit.get("experiments") or []:
            for revision in experiment.get("revs") or []:
                data = revision.get("data") or {}
                params = ((data.get("params") or {}).get(PARAMS_FILE) or {}).get("data") or {}
                scores = [m["data"]["score"] for m in (data.get("metrics") or {}).values() if "score" in (m.get("data") or {})]
                if scores and "alpha" in params and "depth" in params:
                    found.add((params["alpha"], params["depth"]))
    return found


def wait_for_workers(root: Path, timeout: float = 120) -> None:
    """Wait until the queue's workers (their pid files under .dvc/tmp/exps/celery) have exited: one still
    closing down writes its files again into a folder removed under it."""
    deadline = time.perf_counter() + timeout
    for pid_file in (root / ".dvc/tmp/exps/celery").glob("*.pid"):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        while time.perf_counter() < deadline and pid_alive(pid):
            time.sleep(0.5)


def dvc_side(
    dvc: str, notebook: dict[str, Any], alphas: list[float], depths: list[int], jobs: int, timeout: float, keep: bool
) -> DvcFigures:
    """The sweep as a DVC experiment queue in its own temporary project; the queue's workers are stopped after."""
    root = Path(tempfile.mkdtemp(prefix="nb2pipe-bench-sweep-dvc-"))
    env = dvc_env(dvc, root / LINK_DIR)
    (root / ".gitignore").write_text(f"{LINK_DIR}/\n")
    try:
        prepare_project(root, notebook, alphas, depths, jobs, env)
        wall, queueing, timed_out, status = run_queue(root, env, timeout)
        trials = {(a, d) for a in alphas for d in depths}
        with_metrics = len(trials & trials_with_score(root, env))
        failed = len(re.findall(r"\bFailed\b", status))
        lost = max(len(trials) - with_metrics - failed, 0)
        return DvcFigures(len(trials), with_metrics, failed, lost, wall, queueing, timed_out)
    finally:
        subprocess.run(["dvc", "queue", "stop", "--kill"], cwd=root, env=env, capture_output=True, stdin=subprocess.DEVNULL)
        wait_for_workers(root)
        if keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


def print_dvc_line(figures: DvcFigures, sweep_wall: float, timeout: float) -> None:
    n = figures.trials
    timed_out = f" (timed out after {timeout:.0f} s: the queue was still running)" if figures.timed_out else ""
    print(f"  DVC queue: {figures.with_metrics}/{n} trials with metrics, {figures.failed} failed, {figures.lost} lost; "
          f"wall {figures.wall:.1f} s ({figures.queueing:.1f} s of it queueing){timed_out}; "
          f"sweep / DVC = {sweep_wall / figures.wall:.2f}x; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
