"""Soak test of "nothing lost": many runs of three pipelines at once, stopped at random moments.

Each round starts a run of each of three pipelines at the same time and, for each, picks one of:
  finish   let it run to the end (it must succeed: anything else is a false failure)
  kill -9  SIGKILL the runner at a random moment (then the next command must recover)
  sigterm  SIGTERM the runner at a random moment (it must exit 130 having put outputs back)
  cancel   start it through a real Jupyter server (POST /nb2pipe/runs) and cancel it
           (DELETE /nb2pipe/runs/{id}) at a random moment (the job must end `cancelled`, or `ok`
           when the cancel came after the run had finished)
Every pipeline has three chained stages writing files and a folder, with a random parameter per
round (so stages rerun), a user's own file at one of its outs before the first run, and stages
that sleep for random short times, so the stops land before, during and between stages.

After each round, and after a `nb2pipe run --dry-run` that recovers what kill -9 left, every
pipeline is checked:
  lock/disk mismatches  a stage with a lock entry whose outs on disk differ from it (status
                        says `out modified` or `out missing`), a leftover journal, or, for a
                        stage never run successfully, the user's file not exactly as it was
At the end: leaked kernels, ipykernel processes that ran in the soak's projects still alive 15 s
after its last run. Goals: 0 false failures, 0 mismatches, 0 leaked kernels.

Run from the checkout with the virtualenv nb2pipe is installed in (about 4-6 minutes):

    .venv-ci/bin/python benchmarks/soak.py [--rounds 20] [--seed 0] [--keep]
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

NB = "nb.ipynb"
PIPE = "pipelines/nb"
USER_FILE = "final.txt"  # the out of the last stage; the user had a file there before any run
USER_TEXT = "the user's own final.txt\n"


def cell(source: str, *tags: str) -> dict:
    return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": source, "outputs": [], "execution_count": None}


def write_project(root: Path) -> None:
    """Three chained stages: prepare -> folder of parts -> final.txt, each napping a little."""
    root.mkdir(parents=True)
    cells = [
        cell("import os, random, time", "setup"),
        cell("seed = 0\nnap = 0.3", "parameters"),
        cell(
            "time.sleep(random.Random(seed).random() * nap)\n"
            "with open('prepared.txt', 'w') as f:\n"
            "    f.write(f'prepared {seed}\\n')\n",
            "stage:prepare", "out:prepared.txt",
        ),
        cell(
            "os.makedirs('parts', exist_ok=True)\n"
            "for i in range(3):\n"
            "    with open(f'parts/p{i}.txt', 'w') as f:\n"
            "        f.write(open('prepared.txt').read() + str(i))\n"
            "    time.sleep(nap / 3)\n",
            "stage:split", "in:prepared.txt", "out:parts",
        ),
        cell(
            "with open('final.txt', 'w') as f:\n"
            "    f.write('half')\n"
            "    f.flush()\n"
            "    time.sleep(nap)\n"
            "    f.write(''.join(sorted(open(f'parts/{n}').read() for n in os.listdir('parts'))))\n",
            "stage:final", "in:parts", "out:final.txt",
        ),
    ]
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (root / NB).write_text(json.dumps(nb, indent=1))
    (root / USER_FILE).write_text(USER_TEXT)


def nb2pipe(root: Path, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nb2pipe", *args], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, **popen)


# --- a real Jupyter server, for Cancel ------------------------------------------------------


class Server:
    def __init__(self, root: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.token = secrets.token_hex(16)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={self.port}", "--ip=127.0.0.1",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
             "--ServerApp.jpserver_extensions=nb2pipe.server=True"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.call("GET", "status?path=x.ipynb")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the Jupyter server did not start") from None
                time.sleep(0.2)

    def call(self, method: str, route: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/nb2pipe/{route}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as e:
            return {"http_error": e.code, **json.loads(e.read() or b"{}")}

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


# --- one round --------------------------------------------------------------------------------


def run_round(projects: list[Path], server: Server, workspace: Path, rng: random.Random) -> list[tuple[str, Path, str]]:
    """Start every project's run with an action; (action, project, problem or '') for each."""
    started = []
    for root in projects:
        action = rng.choice(["finish", "kill -9", "sigterm", "cancel"])
        seed = rng.randrange(1000)
        stop_after = rng.uniform(0.2, 4.0)
        if action == "cancel":
            job = server.call("POST", "runs", {"path": str((root / NB).relative_to(workspace)), "params": {"seed": seed}})
            started.append((action, root, job, stop_after))
        else:
            proc = nb2pipe(root, "run", NB, "-p", f"seed={seed}", "--jobs", "2", start_new_session=True)
            started.append((action, root, proc, stop_after))
    begun = time.monotonic()
    results = []
    for action, _root, handle, stop_after in sorted(started, key=lambda s: s[3]):
        time.sleep(max(0.0, begun + stop_after - time.monotonic()))
        if action == "kill -9":
            handle.send_signal(signal.SIGKILL)
        elif action == "sigterm":
            handle.send_signal(signal.SIGTERM)
        elif action == "cancel" and "id" in handle:
            server.call("DELETE", f"runs/{handle['id']}")
    for action, root, handle, _ in started:
        results.append((action, root, finish(action, handle, server)))
    return results


