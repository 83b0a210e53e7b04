"""Helpers shared by the test files (fixtures live in conftest.py, next to the notebook builders).

- the CLI in-process (`main_quietly`) and in a subprocess as a user runs it (`run_cli`), and its
  one-line errors (`one_error_line`, `assert_one_line_error`);
- what a user reads back: `summary`, `status_json`, `stage_status`, run folders and their events;
- editing a notebook as a user would (`set_cell`);
- waiting: `wait_until` polls with a generous timeout and ends in `pytest.fail` saying what it
  waited for and what it saw; `wait_until_gone` does the same for processes;
- `Runs`: `nb2pipe run` started in the background as from a shell, killed with its kernels at the end;
- `in_mount_namespace`: read-only folders and full disks that hold for root too;
- `meet` and `assert_overlapped`: two stages that can only finish when they ran at the same
  time, and the proof of it by the order of the run's events (never by seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil
import pytest

from nb2pipe.cli import main

REPO = Path(__file__).resolve().parent.parent

# --- the shared corpus (/work/shared/corpus, conftest.CORPUS) ----------------------------------

# The corpus notebooks nb2pipe refuses on purpose, with a fragment of the one-line error each gets;
# any other refusal is a bug. Both break a rule of DESIGN §1.
INTENDED_CORPUS_REFUSALS = {
    # nothing to run: every cell is raw or markdown
    "edge__mwouts__jupytext__tests_data_notebooks_inputs_ipynb_py_The-flavors-of-raw-cells.ipynb":
        "has no code cells; there is nothing to run",
    # "The `parameters` cell holds literal assignments only": its pipeline-parameters cell prints
    "kale__kubeflow-kale__kale__examples_iris-classification_iris_example.ipynb":
        "is not a literal assignment",
    # (the digit-recognizer and disaster-tweets Kale examples export since issue 12: an untagged
    # cell after `imports` is setup, as in Kale; an install cell runs in no stage)
}  # fmt: skip


# --- the command line ------------------------------------------------------------------------


def main_quietly(*argv: str | Path, cwd: Path | None = None) -> tuple[int, str, str]:
    """The CLI in this process, output captured without pytest's capsys (for session fixtures);
    in `cwd` when given, and back where it was afterwards."""
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            exit_code = main([str(a) for a in argv])
    finally:
        os.chdir(here)
    return exit_code, out.getvalue(), err.getvalue()


def run_once(root: Path, notebook: str) -> str:
    """Export and run `notebook` in `root`, in this process (for a project built once per test
    worker); the run's summary line."""
    exit_code, out, err = main_quietly("run", notebook, cwd=root)
    assert exit_code == 0, err
    return summary(out)


