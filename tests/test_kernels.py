"""Kernels handed to a stage are alive and answering; a kernel that dies is reported with its cell.

Real kernels and papermill, no mocks. The flaky kernels are kernelspecs in a temporary
JUPYTER_PATH whose argv runs `WRAPPER`, a few lines around ipykernel that make the first N starts
fail the way a busy machine makes them fail:

- `exit`:  the process exits with status 1 a moment after it started;
- `port`:  another socket holds the kernel's shell port (the port race of two runs starting
           kernels at once, provoked on purpose), so ipykernel dies with `ZMQError: Address
           already in use`;
- `iopub`: the same with its iopub port: ipykernel binds its shell port, fails on iopub, and
           hangs half-started, neither answering nor ending;
- `sleep`: the process never answers at all;
- `deaf`:  a ZMQ socket on the kernel's shell port takes the first message sent there and drops
           it, then ipykernel starts (a request sent while a kernel starts can be lost);
- `late`:  with FAILS = -(N + 1), the first N starts work and every later one never answers.

Every start is appended (pid per line) to a `starts` file, so a test can count the kernels the
pool started and check that none of them is left running.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import psutil
import pytest

from conftest import code, write_nb
from helpers import summary, wait_until_gone

NB = "nb.ipynb"
PIPE = "pipelines/nb"

WRAPPER = r'''
"""Start ipykernel, but fail the first FAILS starts (all of them when FAILS < 0) as MODE says."""
import fcntl, json, os, socket, sys, time

mode, state, fails, delay = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
kernel_args = sys.argv[5:]
with open(os.path.join(state, "starts"), "a+") as starts:
    fcntl.flock(starts, fcntl.LOCK_EX)
    starts.seek(0)
    number = len(starts.read().split())
    starts.write(f"{os.getpid()}\n")
if fails < 0 or number < fails:
    if mode == "exit":
        time.sleep(delay)  # alive when the pool looks, dead before it answers
        print(f"flaky kernel: start {number + 1} refused", file=sys.stderr, flush=True)
        sys.exit(1)
    if mode in ("port", "iopub"):
        connection = json.load(open(kernel_args[kernel_args.index("-f") + 1]))
        taken = socket.socket()
        taken.bind((connection["ip"], connection["shell_port" if mode == "port" else "iopub_port"]))
        taken.listen()
        taken.set_inheritable(True)  # still held after exec: ipykernel's own bind fails
        time.sleep(delay)
    if mode == "sleep":
        time.sleep(600)
    if mode == "deaf":
        import zmq
        connection = json.load(open(kernel_args[kernel_args.index("-f") + 1]))
        context = zmq.Context()
        shell = context.socket(zmq.ROUTER)
        shell.bind(f"tcp://{connection['ip']}:{connection['shell_port']}")
        if shell.poll(60_000):
            shell.recv_multipart()  # the first request, never answered
        shell.close(linger=0)
        context.term()
if mode == "late" and number >= -fails - 1:
    time.sleep(600)  # the first -FAILS - 1 starts answer, the later ones never do
os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *kernel_args])
'''


def install_kernel(jupyter_path: Path, name: str, mode: str, fails: int, delay: float = 0.0) -> Path:
    """A kernelspec `name` in `jupyter_path` running WRAPPER; returns its state folder."""
    jupyter_path.mkdir(parents=True, exist_ok=True)
    wrapper = jupyter_path / "flaky_kernel.py"
    wrapper.write_text(WRAPPER)
    state = jupyter_path / f"{name}-state"
    state.mkdir(parents=True)
    spec = jupyter_path / "kernels" / name
    spec.mkdir(parents=True)
    argv = [sys.executable, str(wrapper), mode, str(state), str(fails), str(delay), "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": name, "language": "python"}))
    return state


def starts(state: Path) -> list[int]:
    path = state / "starts"
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []


def kernel_children() -> set[int]:
    """This process's kernel processes (the CLI runs in-process)."""
    found = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if any("ipykernel" in part or "flaky_kernel" in part for part in child.cmdline()):
                found.add(child.pid)
        except psutil.Error:
            pass
    return found


