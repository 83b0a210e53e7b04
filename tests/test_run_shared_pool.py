"""One kernel pool for many runs (a sweep's trials): kernels boot ahead for every trial's stages
while other trials run, yet each stage still gets a fresh kernel of its own, in its own working
folder, and one run's interrupt or end touches no other run's kernels. Real kernels, papermill."""

from __future__ import annotations

import threading
from pathlib import Path

import psutil
import pytest

from nb2pipe.run import pool as pool_module
from nb2pipe.run.local import LocalExecutor
from nb2pipe.run.pool import KernelPool
from test_executors import job
from test_sweep import project

pytestmark = pytest.mark.slow

WHERE = "import os\nwith open('where.txt', 'w') as f:\n    f.write(os.getcwd())"


@pytest.fixture
def shared(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    kernels = KernelPool("python3", tmp_path / "elsewhere", size=2)
    yield kernels
    kernels.close()


def folders(tmp_path: Path, *names: str) -> list[Path]:
    made = []
    for name in names:
        (tmp_path / name / "runs").mkdir(parents=True)
        made.append(tmp_path / name)
    return made


def test_runs_sharing_a_pool_get_fresh_kernels_in_their_own_folders_and_leave_the_pool_open(tmp_path, shared):
    first, second = folders(tmp_path, "first", "second")
    pids: list[int] = []
    for folder in (first, second, first):
        executor = LocalExecutor("python3", folder, 1, stages=1, pool=shared)
        stage = job(folder / "runs", "where", WHERE)
        stage.on_kernel = pids.append
        outcome = executor.submit(stage).result(timeout=120)
        executor.close()
        assert outcome.ok, outcome.error
        assert (folder / "where.txt").read_text() == str(folder), "the stage ran in its run's folder"
    assert len(set(pids)) == 3, f"every stage had a kernel of its own: {pids}"
    assert not (tmp_path / "elsewhere" / "where.txt").exists()


def test_an_interrupt_kills_only_the_kernels_of_its_own_run(tmp_path, shared):
    first, second = folders(tmp_path, "first", "second")
    started = {name: threading.Event() for name in ("a", "b")}
    pids: dict[str, int] = {}
    executors = {name: LocalExecutor("python3", folder, 1, stages=1, pool=shared) for name, folder in (("a", first), ("b", second))}
    futures = {}
    for name, folder in (("a", first), ("b", second)):
        stage = job(folder / "runs", name, "import time\ntime.sleep(120)")
        stage.on_kernel = lambda pid, name=name: (pids.__setitem__(name, pid), started[name].set())
        futures[name] = executors[name].submit(stage)
    assert all(event.wait(120) for event in started.values()), f"the stages did not start: {pids}"
    executors["a"].interrupt()
    assert not futures["a"].result(timeout=60).ok
    assert psutil.pid_exists(pids["b"]) and psutil.Process(pids["b"]).status() != psutil.STATUS_ZOMBIE, "b's kernel lives on"
    assert not futures["b"].done()
    executors["b"].interrupt()
    assert not futures["b"].result(timeout=60).ok
    for executor in executors.values():
        executor.close()


def test_a_sweep_boots_its_kernels_from_one_pool(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    project(tmp_path)
    made: list[Path] = []
    init = KernelPool.__init__

    def counted(self, kernel_name, cwd, size, *args, **kwargs):
        made.append(Path(cwd))
        init(self, kernel_name, cwd, size, *args, **kwargs)

    monkeypatch.setattr(pool_module.KernelPool, "__init__", counted)
    status, out, err = cli("sweep", "nb.ipynb", "-p", "alpha=0.1,0.2", "-p", "depth=3,4", "--jobs", "2")
    assert status == 0, out + err
    assert out.splitlines()[-1] == "4 trials: 4 ok, 0 failed"
    assert made == [tmp_path], f"one pool, in the working folder, for the shared stage and the 4 trials: {made}"
