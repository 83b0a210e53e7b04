"""The dask executor on real dask clusters, real Jupyter kernels and papermill (no mocks).

- a LocalCluster made by the executor: an example pipeline end to end through `run_pipeline`,
  its outputs equal to a local run's, cell progress flowing back from the workers; independent
  stages at once on different workers; Ctrl-C on a terminal (SIGINT to the whole process group,
  workers included) interrupts the run cleanly;
- an external scheduler and two workers started here as processes (`dask scheduler`,
  `dask worker --nworkers 2 --nthreads 1`) on a free port of 127.0.0.1, shared by the module:
  independent stages overlap on different workers (each stage stamps its start, end and worker
  process), `--scheduler` and DASK_SCHEDULER_ADDRESS, a failing stage handled exactly as the local
  executor handles it, interrupt kills running kernels and commands and cancels waiting stages;
- a worker that does not share the pipeline's filesystem: a worker started in its own mount
  namespace, where a tmpfs hides the project folder behind the same path (the honest picture of
  a worker on a machine without the share), must be refused with one clear line; so must an
  unreachable scheduler. And a worker closes, by itself, a run whose client went away.

dask is an optional extra: everything here is skipped when `distributed` is not importable.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

try:
    import distributed
except ImportError:
    pytest.skip("dask is an optional extra and `distributed` is not installed: pip install 'dask[distributed]'", allow_module_level=True)

import psutil  # a dependency of distributed

from conftest import EXAMPLES, code, write_nb
from helpers import assert_overlapped, meet, wait_until, wait_until_gone
from nb2pipe.cli import main
from nb2pipe.errors import Nb2PipeError
from nb2pipe.lockfile import wdir
from nb2pipe.run import RunOptions, dask_executor, run_pipeline
from nb2pipe.run.dask_executor import DaskExecutor
from nb2pipe.run.kernels import stage_notebook
from nb2pipe.run.local import StageJob
from nb2pipe.spec import load_pipeline

pytestmark = [pytest.mark.exports, pytest.mark.slow]

DASK = [str(Path(sys.executable).parent / "dask")] if (Path(sys.executable).parent / "dask").exists() else [sys.executable, "-m", "dask"]
NAP = 0.5  # seconds each of the two independent stages sleeps once both have started


# --- projects --------------------------------------------------------------------------------


def export(notebook: Path) -> Path:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(["export", str(notebook)]) == 0, err.getvalue()
    return notebook.parent / "pipelines" / notebook.stem


def pair_project(root: Path) -> Path:
    """a and b are independent and must run at the same time (each waits for the other); both reads them."""
    write_nb(
        root / "pair.ipynb",
        code("import json, os, time", "setup"),
        code(f"nap = {NAP}\npatience = 300", "parameters"),
        code(meet("a", "b"), "stage:a", "out:a.json"),
        code(meet("b", "a"), "stage:b", "out:b.json"),
        code(
            "runs = [json.load(open(name)) for name in ('a.json', 'b.json')]\n"
            "with open('both.txt', 'w') as f:\n"
            "    f.write(str(len(runs)))\n",
            "stage:both", "in:a.json", "in:b.json", "out:both.txt",
        ),
    )  # fmt: skip
    return export(root / "pair.ipynb")


def failing_project(root: Path) -> Path:
    """bad writes its out, then raises when fail=True; child depends on bad; good is independent."""
    write_nb(
        root / "fail.ipynb",
        code("import os", "setup"),
        code("fail = False", "parameters"),
        code("with open('good.txt', 'w') as f:\n    f.write('good')\n", "stage:good", "out:good.txt"),
        code(
            "with open('bad.txt', 'w') as f:\n    f.write('half-written' if fail else 'complete')\n"
            "if fail:\n    raise ValueError('boom from the bad stage')\n",
            "stage:bad", "out:bad.txt",
        ),
        code(
            "with open('bad.txt') as f:\n    text = f.read()\nwith open('child.txt', 'w') as f:\n    f.write(text)\n",
            "stage:child", "in:bad.txt", "out:child.txt",
        ),
    )  # fmt: skip
    return export(root / "fail.ipynb")


def sleepy_project(root: Path) -> Path:
    write_nb(
        root / "sleepy.ipynb",
        code("import time", "setup"),
        code("time.sleep(300)\nopen('one.txt', 'w').write('1')\n", "stage:one", "out:one.txt"),
        code("time.sleep(300)\nopen('two.txt', 'w').write('2')\n", "stage:two", "out:two.txt"),
    )
    return export(root / "sleepy.ipynb")


def recorder() -> tuple[list[dict], Callable[[dict], None]]:
    events: list[dict] = []
    return events, events.append


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def assert_overlap_on_two_workers(project: Path, events: list[dict]) -> None:
    """a and b ran at the same time (by the order of the run's events), on two workers."""
    assert_overlapped(events, "a", "b")
    a, b = read_json(project / "a.json"), read_json(project / "b.json")
    assert a["worker_pid"] != b["worker_pid"], "a and b ran on the same worker"
    assert a["cwd"] == b["cwd"] == str(project), "the stages did not run in the pipeline's wdir"


# --- an external cluster, started here -------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv: list[str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd="/", start_new_session=True)


def stop(processes: list[subprocess.Popen]) -> None:
    """Workers first, then the scheduler (the processes this module started, by their ids)."""
    for process in reversed(processes):
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_workers(address: str, n: int, processes: list[subprocess.Popen], logs: list[Path]) -> None:
    def connected() -> bool:
        if any(p.poll() is not None for p in processes):
            pytest.fail("a dask process exited early:\n" + "\n".join(log.read_text() for log in logs))
        try:
            with distributed.Client(address, timeout="5s", set_as_default=False) as client:
                client.wait_for_workers(n, timeout=5)
                return True
        except (OSError, TimeoutError):
            return False

    wait_until(
        connected, f"{n} dask workers connect to {address}", timeout=180, interval=0.5,
        seen=lambda: "\n".join(log.read_text() for log in logs),
    )  # fmt: skip


@contextlib.contextmanager
def cluster(logs: Path, worker_prefix: list[str] = (), nworkers: int = 2):
    """`dask scheduler` on a free port of 127.0.0.1 and `dask worker --nworkers N --nthreads 1`."""
    address = f"tcp://127.0.0.1:{free_port()}"
    logs.mkdir(parents=True, exist_ok=True)
    scheduler_log, worker_log = logs / "scheduler.log", logs / "worker.log"
    processes = [start([*DASK, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard"], scheduler_log)]
    try:
        worker = [*DASK, "worker", address, "--nworkers", str(nworkers), "--nthreads", "1", "--no-dashboard"]
        worker += ["--local-directory", str(logs)]
        processes.append(start([*worker_prefix, *worker], worker_log))
        wait_for_workers(address, nworkers, processes, [scheduler_log, worker_log])
        yield address
    finally:
        stop(processes)


@pytest.fixture(scope="module")
def external(tmp_path_factory):
    with cluster(tmp_path_factory.mktemp("dask-cluster")) as address:
        yield address


# --- a LocalCluster made by the executor -----------------------------------------------------


def test_example_pipeline_end_to_end_on_a_local_cluster(tmp_path):
    """diabetes_kale (a diamond: load_data -> train_ridge || train_forest -> compare) on dask and locally."""
    outputs = {}
    for executor in ("dask", "local"):
        root = tmp_path / executor
        root.mkdir()
        shutil.copy(EXAMPLES / "diabetes_kale.ipynb", root)
        pipeline = export(root / "diabetes_kale.ipynb")
        events, report = recorder()
        result = run_pipeline(pipeline, RunOptions(executor=executor, jobs=2), [report])
        assert result.ok, result.errors
        assert result.outcomes == dict.fromkeys(["load_data", "train_ridge", "train_forest", "compare"], "ran")
        run_dir = pipeline / "runs" / result.run_id
        notebooks = ["compare.ipynb", "load_data.ipynb", "train_forest.ipynb", "train_ridge.ipynb"]
        assert sorted(p.name for p in run_dir.glob("*.ipynb")) == notebooks
        outputs[executor] = {
            "metrics": read_json(pipeline / "metrics" / "compare.json"),
            "report": (root / "reports" / "diabetes_comparison.csv").read_text(),
        }
        if executor == "dask":
            # progress flowed back from the workers: cell events of each stage, between its start and end
            for stage in result.outcomes:
                kinds = [(e["event"], e.get("index")) for e in events if e.get("stage") == stage]
                cells = [i for kind, i in kinds if kind == "cell"]
                assert kinds[0][0] == "stage_started" and kinds[-1][0] == "stage_finished", kinds
                assert cells and cells == sorted(cells) and cells[0] == 1, (stage, kinds)
            # a second run has nothing to do, and makes no cluster for it
            again = run_pipeline(pipeline, RunOptions(executor="dask", jobs=2), [])
            assert set(again.outcomes.values()) == {"up to date"}
    assert outputs["dask"]["metrics"] == outputs["local"]["metrics"]
    assert outputs["dask"]["report"] == outputs["local"]["report"]


def test_independent_stages_run_at_once_on_different_workers_of_a_local_cluster(tmp_path):
    pipeline = pair_project(tmp_path)
    events, report = recorder()
    result = run_pipeline(pipeline, RunOptions(executor="dask", jobs=2), [report])
    assert result.ok, result.errors
    assert_overlap_on_two_workers(tmp_path, events)
    assert (tmp_path / "both.txt").read_text() == "2"


CTRL_C_DRIVER = """
import sys
from pathlib import Path
from nb2pipe.run import RunOptions, run_pipeline
try:
    run_pipeline(Path(sys.argv[1]), RunOptions(executor="dask", jobs=2, params={"nap": 300}), [])
except KeyboardInterrupt:
    sys.exit(130)
sys.exit(1)
"""


def kernels_in(folder: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if "ipykernel_launcher" in " ".join(process.info["cmdline"] or []) and process.cwd() == str(folder):
                found.append(process)
        except psutil.Error:
            pass
    return found


def test_ctrl_c_on_a_terminal_interrupts_the_stages_of_a_local_cluster(tmp_path):
    """Ctrl-C signals the whole foreground process group, workers included: the runner must get it."""
    project = tmp_path / "project"
    pipeline = pair_project(project)
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", CTRL_C_DRIVER, str(pipeline)], cwd=project, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until(
            lambda: (project / "a.started").exists() and (project / "b.started").exists(),
            "both stages start", proc=process, seen=log.read_text,
        )  # fmt: skip
        os.killpg(process.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
        process.wait(timeout=300)  # not the 300 s nap of each stage, then the cluster's shut-down
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # the session this test started, workers included
            process.wait()
    assert process.returncode == 130, log.read_text()
    last = read_json(pipeline / ".nb2pipe" / "last.json")
    assert [last[n]["outcome"] for n in "ab"] == ["failed", "failed"] and "interrupted" in last["a"]["error"], last
    assert not (project / "a.json").exists() and not (project / "b.json").exists()
    wait_until_gone([k.pid for k in kernels_in(project)], "the kernels of the interrupted run end")


# --- an external scheduler -------------------------------------------------------------------


def test_independent_stages_overlap_on_an_external_scheduler(external, tmp_path):
    pipeline = pair_project(tmp_path)
    events, report = recorder()
    result = run_pipeline(pipeline, RunOptions(executor="dask", scheduler=external), [report])
    assert result.outcomes == {"a": "ran", "b": "ran", "both": "ran"}, result.errors
    assert_overlap_on_two_workers(tmp_path, events)
    worker_pids = {read_json(tmp_path / f"{n}.json")["worker_pid"] for n in "ab"}
    assert os.getpid() not in worker_pids  # ran on the cluster's workers, not here


def test_dask_scheduler_address_from_the_environment(external, tmp_path, monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", external)
    pipeline = pair_project(tmp_path)
    result = run_pipeline(pipeline, RunOptions(executor="dask", stages=("a",), params={"patience": 0}), [])
    assert result.outcomes == {"a": "ran"}, result.errors
    with distributed.Client(external, set_as_default=False) as client:
        worker_pids = set(client.run(os.getpid).values())
    assert read_json(tmp_path / "a.json")["worker_pid"] in worker_pids


def test_a_failing_stage_is_handled_as_the_local_executor_handles_it(external, tmp_path, monkeypatch):
    seen = {}
    for executor in ("local", "dask"):
        root = tmp_path / executor
        pipeline = failing_project(root)
        monkeypatch.chdir(root)  # messages name the executed notebook relative to the current directory
        options = RunOptions(executor=executor, scheduler=external if executor == "dask" else None, jobs=2)
        first = run_pipeline(pipeline, options, [])
        assert first.outcomes == {"good": "ran", "bad": "ran", "child": "ran"}, first.errors
        lock_before = (pipeline / "nb2pipe.lock").read_text()
        events, report = recorder()
        options.params = {"fail": True}
        monkeypatch.chdir(root)  # (papermill's chdir, in the local executor's threads, can leave it elsewhere)
        failed = run_pipeline(pipeline, options, [report])
        assert failed.outcomes == {"good": "up to date", "bad": "failed", "child": "not run"}
        assert (root / "bad.txt").read_text() == "complete", "the failed stage's previous outs were not restored"
        assert (root / "child.txt").read_text() == "complete"
        assert (pipeline / "nb2pipe.lock").read_text() == lock_before
        executed = pipeline / "runs" / failed.run_id / "bad.ipynb"
        assert "boom from the bad stage" in executed.read_text(), "the executed notebook of the failed stage is missing"
        failure = next(e for e in events if e["event"] == "stage_failed")
        seen[executor] = {
            "message": failed.errors["bad"].message.replace(failed.run_id, "RUN"),
            "cell": failure.get("cell"),
            "last": {k: v for k, v in read_json(pipeline / ".nb2pipe" / "last.json")["bad"].items() if k in ("outcome", "error")},
        }
    assert seen["dask"] == seen["local"]
    assert re.search(r"stage 'bad' failed( in [^:]+)?: ValueError: boom from the bad stage; open .*bad\.ipynb", seen["dask"]["message"]), (
        seen["dask"]["message"]
    )


def test_interrupt_kills_running_kernels_and_commands_and_cancels_waiting_stages(external, tmp_path):
    pipeline = load_pipeline(sleepy_project(tmp_path))
    runs = tmp_path / "runs"
    runs.mkdir()
    marker = f"nb2pipe-test-marker-{os.getpid()}-{time.time_ns()}"
    kernel_busy = threading.Event()

    def job(name: str, **kw) -> StageJob:
        notebook = None if kw.get("cmd") else stage_notebook(pipeline, pipeline.stage(name))
        on_cell = (lambda i, n: kernel_busy.set()) if name == "one" else (lambda i, n: None)
        return StageJob(name=name, notebook=notebook, parameters={}, output=runs / f"{name}.ipynb", on_cell=on_cell, **kw)

    executor = DaskExecutor("python3", wdir(pipeline), 2, external)
    try:
        running = [
            executor.submit(job("one")),
            executor.submit(job("cmd", cmd=(sys.executable, "-c", "import time; time.sleep(300)", marker))),
        ]

        def both_started() -> bool:
            if any(f.done() for f in running):
                pytest.fail(f"a stage ended before the interrupt: {[f.result() for f in running if f.done()]}")
            return kernel_busy.is_set() and bool(command_processes(marker))

        wait_until(both_started, "the kernel stage runs a cell and the command stage runs, on the workers")
        waiting = executor.submit(job("two"))  # both workers are busy: it waits
        wait_until(lambda: scheduler_state(executor, "two"), "the scheduler holds the waiting stage")
        executor.interrupt()
        outcomes = [f.result(timeout=120) for f in [*running, waiting]]
    finally:
        executor.close()
    assert [o.name for o in outcomes] == ["one", "cmd", "two"]
    assert all(not o.ok and o.error["evalue"] == "interrupted" for o in outcomes), outcomes
    assert not command_processes(marker), "the command stage still runs on its worker"
    assert not (tmp_path / "one.txt").exists() and not (tmp_path / "two.txt").exists()
    assert not (runs / "two.ipynb").exists(), "the waiting stage started after the interrupt"


def scheduler_state(executor: DaskExecutor, name: str) -> str | None:
    """The state of stage `name`'s task on the scheduler (queued, processing, ...), None while unknown there."""
    key = executor._entries[name].task.key
    return executor.client.run_on_scheduler(lambda dask_scheduler: getattr(dask_scheduler.tasks.get(key), "state", None))


def command_processes(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if marker in (process.info["cmdline"] or []):
            found.append(process)
    return found


def test_progress_and_outcomes_of_executor_jobs_directly(external, tmp_path):
    """StageJobs built from an exported notebook, as the runner builds them; a command stage too."""
    pipeline = load_pipeline(pair_project(tmp_path))
    runs = tmp_path / "runs"
    runs.mkdir()
    cells: list[tuple[str, int, int]] = []
    executor = DaskExecutor("python3", wdir(pipeline), 2, external)
    try:
        jobs = [
            StageJob(
                name=name, notebook=stage_notebook(pipeline, pipeline.stage(name)), parameters={"nap": 0.01, "patience": 0},
                output=runs / f"{name}.ipynb", on_cell=lambda i, n, name=name: cells.append((name, i, n)),
            )
            for name in ("a", "b")
        ]  # fmt: skip
        listing = (sys.executable, "-c", "import os; print(sorted(os.listdir('.')))")
        jobs.append(StageJob("listing", None, {}, runs / "listing.ipynb", lambda i, n: None, cmd=listing))
        broken = (sys.executable, "-c", "raise SystemExit('no such luck')")
        jobs.append(StageJob("broken", None, {}, runs / "broken.ipynb", lambda i, n: None, cmd=broken))
        outcomes = {o.name: o for o in (executor.submit(j).result(timeout=120) for j in jobs)}
    finally:
        executor.close()
    assert outcomes["a"].ok and outcomes["b"].ok and outcomes["listing"].ok, outcomes
    assert outcomes["broken"].error == {"ename": "exit status 1", "evalue": "no such luck"}
    assert "'pair.ipynb'" in (runs / "listing.log").read_text()  # ran in wdir, its output logged next to the run
    assert read_json(tmp_path / "a.json")["nap"] == 0.01  # parameters were injected
    for name in ("a", "b"):
        indexes = [i for stage, i, _ in cells if stage == name]
        assert indexes == list(range(1, len(indexes) + 1)) and indexes, cells


def test_a_worker_closes_a_run_whose_client_went_away(tmp_path, monkeypatch):
    """The worker-side registry on its own (in this process): an idle run is closed, kernels killed."""
    monkeypatch.setattr(dask_executor, "IDLE_CLOSE_S", 0.5)
    token = f"abandoned-{time.time_ns()}"
    run = dask_executor._worker_run(token, "python3", tmp_path, 1)
    with run.lock:  # busy until its kernels answered: a run closed earlier kills them while they start
        run.running.add("booting")
    kernels = [future.result(timeout=60).provisioner.process for future in list(run.executor.pool._ready)]
    with run.lock:
        run.running.discard("booting")
        run.active = time.monotonic()
    assert kernels and all(k.poll() is None for k in kernels)
    # the reaper may be in a 30 s sleep begun by an earlier test
    wait_until(lambda: token not in dask_executor._RUNS, "the worker closes the idle run", seen=lambda: list(dask_executor._RUNS))
    assert run.closed
    for kernel in kernels:
        kernel.wait(timeout=15)


# --- refusing a cluster that cannot run the pipeline ------------------------------------------


def can_hide_folders() -> bool:
    if not shutil.which("unshare") or not sys.platform.startswith("linux"):
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(
    not can_hide_folders(),
    reason="needs `unshare --mount` (Linux, root or unprivileged user namespaces) to start a worker "
    "whose filesystem does not have the pipeline folder; a second machine is not available to a test",
)
def test_a_worker_that_cannot_see_the_pipeline_folder_is_refused_with_one_clear_line(tmp_path):
    project = tmp_path / "project"
    pipeline = pair_project(project)
    # the worker runs in its own mount namespace where an empty tmpfs sits on the project's path:
    # the path exists there, but it is another filesystem, as on a machine without the share
    hide = ["unshare", "--mount", "--propagation", "private", "sh", "-c", 'mount -t tmpfs nb2pipe-test "$0" && exec "$@"', str(project)]
    with cluster(tmp_path / "dask-logs", worker_prefix=hide, nworkers=1) as address, pytest.raises(Nb2PipeError) as caught:
        run_pipeline(pipeline, RunOptions(executor="dask", scheduler=address), [])
    message = str(caught.value)
    assert "\n" not in message
    assert re.fullmatch(
        rf"dask worker tcp://127\.0\.0\.1:\d+ cannot see '{re.escape(str(project))}'; "
        r"the workers must share the pipeline's filesystem \(.+\)",
        message,
    ), message
    assert not (project / ".nb2pipe").exists(), "the probe was left behind"
    # nothing is left locked or half-done: the same pipeline runs locally right after
    assert run_pipeline(pipeline, RunOptions(stages=("a",), params={"nap": 0.01, "patience": 0}), []).outcomes == {"a": "ran"}


def test_an_unreachable_scheduler_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT_S", 2)
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(Nb2PipeError, match=rf"^cannot reach the dask scheduler at {re.escape(address)} .*start one with `dask scheduler`"):
        DaskExecutor("python3", tmp_path, 1, address)