def the_run(root: Path) -> Path:
    (run,) = (root / PIPE / "runs").iterdir()
    return run


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """Two stages, a -> b, in tmp_path (the current directory); kernelspecs go to tmp_path/jupyter."""
    root = tmp_path / "proj"
    write_nb(
        root / NB,
        code("import os", "setup"),
        code("with open('a.txt', 'w') as a_file:\n    a_file.write('a')\n", "stage:a", "out:a.txt"),
        code(
            "with open('a.txt') as a_in:\n    text = a_in.read()\nwith open('b.txt', 'w') as b_file:\n    b_file.write(text + 'b')\n",
            "stage:b",
            "in:a.txt",
            "out:b.txt",
        ),
    )
    monkeypatch.chdir(root)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return root


# --- kernels that die or hang at start ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode, in_the_log",
    [("exit", "flaky kernel: start 1 refused"), ("port", "Address already in use")],
)
def test_a_kernel_that_dies_at_start_is_replaced_and_the_run_succeeds(project, tmp_path, cli, mode, in_the_log):
    # both kernels of the pool (one running stage + one ahead) fail; each is replaced
    state = install_kernel(tmp_path / "jupyter", "flaky", mode, fails=2, delay=3.0)
    exit_code, out, err = cli("run", NB, "--kernel", "flaky", "--jobs", "1")
    assert exit_code == 0, err
    assert summary(out) == "2 ran, 0 up to date, 0 restored from cache, 0 failed"
    assert (project / "b.txt").read_text() == "ab"
    assert len(starts(state)) == 2 + 2, "two stages, two kernels that died at start"
    log = (the_run(project) / "kernels.log").read_text()
    assert in_the_log in log
    assert log.count("; starting another") == 2, log  # died at start, or (port) said its port was taken
    wait_until_gone(starts(state), "the kernels the pool started end")


@pytest.mark.slow
def test_a_kernel_hung_half_started_by_a_taken_port_is_killed_and_replaced(project, tmp_path, cli, monkeypatch):
    """Seen in CI: a stage failed with `it did not answer within 60 s`, its kernel's iopub port
    taken by another process starting a kernel. The start timeout here would fail the run: the
    kernel is replaced as soon as it says why it cannot answer."""
    monkeypatch.setenv("NB2PIPE_KERNEL_START_TIMEOUT", "300")
    state = install_kernel(tmp_path / "jupyter", "half", "iopub", fails=2, delay=1.0)
    exit_code, out, err = cli("run", NB, "--kernel", "half", "--jobs", "1")
    assert exit_code == 0, err
    assert summary(out) == "2 ran, 0 up to date, 0 restored from cache, 0 failed"
    assert len(starts(state)) == 2 + 2, "two stages, two kernels hung half-started"
    log = (the_run(project) / "kernels.log").read_text()
    assert log.count("(another process took one of its ports); starting another") == 2, log
    wait_until_gone(starts(state), "the kernels the pool started end, the hung ones too")


@pytest.mark.slow
def test_verify_starts_again_a_kernel_hung_half_started_by_a_taken_port(project, tmp_path, cli):
    """verify's plain runs start their kernels through papermill, not the pool: the same hung
    kernel made it wait 60 s and end in a traceback."""
    state = install_kernel(tmp_path / "jupyter", "half", "iopub", fails=1, delay=1.0)
    exit_code, out, err = cli("verify", NB, "--kernel", "half", "--json")
    assert exit_code == 0, err
    (retry,) = json.loads(out)["kernel_start_retries"]
    assert "Address already in use" in retry, retry
    wait_until_gone(starts(state), "the kernels verify started end, the hung one too")


@pytest.mark.slow
def test_a_kernel_that_never_answers_is_a_one_line_error_and_is_killed(project, tmp_path, cli, monkeypatch):
    monkeypatch.setenv("NB2PIPE_KERNEL_START_TIMEOUT", "2")
    state = install_kernel(tmp_path / "jupyter", "sleepy", "sleep", fails=-1)
    exit_code, out, err = cli("run", NB, "--kernel", "sleepy", "--jobs", "1")
    assert exit_code == 1
    assert "Traceback" not in err
    (line,) = error_lines(err)
    assert line.startswith("error: stage 'a' failed: KernelStartError: could not start kernel 'sleepy': it did not answer within 2 s "), (
        line
    )
    assert summary(out) == "0 ran, 0 up to date, 0 restored from cache, 1 failed, 1 not run"
    assert starts(state), "no kernel was started"
    wait_until_gone(starts(state), "the kernels the pool started end")