def copy_project(template: Path, to: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of a project (mtimes and symlinks kept) in `to`, which becomes the current directory."""
    shutil.copytree(template, to, dirs_exist_ok=True, symlinks=True)
    monkeypatch.chdir(to)
    return to


def subprocess_env(**extra: str) -> dict[str, str]:
    """This environment with the tree under test first on PYTHONPATH (stage kernels inherit it)."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def run_cli(*argv: str | Path, cwd: Path | None = None, timeout: float = 300) -> tuple[int, str, str]:
    """`python -m nb2pipe ARGV` in a subprocess, as a user runs it: stdin closed; a command that
    hangs fails the test after `timeout` seconds instead of hanging the suite."""
    command = [sys.executable, "-m", "nb2pipe", *map(str, argv)]
    try:
        done = subprocess.run(
            command, cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"nb2pipe {' '.join(map(str, argv))} still running after {timeout:.0f} s; it printed: {expired.stderr!r}")
    return done.returncode, done.stdout, done.stderr


# `python -m nb2pipe`, with every thread's stack written to $NB2PIPE_TEST_STACKS on SIGUSR1: a
# test that gives up waiting for a command shows where the command waits (`output_or_stacks`)
_WITH_STACKS = (
    "import faulthandler, os, signal, sys\n"
    "faulthandler.register(signal.SIGUSR1, open(os.environ['NB2PIPE_TEST_STACKS'], 'w'), all_threads=True)\n"
    "from nb2pipe.cli import main\n"
    "sys.exit(main())\n"
)


def nb2pipe_command(*argv: str | Path) -> list[str]:
    """The argv of `python -m nb2pipe ARGV` that can show its stacks (start it with `stacks_env`)."""
    return [sys.executable, "-c", _WITH_STACKS, *map(str, argv)]


def stacks_env(stacks: Path, **extra: str) -> dict[str, str]:
    """subprocess_env for `nb2pipe_command`, its stacks going to the file `stacks`."""
    return subprocess_env(NB2PIPE_TEST_STACKS=str(stacks), **extra)


def output_or_stacks(proc: subprocess.Popen, stacks: Path, timeout: float) -> tuple[str, str]:
    """`proc.communicate(timeout)`; a command still running then fails the test with the stack of
    each of its threads (it was started as `nb2pipe_command`) and what it printed."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGUSR1)
    wait_until(lambda: stacks.exists() and stacks.stat().st_size, "the stacks are written", timeout=30)
    time.sleep(1)  # the other threads' stacks follow the first
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    out, err = proc.communicate()
    pytest.fail(f"still running after {timeout:.0f} s; its threads:\n{stacks.read_text()}\nstdout: {out!r}\nstderr: {err!r}")


def signal_another_thread(pid: int, sig: int) -> int:
    """Send `sig` to a thread of process `pid` other than its main one, and return that thread's
    id: what the OS may do with a Ctrl-C, since a signal sent to a process goes to any of its
    threads that does not block it, while Python runs the handler in the main thread only."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for task in sorted(Path(f"/proc/{pid}/task").iterdir(), key=lambda path: int(path.name)):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            blocked = re.search(r"^SigBlk:\s*([0-9a-f]+)$", (task / "status").read_text(), re.M)
            takes = not int(blocked.group(1), 16) & (1 << (sig - 1))  # type: ignore[union-attr]
            if int(task.name) != pid and takes and libc.tgkill(pid, int(task.name), sig) == 0:
                return int(task.name)
    pytest.fail(f"process {pid} has no thread besides its main one that takes signal {sig}")


def one_error_line(err: str) -> str:
    """The only line of `err`, which must be `error: ...` without a traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def assert_one_line_error(result: tuple[int, str, str], *expected: str) -> None:
    """A user's mistake: exit 2, nothing on stdout, one line `error: ...` holding each of `expected`."""
    status, out, err = result
    assert "Traceback" not in out + err, err
    assert status == 2, (status, out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert out == "", f"nothing but the error is printed, got {out!r}"
    for text in expected:
        assert text in err, err


def summary(stdout: str) -> str:
    """The last line of a run: `N ran, M up to date, K restored from cache, F failed`."""
    return stdout.strip().splitlines()[-1]


def status_json(cli, pipe: str | Path, *args: str) -> dict:
    """`nb2pipe status PIPE --json`, which must succeed."""
    exit_code, out, err = cli("status", pipe, "--json", *args)
    assert exit_code == 0, err
    return json.loads(out)


def stage_status(cli, pipe: str | Path, *args: str) -> dict[str, dict]:
    """`nb2pipe status PIPE --json` by stage name."""
    return {s["name"]: s for s in status_json(cli, pipe, *args)["stages"]}


# --- notebooks and run folders -----------------------------------------------------------------


def saved_cells(notebook: Path) -> list[dict] | None:
    """The cells of a notebook on disk, or None while the server is writing it: Jupyter's
    `atomic_writing` keeps a backup copy but writes the file in place, so a read can see it
    empty or cut short."""
    try:
        return json.loads(notebook.read_text())["cells"]
    except (ValueError, KeyError):
        return None


def disk_cells(notebook: Path) -> list[dict]:
    """The cells of a notebook on disk, once the server is not in the middle of writing it."""
    cells: list[dict] = wait_until(lambda: saved_cells(notebook), f"'{notebook}' can be read whole", timeout=60)
    return cells


def set_cell(notebook: Path, number: int, source: str | None = None, **changes: Any) -> None:
    """Edit cell `number` (1-based, as a user counts) of `notebook` in place, as in Jupyter."""
    data = json.loads(notebook.read_text())
    cell = data["cells"][number - 1]
    if source is not None:
        cell["source"] = source
    cell.update(changes)
    notebook.write_text(json.dumps(data, indent=1))


def run_dirs(pipeline: Path) -> set[Path]:
    """The run folders of a pipeline (`runs/<run-id>/`)."""
    return set((pipeline / "runs").glob("*"))


def run_events(run_dir: Path) -> list[dict]:
    """The events of a run as written so far (a line still being written is left out)."""
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def new_events(pipeline: Path, before: set[Path]) -> list[dict]:
    """The events of the runs started since `before` (a set from `run_dirs`)."""
    return [event for run in sorted(run_dirs(pipeline) - before) for event in run_events(run)]


def stage_started(pipeline: Path, before: set[Path]) -> bool:
    return any(e["event"] == "stage_started" for e in new_events(pipeline, before))


# --- waiting -----------------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], Any],
    what: str,
    *,
    timeout: float = 120,
    seen: Callable[[], Any] | None = None,
    proc: subprocess.Popen | None = None,
    interval: float = 0.05,
) -> Any:
    """Poll `condition()` until it is true and return its value. Otherwise `pytest.fail`: when
    `proc` ended first, with its exit code and output; after `timeout` seconds, with `what` did
    not happen and what `seen()` shows. Timeouts are generous: a loaded machine is slow, not wrong."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out, err = _leftover_output(proc)
            pytest.fail(f"{what}: the process ended first (exit {proc.returncode}); seen: {_describe(seen)}\n{out}\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s; seen: {_describe(seen)}")
        time.sleep(interval)


def _describe(seen: Callable[[], Any] | None) -> str:
    if seen is None:
        return "(nothing recorded)"
    try:
        return str(seen())
    except Exception as e:  # what was seen cannot be read: say so rather than hide the timeout
        return f"(could not read it: {e!r})"


def _leftover_output(proc: subprocess.Popen) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=30)
    except (ValueError, subprocess.TimeoutExpired):  # no pipes, or still writing
        return "", ""
    return out or "", err or ""


def alive(pids: Iterable[int]) -> list[int]:
    """The processes of `pids` still running (zombies count as gone)."""
    running = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.append(pid)
    return running


def _command_lines(pids: Iterable[int]) -> list[str]:
    lines = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            lines.append(f"{pid}: {' '.join(psutil.Process(pid).cmdline())[:200]}")
    return lines


def wait_until_gone(pids: Iterable[int], what: str = "the processes end", timeout: float = 60) -> None:
    """Wait for every process of `pids` to end; fail naming the ones still running."""
    pids = list(pids)
    wait_until(lambda: not alive(pids), what, timeout=timeout, seen=lambda: _command_lines(alive(pids)), interval=0.1)


def survivors(pids: Iterable[int], timeout: float = 60) -> list[int]:
    """The processes of `pids` still running after up to `timeout` seconds (for a test that kills
    what is left in a `finally`, then asserts there was nothing)."""
    pids = list(pids)
    deadline = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(pids)


def kernel_processes(parent: int) -> dict[int, float]:
    """The Jupyter kernels below process `parent`: pid -> create time (a reused pid is not them)."""
    found = {}
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(parent).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if any("ipykernel" in part for part in child.cmdline()):
                    found[child.pid] = child.create_time()
    return found


# --- runs in the background --------------------------------------------------------------------


class Runs:
    """`nb2pipe run` started in the background as from a shell: its own process group, stdin
    closed, output piped. `cleanup` kills what is left of them by pid: their process groups and
    the kernels seen under them (kernels have sessions of their own)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.kernels: dict[int, float] = {}

    def start(self, root: Path, *args: str, **popen: Any) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nb2pipe", "run", *args],
            cwd=root, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.DEVNULL, start_new_session=True, **popen,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def note_kernels(self, proc: subprocess.Popen) -> None:
        self.kernels.update(kernel_processes(proc.pid))

    def live_kernels(self) -> list[int]:
        running = []
        for pid, created in self.kernels.items():
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(pid)
                if process.create_time() == created and process.status() != psutil.STATUS_ZOMBIE:
                    running.append(pid)
        return running

    def wait_until(self, proc: subprocess.Popen, condition: Callable[[], Any], what: str, timeout: float = 120, seen=None) -> None:
        """`wait_until` for a run in the background, noting its kernels while it waits."""

        def check() -> Any:
            self.note_kernels(proc)
            return condition()

        wait_until(check, what, timeout=timeout, seen=seen, proc=proc)

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        for pid in self.live_kernels():
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()


# --- read-only folders and full disks (root bypasses chmod: real mounts, in a mount namespace) --

IN_NAMESPACE = r'''
import json, subprocess, sys
project, steps = sys.argv[1], json.loads(sys.argv[2])
results = []
for step in steps:
    if step[0] == "sh":
        results.append(subprocess.run(step[1], shell=True, cwd=project).returncode)
    else:
        argv = [sys.executable, "-c", step[1]] if step[0] == "py" else [sys.executable, "-m", "nb2pipe", *step]
        proc = subprocess.run(argv, cwd=project, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        results.append([proc.returncode, proc.stdout, proc.stderr])
print(json.dumps(results))
'''


def in_mount_namespace(project: Path, steps: list) -> list:
    """Run `steps` in a private mount namespace, in `project`: nb2pipe argv lists, ["sh", command]
    for mounts (its exit code), or ["py", code] for Python; each nb2pipe or py step gives
    [exit code, stdout, stderr]. Skips, with the reason, where mount namespaces are refused."""
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a mount namespace here (unshare -m: {probe.stderr.decode().strip()})")
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", sys.executable, "-c", IN_NAMESPACE, str(project), json.dumps(steps)],
        capture_output=True, text=True, env=subprocess_env(PYTHONDONTWRITEBYTECODE="1"),
    )  # fmt: skip
    if proc.returncode != 0 or not proc.stdout.strip():
        pytest.skip(f"the mount namespace did not work here: {proc.stderr.strip()[-300:]}")
    results = json.loads(proc.stdout)
    if any(r != 0 for r, step in zip(results, steps, strict=True) if step[0] == "sh" and step[1].startswith("mount")):
        pytest.skip("mounting is not allowed here")
    return results


