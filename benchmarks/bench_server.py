"""GET /nb2pipe/status for a 50-stage pipeline on a real jupyter server, warm: p50 and p95.

Run: /work/venv/bin/python benchmarks/bench_server.py   (target: p95 under 50 ms)
The pipeline is exported from a generated notebook and run once, so every stage has a lock
entry, metrics and a last run; then the status route is called 200 times after 10 warm-ups.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

STAGES = 50


def notebook(stages: int) -> dict:
    cells = [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "scale = 2", "outputs": [], "execution_count": None}]
    for i in range(stages):
        prev = f"data/s{i - 1}.txt"
        read = f"x = int(open('{prev}').read())\n" if i else "x = 1\n"
        tags = [f"stage:s{i:02d}", f"out:data/s{i}.txt"] + ([f"in:{prev}"] if i else [])
        source = f"import os\nos.makedirs('data', exist_ok=True)\n{read}open('data/s{i}.txt', 'w').write(str(x * scale % 97))"
        cells.append({"cell_type": "code", "metadata": {"tags": tags}, "source": source, "outputs": [], "execution_count": None})
    cells.append(
        {"cell_type": "code", "metadata": {"tags": ["metrics"]}, "source": "score = x / 97", "outputs": [], "execution_count": None}
    )
    return {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="nb2pipe-bench-server-"))
    (root / "big.ipynb").write_text(json.dumps(notebook(STAGES)))
    nb2pipe = [sys.executable, "-m", "nb2pipe"]
    subprocess.run([*nb2pipe, "run", "big.ipynb", "--jobs", "2"], cwd=root, check=True, capture_output=True)
    token, port = secrets.token_hex(8), free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "server", "--no-browser", "--allow-root", f"--port={port}", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--ServerApp.jpserver_extensions=nb2pipe.server=True"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "JUPYTER_PLATFORM_DIRS": "1"},
    )
    url = f"http://127.0.0.1:{port}/nb2pipe/status?path=big.ipynb"
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(request, timeout=2).read()
                break
            except OSError:
                time.sleep(0.2)
        for _ in range(10):
            body = json.loads(urllib.request.urlopen(request).read())
        assert len(body["stages"]) == STAGES and all(s["state"] == "up-to-date" for s in body["stages"]), body["stages"][:2]
        times = []
        for _ in range(200):
            start = time.perf_counter()
            urllib.request.urlopen(request).read()
            times.append((time.perf_counter() - start) * 1000)
    finally:
        server.terminate()
        server.wait()
    times.sort()
    p95 = times[int(len(times) * 0.95) - 1]
    print("| measurement | value | target | met? |\n|---|---:|---|---|")
    print(f"| GET status, {STAGES} stages, warm, p50 | {statistics.median(times):.1f} ms | | |")
    print(f"| GET status, {STAGES} stages, warm, p95 | {p95:.1f} ms | < 50 ms | {'yes' if p95 < 50 else 'NO'} |")


if __name__ == "__main__":
    main()