@pytest.mark.slow
def test_a_kernel_whose_first_request_is_lost_is_asked_again(project, tmp_path, cli, monkeypatch):
    """It answers the next `kernel_info`: asked only once, it made the run wait for the start
    timeout and fail (seen once in CI, two test workers starting kernels at once)."""
    monkeypatch.setenv("NB2PIPE_KERNEL_START_TIMEOUT", "300")
    state = install_kernel(tmp_path / "jupyter", "deaf", "deaf", fails=-1)
    exit_code, out, err = cli("run", NB, "--kernel", "deaf", "--jobs", "1")
    assert exit_code == 0, err
    assert summary(out) == "2 ran, 0 up to date, 0 restored from cache, 0 failed"
    assert (project / "b.txt").read_text() == "ab"
    assert len(starts(state)) == 2, "one kernel per stage, none started again"
    wait_until_gone(starts(state), "the kernels the pool started end")


@pytest.mark.slow
def test_a_kernel_that_always_dies_at_start_gives_up_naming_the_reason(project, tmp_path, cli):
    state = install_kernel(tmp_path / "jupyter", "broken", "exit", fails=-1)
    exit_code, _out, err = cli("run", NB, "--kernel", "broken", "--jobs", "1")
    assert exit_code == 1
    assert "Traceback" not in err
    (line,) = error_lines(err)
    assert re.match(
        r"error: stage 'a' failed: KernelStartError: could not start kernel 'broken': flaky kernel: start \d refused \(exit code 1\); ",
        line,
    ), line
    assert 3 <= len(starts(state)) <= 6, "a bounded number of attempts"
    wait_until_gone(starts(state), "the kernels the pool started end")


# --- kernels that die while a cell runs --------------------------------------------------------

DEATHS = {
    "os._exit": ("import os\nos._exit(3)\n", "exit code 3"),
    "segfault": ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", "killed by SIGSEGV"),
    "oom-kill": ("ballast = bytearray(64 * 2**20)\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", "killed by SIGKILL"),
}


@pytest.mark.slow
@pytest.mark.parametrize("how", list(DEATHS))
def test_a_kernel_that_dies_in_a_cell_is_reported_with_that_cell(tmp_path, monkeypatch, cli, how):
    source, cause = DEATHS[how]
    write_nb(
        tmp_path / NB,
        code("import os", "setup"),
        code("x = 1", "stage:a", "out:a.txt"),
        code(source),
        code("with open('a.txt', 'w') as a_file:\n    a_file.write('never')\n"),
    )
    monkeypatch.chdir(tmp_path)
    before = kernel_children()
    exit_code, out, err = cli("run", NB)
    assert exit_code == 1
    assert "Traceback" not in err and "Kernel died" not in err
    (line,) = error_lines(err)
    match = re.fullmatch(
        r"error: stage 'a' failed in nb\.ipynb cell 3 \(pipelines/nb/stages/a\.py\): "
        rf"DeadKernelError: the kernel died while running this cell \({cause}[^)]*\); open (\S+)",
        line,
    )
    assert match, line
    assert not (tmp_path / "a.txt").exists()
    # the executed notebook names the cell too: papermill's banner, the error in the cell, nothing after it
    executed = nbformat.read(match[1], as_version=4)
    assert "An Exception was encountered" in executed.cells[0].source
    (died,) = [c for c in executed.cells if c.metadata.get("title") == "nb.ipynb cell 3"]
    errors = [o for o in died.outputs if o.output_type == "error"]
    assert [(e.ename, cause in e.evalue) for e in errors] == [("DeadKernelError", True)]
    (after,) = [c for c in executed.cells if c.metadata.get("title") == "nb.ipynb cell 4"]
    assert after.execution_count is None and after.outputs == []
    exit_code, out, err = cli("status", PIPE, "--json")
    (stage,) = json.loads(out)["stages"]
    assert "the kernel died while running this cell" in " ".join(stage["reasons"])
    wait_until_gone(kernel_children() - before, "the kernel that died and the pool's other kernels end")