def read_only_bind_mount(folder: Path) -> list[str]:
    """The `sh` step that makes `folder` read-only inside a mount namespace (root too)."""
    return ["sh", f"mount --bind '{folder}' '{folder}' && mount -o remount,bind,ro '{folder}'"]


# --- stages that run at the same time, proven by the order of events --------------------------


def meet(name: str, other: str) -> str:
    """Code of a stage `name` (a Python name too) that runs only alongside stage `other`: it marks its start, waits
    (up to `patience` s; 0: no waiting) for `other` to start, and fails the stage with a clear
    message when `other` never does. Needs `import json, os, time` and the params `patience`, `nap`.
    It writes `<name>.json` (its worker process and folder, the nap it was given)."""
    return (
        "waited = 0.0\n"
        f"open('{name}.started', 'w').close()\n"
        f"while patience and not os.path.exists('{other}.started'):\n"
        f"    assert waited < patience, '{other} did not start while {name} ran'\n"
        "    time.sleep(0.05)\n"
        "    waited += 0.05\n"
        "time.sleep(nap)\n"
        f"with open('{name}.json', 'w') as f_{name}:\n"
        f"    json.dump({{'worker_pid': os.getppid(), 'cwd': os.getcwd(), 'nap': nap}}, f_{name})\n"
    )


