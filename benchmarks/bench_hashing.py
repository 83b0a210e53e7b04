"""Throughput of nb2pipe.hashing on one big file, next to md5sum and hashlib.md5.

Usage: python benchmarks/bench_hashing.py FILE [--size-gib N] [--repeat N]
FILE is created with random bytes if absent (then left in place: delete it yourself).
"Cold" rows drop the page cache first (root only; shown as n/a otherwise).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

try:
    from nb2pipe import hashing
except ImportError:  # run as a script from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from nb2pipe import hashing

import blake3

DROP_CACHES = Path("/proc/sys/vm/drop_caches")
WRITE_BLOCK = 64 << 20


def create_random_file(path: Path, size: int) -> None:
    with open(path, "wb") as handle:
        for offset in range(0, size, WRITE_BLOCK):
            handle.write(os.urandom(min(WRITE_BLOCK, size - offset)))


def wait_out_racy_window(path: Path) -> None:
    """Sleep until the file is old enough for HashCache to cache its hash."""
    age_ns = time.time_ns() - path.stat().st_mtime_ns
    remaining = hashing.RACY_WINDOW_NS - age_ns
    if remaining > 0:
        time.sleep(remaining / 1e9 + 0.1)


def drop_page_cache() -> bool:
    try:
        os.sync()
        DROP_CACHES.write_text("3\n")
        return True
    except OSError:
        return False


def md5_streamed(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def blake3_streamed_one_thread(path: Path) -> str:
    return hashing._hash_file_streamed(path, blake3.blake3())


def md5sum_tool(path: Path) -> str:
    return subprocess.run(["md5sum", str(path)], check=True, capture_output=True, text=True).stdout


def time_runs(run: Callable[[], object], repeat: int, cold: bool) -> float | None:
    """Median seconds over repeat runs; None if a cold run cannot drop the page cache."""
    times = []
    for _ in range(repeat):
        if cold and not drop_page_cache():
            return None
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def format_row(name: str, size: int, warm: float | None, cold: float | None) -> str:
    def cell(seconds: float | None) -> str:
        if seconds is None:
            return f"{'n/a':>18}"
        return f"{seconds:8.3f}s {size / seconds / 1e9:6.2f}GB/s"

    return f"{name:<38} {cell(warm)} {cell(cold)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--size-gib", type=float, default=2.0, help="size when creating FILE")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    args = parser.parse_args()

    path: Path = args.file
    if not path.exists():
        print(f"creating {path} ({args.size_gib} GiB of random bytes)...", flush=True)
        create_random_file(path, int(args.size_gib * (1 << 30)))
    size = path.stat().st_size
    wait_out_racy_window(path)

    with tempfile.TemporaryDirectory() as state:
        cache = hashing.HashCache(Path(state) / "hashcache.json")
        cache.hash_path(path)  # fill the stat cache once

        rows: list[tuple[str, Callable[[], object], bool]] = [
            ("hash_file (mmap, all cores)", lambda: hashing.hash_file(path), True),
            ("blake3 streamed, 1 thread (reference)", lambda: blake3_streamed_one_thread(path), True),
            ("md5sum (coreutils)", lambda: md5sum_tool(path), True),
            ("hashlib.md5 streamed 1 MiB", lambda: md5_streamed(path), True),
        ]
        if shutil.which("md5sum") is None:
            rows = [row for row in rows if not row[0].startswith("md5sum")]

        print(f"file {path}: {size / (1 << 30):.2f} GiB, {os.cpu_count()} CPUs, median of {args.repeat}")
        print(f"{'method':<38} {'warm (page cache)':>18} {'cold (dropped)':>18}")
        for name, run, has_cold in rows:
            run()  # warm the page cache
            warm = time_runs(run, args.repeat, cold=False)
            cold = time_runs(run, args.repeat, cold=True) if has_cold else None
            print(format_row(name, size, warm, cold), flush=True)

        hit = time_runs(lambda: cache.hash_path(path), max(args.repeat, 100), cold=False)
        print(f"{'HashCache.hash_path, cache hit':<38} {hit * 1e6:8.1f}us (no read)")


if __name__ == "__main__":
    main()
