"""The run registry on disk: which run holds a pipeline's lock (pid, run id, events file), and
what that run is doing, as any other process (the server, `nb2pipe status`) reads it."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from nb2pipe.errors import PipelineLocked
from nb2pipe.run import registry
from nb2pipe.run.pidlock import RunLock


def lock_file(folder: Path) -> Path:
    return folder / ".nb2pipe" / "run.pid"


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def hold_before_writing(path: Path, leftover: str) -> int:
    """Be a holder caught between its flock and the write of its pid: the lock is taken and the
    file still holds `leftover` (nothing, or what a holder that was killed left behind)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, leftover.encode())
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def write_pid_later(fd: int, content: str) -> threading.Timer:
    def write() -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, content.encode(), 0)

    timer = threading.Timer(0.5, write)
    timer.start()
    return timer


@pytest.mark.parametrize("leftover", ["", "dead pid"])
def test_a_second_run_names_the_holder_even_while_the_holder_writes_its_pid(tmp_path, leftover):
    path = lock_file(tmp_path)
    fd = hold_before_writing(path, str(dead_pid()) if leftover else "")
    timer = write_pid_later(fd, json.dumps({"pid": os.getpid(), "run": "20250101-000000-abcd"}))
    try:
        with pytest.raises(PipelineLocked) as info:
            RunLock(path).acquire(where="pipelines/p")
    finally:
        timer.join()
        os.close(fd)
    assert f"is already running (pid {os.getpid()})" in str(info.value)


def test_the_registry_reads_the_holder_even_while_the_holder_writes_its_pid(tmp_path):
    fd = hold_before_writing(lock_file(tmp_path), "")
    timer = write_pid_later(fd, json.dumps({"pid": os.getpid(), "run": "r-1"}))
    try:
        run = registry.active_run(tmp_path)
    finally:
        timer.join()
        os.close(fd)
    assert run is not None and (run.pid, run.run_id) == (os.getpid(), "r-1")


def test_the_lock_names_pid_run_and_events_while_held_and_nothing_after(tmp_path):
    events = tmp_path / "runs" / "r-2" / "events.jsonl"
    lock = RunLock(lock_file(tmp_path))
    lock.acquire(where="p", run_id="r-2", events=events)
    try:
        run = registry.active_run(tmp_path)
        assert run is not None
        assert (run.pid, run.run_id, run.events) == (os.getpid(), "r-2", events)
    finally:
        lock.release()
    assert registry.active_run(tmp_path) is None
    assert lock_file(tmp_path).read_text() == "", "a released lock names no holder"


def test_an_events_file_outside_the_pipeline_folder_is_not_followed(tmp_path):
    folder = tmp_path / "p"
    outside = tmp_path / "elsewhere" / "events.jsonl"
    outside.parent.mkdir()
    outside.write_text(json.dumps({"event": "stage_started", "stage": "x"}) + "\n")
    lock = RunLock(lock_file(folder))
    lock.acquire(run_id="r-3", events=outside)
    try:
        run = registry.active_run(folder)
        assert run is not None and run.events is None
        assert registry.running_stages(folder) == set()
    finally:
        lock.release()


def test_events_fold_into_the_progress_record(tmp_path):
    events = tmp_path / "runs" / "r-4" / "events.jsonl"
    events.parent.mkdir(parents=True)
    records = [
        {"event": "run_started", "run": "r-4", "stages": ["a", "b", "c"], "time": 1.0},
        {"event": "stage_started", "stage": "a", "time": 2.0},
        {"event": "stage_finished", "stage": "a", "outcome": "ran", "duration": 1.5},
        {"event": "stage_started", "stage": "b", "time": 3.0},
        {"event": "cell", "stage": "b", "index": 2, "count": 5},
        {"event": "stage_started", "stage": "c", "time": 3.5},
        {"event": "stage_failed", "stage": "c", "error": "stage 'c' failed: ValueError: no", "duration": 0.2},
    ]
    events.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"event": "cell", "sta')  # a torn last line
    lock = RunLock(lock_file(tmp_path))
    lock.acquire(run_id="r-4", events=events)
    try:
        progress = registry.active_run(tmp_path).progress()
        assert registry.running_stages(tmp_path) == {"b"}
    finally:
        lock.release()
    assert progress.run_id == "r-4" and progress.started == 1.0 and progress.outcome is None
    assert progress.stages["a"]["state"] == "ran"
    assert progress.stages["b"] == {"state": "running", "cell": 2, "cells": 5, "started": 3.0}
    assert progress.stages["c"]["state"] == "failed"
    assert progress.errors == ["stage 'c' failed: ValueError: no"]