def stage_order(events: list[dict]) -> list[tuple[str, str]]:
    """(event, stage) of each stage_started / stage_finished / stage_failed, in the order they happened."""
    kinds = ("stage_started", "stage_finished", "stage_failed")
    return [(e["event"], e["stage"]) for e in events if e["event"] in kinds]


def assert_overlapped(events: list[dict], a: str, b: str) -> None:
    """Each of `a` and `b` started before the other finished."""
    order = stage_order(events)
    position = {pair: i for i, pair in enumerate(order)}
    for one, other in ((a, b), (b, a)):
        started, finished = ("stage_started", one), ("stage_finished", other)
        assert started in position and finished in position, order
        assert position[started] < position[finished], f"{one} started only after {other} finished: {order}"


def assert_one_after_the_other(events: list[dict], a: str, b: str) -> None:
    """`a` and `b` did not overlap: one finished before the other started."""
    order = stage_order(events)
    position = {pair: i for i, pair in enumerate(order)}
    first, second = sorted((a, b), key=lambda s: position[("stage_started", s)])
    assert position[("stage_finished", first)] < position[("stage_started", second)], f"{a} and {b} overlapped: {order}"


# --- the REST API through a real jupyter_server (pytest-jupyter's jp_fetch) ----------------------


async def fetch_json(jp_fetch, *parts: str, **kw: Any) -> tuple[int, Any]:
    """`/nb2pipe/PARTS`: (HTTP status, JSON body)."""
    response = await jp_fetch("nb2pipe", *parts, **kw)
    return response.code, json.loads(response.body)


async def expect_error(jp_fetch, status: int, *parts: str, **kw: Any) -> dict:
    """`/nb2pipe/PARTS` must answer `status`; its JSON body."""
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("nb2pipe", *parts, **kw)
    assert info.value.code == status, info.value
    return json.loads(info.value.response.body) if info.value.response.body else {}


async def _poll(read, done, what: str, timeout: float) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        seen = await read()
        if done(seen):
            return seen
        if loop.time() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s; last seen: {seen}")
        await asyncio.sleep(0.1)


async def wait_job(jp_fetch, job_id: str, done=lambda job: job["finished"], timeout: float = 240) -> dict:
    """Poll `GET runs/{id}` until `done(job)`; fails with the last record after `timeout`."""

    async def read() -> dict:
        return (await fetch_json(jp_fetch, "runs", job_id))[1]

    return await _poll(read, done, f"job {job_id} gets there", timeout)


async def wait_status(jp_fetch, path: str, done, timeout: float = 240) -> dict:
    """Poll `GET status?path=PATH` until `done(status)`; fails with the last one after `timeout`."""

    async def read() -> dict:
        return (await fetch_json(jp_fetch, "status", params={"path": path}))[1]

    return await _poll(read, done, f"the status of {path} gets there", timeout)