def finish(action: str, handle, server: Server) -> str:
    """'' when the run ended as its action says it should; else what went wrong."""
    if action == "cancel":
        if "id" not in handle:
            return f"POST /nb2pipe/runs refused: {handle}"
        deadline = time.monotonic() + 180
        while True:
            job = server.call("GET", f"runs/{handle['id']}")
            if job.get("finished"):
                break
            if time.monotonic() > deadline:
                return "the cancelled job never finished"
            time.sleep(0.2)
        return "" if job["status"] in ("cancelled", "ok") else f"job ended {job['status']}: {job.get('errors')}"
    try:
        _, err = handle.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        handle.kill()
        return "the run did not end within 300 s"
    code = handle.returncode
    if action == "finish":
        return "" if code == 0 else f"exit {code}: {err.strip().splitlines()[-1:] }"
    if action == "sigterm":
        return "" if code in (0, 130) else f"exit {code} after SIGTERM: {err.strip().splitlines()[-1:]}"
    return ""  # kill -9: nothing to say until the next command recovers


def mismatches(root: Path) -> list[str]:
    """What is wrong with a project at rest: outs that differ from the lock, a leftover journal,
    the user's file lost before any run of its stage succeeded."""
    problems = []
    recover = nb2pipe(root, "run", PIPE, "--dry-run")
    _, err = recover.communicate(timeout=300)
    if recover.returncode != 0:
        problems.append(f"recovery run failed: {err.strip()[-200:]}")
    status = nb2pipe(root, "status", PIPE, "--json")
    out, err = status.communicate(timeout=120)
    if status.returncode != 0:
        return [*problems, f"status failed: {err.strip()[-200:]}"]
    for stage in json.loads(out)["stages"]:
        bad = [r for r in stage["reasons"] if r.startswith(("out modified", "out missing"))]
        if bad:
            problems.append(f"stage {stage['name']}: {', '.join(bad)}")
        if stage["name"] == "final" and stage["state"] in ("never-run",) and (root / USER_FILE).read_text() != USER_TEXT:
            problems.append("the user's final.txt was lost before any run of 'final' succeeded")
    if (root / PIPE / ".nb2pipe" / "journal.json").exists():
        problems.append("a journal is left behind after recovery")
    return problems


def leaked_kernels(workspace: Path, grace: float = 15.0) -> list[int]:
    """Kernels still alive that ran in the soak's projects (kernels start in their notebook's folder)."""
    deadline = time.monotonic() + grace
    while True:
        alive = []
        for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if "ipykernel" in cmd and (proc.info["cwd"] or "").startswith(str(workspace)):
                alive.append(proc.info["pid"])
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="leave the temporary workspace")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    workspace = Path(tempfile.mkdtemp(prefix="nb2pipe-soak-"))
    projects = [workspace / f"p{i}" for i in range(3)]
    for root in projects:
        write_project(root)
    server = Server(workspace)
    false_failures, lost, counts = [], [], {}
    try:
        for number in range(1, args.rounds + 1):
            for action, root, problem in run_round(projects, server, workspace, rng):
                counts[action] = counts.get(action, 0) + 1
                if problem:
                    false_failures.append(f"round {number} {root.name} ({action}): {problem}")
            for root in projects:
                lost += [f"round {number} {root.name}: {p}" for p in mismatches(root)]
            print(f"round {number:>2}: false failures {len(false_failures)}, lock/disk mismatches {len(lost)}", file=sys.stderr)
    finally:
        server.close()
    leaked = leaked_kernels(workspace)
    print(f"\n{args.rounds} rounds of 3 pipelines at once: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"false failures:        {len(false_failures)}   (goal 0)")
    print(f"lock/disk mismatches:  {len(lost)}   (goal 0)")
    print(f"leaked kernels:        {len(leaked)}   (goal 0)")
    for line in false_failures + lost:
        print("  " + line)
    if args.keep:
        print(f"workspace kept: {workspace}")
    else:
        shutil.rmtree(workspace, ignore_errors=True)
    return 0 if not (false_failures or lost or leaked) else 1


if __name__ == "__main__":
    sys.exit(main())