@pytest.mark.slow
def test_a_dead_kernel_does_not_stop_the_independent_stages_with_keep_going(tmp_path, monkeypatch, cli):
    write_nb(
        tmp_path / NB,
        code("import os", "setup"),
        code("os._exit(1)", "stage:dies"),
        code("with open('c.txt', 'w') as c_file:\n    c_file.write('c')\n", "stage:c", "out:c.txt"),
    )
    monkeypatch.chdir(tmp_path)
    exit_code, out, err = cli("run", NB, "--keep-going", "--jobs", "1")
    assert exit_code == 1
    assert summary(out) == "1 ran, 0 up to date, 0 restored from cache, 1 failed"
    assert (tmp_path / "c.txt").read_text() == "c"
    (line,) = error_lines(err)
    assert "stage 'dies' failed in nb.ipynb cell 2 " in line and "(exit code 1)" in line, line


# --- the same for one stage run by another engine (DVC, Airflow, Kubeflow) ---------------------


@pytest.mark.slow
def test_a_stage_run_for_another_engine_reports_a_dead_kernel_with_its_cell(tmp_path, monkeypatch, cli):
    write_nb(
        tmp_path / NB,
        code("import os", "setup"),
        code("x = 1", "stage:a"),
        code("import os\nos._exit(3)\n"),
    )
    monkeypatch.chdir(tmp_path)
    exit_code, _, err = cli("export", NB)
    assert exit_code == 0, err
    done = subprocess.run(
        [sys.executable, "-m", "nb2pipe.run.single", PIPE, "a"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = error_lines(done.stderr)
    assert line == (
        f"error: stage 'a' failed in nb.ipynb cell 3 ({PIPE}/stages/a.py): DeadKernelError: the kernel died while running "
        f"this cell (exit code 3); open {PIPE}/.nb2pipe/export-runs/a.ipynb"
    )
    assert (tmp_path / PIPE / ".nb2pipe" / "export-runs" / "a.ipynb").is_file()


@pytest.mark.slow
def test_a_stage_run_for_another_engine_gets_a_kernel_that_answers(project, tmp_path, cli):
    state = install_kernel(tmp_path / "jupyter", "python3", "exit", fails=1, delay=3.0)  # the pipeline's kernel
    exit_code, _, err = cli("export", NB)
    assert exit_code == 0, err
    done = subprocess.run(
        [sys.executable, "-m", "nb2pipe.run.single", PIPE, "a"], capture_output=True, text=True, timeout=300, env=os.environ
    )
    assert done.returncode == 0, done.stderr
    assert (project / "a.txt").read_text() == "a"
    assert len(starts(state)) == 2, "the kernel that died at start was replaced"


def test_a_start_timeout_that_is_not_a_number_is_a_usage_error(project, cli, monkeypatch):
    monkeypatch.setenv("NB2PIPE_KERNEL_START_TIMEOUT", "soon")
    exit_code, _, err = cli("run", NB)
    assert exit_code == 2
    assert error_lines(err) == ["error: NB2PIPE_KERNEL_START_TIMEOUT='soon' is not a number of seconds; set it to e.g. 120, or unset it"]
    assert "Traceback" not in err


def test_the_installed_kernels_are_those_jupyter_client_finds(tmp_path, monkeypatch):
    """nb2pipe looks for kernelspecs without importing jupyter_client (kernels.installed_kernels):
    it finds what KernelSpecManager finds, in JUPYTER_PATH and IPython's folder, names lower-cased,
    folders without a kernel.json left out, this Python's kernel always."""
    from jupyter_client.kernelspec import KernelSpecManager

    from nb2pipe.run.kernels import installed_kernels

    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = json.dumps({"argv": argv, "display_name": "x", "language": "python"})
    for folder, name in ((tmp_path / "data" / "kernels", "Other-Env"), (tmp_path / "ipython" / "kernels", "from-ipython")):
        (folder / name).mkdir(parents=True)
        (folder / name / "kernel.json").write_text(spec)
    (tmp_path / "data" / "kernels" / "no-spec-here").mkdir()
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "data"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    found = installed_kernels()
    assert found == set(KernelSpecManager().find_kernel_specs())
    assert {"other-env", "from-ipython", "python3"} <= found and "no-spec-here" not in found
