"""Per-stage limits enforced while a pipeline runs (issue 17): `timeout:`, `cell-timeout:`,
`memory:`, `retries:` and `allow-failure`, for notebook and command stages.

Real kernels, papermill and child processes; the memory stages really allocate 3 GiB. Limits
are short (seconds) so the tests are quick, but nothing here measures time: a stage over its
limit sleeps far longer than the limit, and a stage under it does next to nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import nbformat
import pytest

from conftest import code, write_nb
from helpers import run_dirs, run_events, stage_status, subprocess_env, summary, wait_until, wait_until_gone
from nb2pipe.errors import StageError
from nb2pipe.run.limits import CELL_TIMEOUT, OUT_OF_MEMORY, STAGE_TIMEOUT, Stopped, failure
from nb2pipe.run.runner import RunResult
from nb2pipe.vocabulary import Outcome

pytestmark = pytest.mark.slow

NB = "nb.ipynb"
PIPE = "pipelines/nb"


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def _only_run(pipe: Path) -> list[dict]:
    (run,) = run_dirs(pipe)
    return run_events(run)


def _kernels(events: list[dict], stage: str) -> set[int]:
    return {e["kernel_pid"] for e in events if e["event"] == "cell" and e["stage"] == stage and e.get("kernel_pid")}


def _error_outputs(executed: Path) -> list[tuple[str, str]]:
    cells = nbformat.read(executed, as_version=4).cells
    return [(o.ename, o.evalue) for c in cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


# --- timeout and cell-timeout -------------------------------------------------------------------

# cells 1-2 setup and parameters; stage `whole` (cells 3-4) with timeout:20s, stage `percell`
# (cells 5-6) with cell-timeout:3s; each writes its out, then sleeps `nap` seconds
TIMEOUTS = (
    code("import time", "setup"),
    code("nap = 0", "parameters"),
    code("with open('whole.txt', 'w') as whole_file:\n    whole_file.write('partial')\n",
         "stage:whole", "timeout:20s", "out:whole.txt"),
    code("time.sleep(nap)\n"),
    code("with open('percell.txt', 'w') as cell_file:\n    cell_file.write('partial')\n",
         "stage:percell", "cell-timeout:3s", "out:percell.txt"),
    code("time.sleep(nap)\n"),
)  # fmt: skip


def test_a_stage_over_its_timeout_or_a_cell_over_its_cell_timeout_is_stopped_and_named_with_its_cell(tmp_path, monkeypatch, cli):
    write_nb(tmp_path / NB, *TIMEOUTS)
    monkeypatch.chdir(tmp_path)
    for out in ("whole.txt", "percell.txt"):  # what was there before the run is there after it failed
        (tmp_path / out).write_text("before")
    exit_code, out, err = cli("run", NB, "-p", "nap=600", "--keep-going")
    assert exit_code == 1, err
    assert summary(out) == "0 ran, 0 up to date, 0 restored from cache, 2 failed"
    errors = _errors(err)
    whole = next(line for line in errors if "'whole'" in line)
    match = re.fullmatch(r"error: stage 'whole' timed out after 20s in cell 4; open (\S+)", whole)
    assert match, errors
    assert ("StageTimeout", "timed out after 20s in cell 4") in _error_outputs(Path(match[1]))
    percell = next(line for line in errors if "'percell'" in line)
    match = re.fullmatch(
        r"error: stage 'percell' failed in nb\.ipynb cell 6 \(pipelines/nb/stages/percell\.py\): "
        r"CellTimeout: cell 6 timed out after 3s; open (\S+)",
        percell,
    )
    assert match, errors
    assert ("CellTimeout", "cell 6 timed out after 3s") in _error_outputs(Path(match[1]))
    assert (tmp_path / "whole.txt").read_text() == (tmp_path / "percell.txt").read_text() == "before"
    report = stage_status(cli, PIPE)
    assert report["whole"]["state"] == report["percell"]["state"] == "failed"
    assert report["whole"]["reasons"][0] == "last run failed: StageTimeout: timed out after 20s in cell 4"
    events = _only_run(tmp_path / PIPE)
    wait_until_gone(_kernels(events, "whole") | _kernels(events, "percell"), "the stopped stages' kernels end")


# --- retries ------------------------------------------------------------------------------------

# fails on its first try (leaving a marker the next try finds: files stay as a failed try left them)
FLAKY = (
    "import os\n"
    "marker = 'flaky' + '.marker'\n"
    "if not os.path.exists(marker):\n"
    "    open(marker, 'w').write('tried')\n"
    "    raise RuntimeError('first try fails')\n"
    "with open('flaky.txt', 'w') as flaky_file:\n"
    "    flaky_file.write('done')\n"
)


def test_a_stage_that_fails_once_passes_with_retries_1_and_both_tries_are_in_the_history(tmp_path, monkeypatch, cli):
    write_nb(tmp_path / NB, code(FLAKY, "stage:flaky", "retries:1", "out:flaky.txt"))
    monkeypatch.chdir(tmp_path)
    exit_code, out, err = cli("run", NB)
    assert exit_code == 0, err
    assert summary(out) == "1 ran, 0 up to date, 0 restored from cache, 0 failed"
    trying_again = r"^try 1 of 2: stage 'flaky' failed in .*: RuntimeError: first try fails; open \S+flaky\.try-1\.ipynb; trying again$"
    assert re.search(trying_again, err, re.M), err
    assert (tmp_path / "flaky.txt").read_text() == "done"
    events = _only_run(tmp_path / PIPE)
    (retry,) = [e for e in events if e["event"] == "stage_retry"]
    assert (retry["stage"], retry["try"], retry["tries"]) == ("flaky", 1, 2)
    assert StageError.from_json(retry["stage_error"]).exception == "RuntimeError: first try fails"
    assert ("RuntimeError", "first try fails") in _error_outputs(Path(retry["notebook"]))  # the failed try's notebook is kept
    (finished,) = [e for e in events if e["event"] == "stage_finished"]
    assert (finished["outcome"], finished["try"], finished["tries"]) == ("ran", 2, 2)
    assert len(_kernels(events, "flaky")) == 2, "each try runs in a fresh kernel"
    exit_code, out, err = cli("runs", PIPE, "--json")
    assert exit_code == 0, err
    (stage,) = json.loads(out)[0]["stages"]
    assert stage["outcome"] == "ran"
    assert [(t["try"], "RuntimeError: first try fails" in t["error"]) for t in stage["tries"]] == [(1, True)]
    exit_code, out, err = cli("show", PIPE, "latest")
    assert exit_code == 0, err
    assert re.search(r"flaky\s+ran .*\n\s+try 1 failed  stage 'flaky' failed in .*RuntimeError: first try fails", out), out


# --- allow-failure ------------------------------------------------------------------------------

DOOMED = "with open('doomed.txt', 'w') as doomed_file:\n    doomed_file.write('half')\nraise RuntimeError('always fails')\n"
AFTER = "with open('doomed.txt') as doomed_in, open('after.txt', 'w') as after_file:\n    after_file.write(doomed_in.read())\n"
FREE = "with open('free.txt', 'w') as free_file:\n    free_file.write('free')\n"


def test_an_allowed_failure_skips_its_dependants_and_the_run_succeeds_after_its_last_try(tmp_path, monkeypatch, cli):
    write_nb(
        tmp_path / NB,
        code(DOOMED, "stage:doomed", "allow-failure", "retries:1", "out:doomed.txt"),
        code(AFTER, "stage:after", "in:doomed.txt", "out:after.txt"),
        code(FREE, "stage:free", "out:free.txt"),
    )
    monkeypatch.chdir(tmp_path)
    (tmp_path / "doomed.txt").write_text("before")
    exit_code, out, err = cli("run", NB, "--jobs", "1")
    assert exit_code == 0, err
    assert summary(out) == "1 ran, 0 up to date, 0 restored from cache, 1 failed (allowed), 1 not run"
    assert _errors(err) == [], "an allowed failure is no error of the run"
    assert "RuntimeError: always fails" in err and "(allow-failure: its dependants are not run, the run goes on)" in err
    assert (tmp_path / "doomed.txt").read_text() == "before"  # the last try's failure put the out back
    assert not (tmp_path / "after.txt").exists() and (tmp_path / "free.txt").read_text() == "free"
    events = _only_run(tmp_path / PIPE)
    assert [(e["try"], e["tries"]) for e in events if e["event"] == "stage_retry"] == [(1, 2)]
    (failed,) = [e for e in events if e["event"] == "stage_failed"]
    assert (failed["stage"], failed["try"], failed["tries"], failed["allowed"]) == ("doomed", 2, 2, True)
    report = stage_status(cli, PIPE)
    assert report["doomed"]["state"] == "failed" and report["after"]["state"] == "never-run"
    exit_code, out, err = cli("runs", PIPE, "--json")
    run = json.loads(out)[0]
    assert run["status"] == "ok"
    stages = {s["name"]: s for s in run["stages"]}
    assert stages["doomed"]["outcome"] == "failed" and "RuntimeError: always fails" in stages["doomed"]["error"]
    assert [t["try"] for t in stages["doomed"]["tries"]] == [1]


@pytest.mark.parametrize(
    ("failed", "allowed", "words"),
    [(1, 1, "1 failed (allowed)"), (3, 1, "3 failed (1 allowed)"), (2, 0, "2 failed")],
)
def test_the_summary_says_how_many_failures_were_allowed(failed, allowed, words):
    outcomes = {f"s{i}": Outcome.FAILED for i in range(failed)}
    result = RunResult("r", outcomes, {}, list(outcomes), frozenset(list(outcomes)[:allowed]))
    assert result.summary() == f"0 ran, 0 up to date, 0 restored from cache, {words}"
    assert result.ok == (allowed == failed)


# --- the words of each limit ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stopped", "cell", "when", "evalue"),
    [
        (Stopped(STAGE_TIMEOUT, "30m"), "cell 4", "", "timed out after 30m in cell 4"),
        (Stopped(STAGE_TIMEOUT, "30m"), None, "between cells", "timed out after 30m between cells"),
        (Stopped(STAGE_TIMEOUT, "2s"), None, "", "timed out after 2s"),
        (Stopped(CELL_TIMEOUT, "5m"), "cell 4", "", "cell 4 timed out after 5m"),
        (Stopped(CELL_TIMEOUT, "5m"), "the cell 'nb2pipe: save variables'", "", "the cell 'nb2pipe: save variables' timed out after 5m"),
        (Stopped(OUT_OF_MEMORY, "1GiB", 1181116006), "cell 4", "", "ran out of memory at cell 4 (limit 1GiB, peak 1.1 GiB)"),
        (Stopped(OUT_OF_MEMORY, "1GiB", 300 * 2**20), None, "", "ran out of memory (limit 1GiB, peak 300 MiB)"),
        (Stopped(OUT_OF_MEMORY, "1GiB"), None, "before its first cell", "ran out of memory before its first cell (limit 1GiB)"),
    ],
)
def test_each_limit_is_worded_with_the_cell_it_stopped(stopped, cell, when, evalue):
    assert failure(stopped, cell, when) == {"ename": stopped.ename, "evalue": evalue}


# --- an interrupt is never retried --------------------------------------------------------------

SLEEPER = "with open('sleeper.txt', 'w') as sleeper_file:\n    sleeper_file.write('started')\ntime.sleep(3600)\n"


def test_an_interrupted_stage_is_not_tried_again(tmp_path, runs):
    write_nb(tmp_path / NB, code("import time", "setup"), code(SLEEPER, "stage:sleeper", "retries:2", "out:sleeper.txt"))
    proc = runs.start(tmp_path, NB, "--jobs", "1")
    runs.wait_until(proc, lambda: (tmp_path / "sleeper.txt").exists(), "the stage starts", seen=lambda: run_dirs(tmp_path / PIPE))
    os.killpg(proc.pid, signal.SIGINT)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    events = _only_run(tmp_path / PIPE)
    assert [e for e in events if e["event"] == "stage_retry"] == []
    assert "trying again" not in err
    wait_until_gone(runs.kernels, "the interrupted stage's kernel ends")


# --- memory -------------------------------------------------------------------------------------

HOG = "hog = bytearray(3 * 2**30)  # zero-filled: every page is touched\ntime.sleep(600)\n"
OUT_OF_MEMORY = re.compile(r"error: stage 'hog' ran out of memory at cell 2 \(limit (\w+), peak (\d+\.\d) GiB\); open (\S+)")


def test_a_stage_over_its_memory_limit_is_stopped_with_the_out_of_memory_line_and_no_kernel_left(tmp_path, monkeypatch, cli):
    write_nb(tmp_path / NB, code("import time", "setup"), code(HOG, "stage:hog", "memory:1GiB"))
    monkeypatch.chdir(tmp_path)
    exit_code, _, err = cli("run", NB)
    assert exit_code == 1, err
    (line,) = _errors(err)
    match = OUT_OF_MEMORY.fullmatch(line)
    assert match and match[1] == "1GiB" and float(match[2]) >= 1.0, line
    (evalue,) = [v for e, v in _error_outputs(Path(match[3])) if e == "OutOfMemory"]
    assert evalue.startswith("ran out of memory at cell 2 (limit 1GiB, peak ")
    assert "DeadKernelError" not in err
    kernels = _kernels(_only_run(tmp_path / PIPE), "hog")
    assert kernels
    wait_until_gone(kernels, "the stopped stage's kernel ends")


def test_memory_without_a_way_to_watch_it_is_one_clear_line(tmp_path, monkeypatch, cli):
    # psutil cannot be taken off this machine, so its import is made to fail here
    write_nb(tmp_path / NB, code("x = 1\n", "stage:hog", "memory:1GiB"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "psutil", None)
    exit_code, _, err = cli("run", NB)
    assert exit_code == 2, err
    assert _errors(err) == [
        "error: stage 'hog' has memory:1GiB, but nb2pipe cannot watch a process's memory here (psutil is not installed); "
        "install psutil, or remove the memory: setting"
    ], err
    assert "Traceback" not in err
    assert not list((tmp_path / PIPE).glob("runs/*/*.ipynb")), "nothing ran"


def _memory_cgroup(limit: int) -> Path | None:
    """A new cgroup (v1 memory controller or v2) limited to `limit` bytes; None where none can be made."""
    for root, limit_file in (("/sys/fs/cgroup/memory", "memory.limit_in_bytes"), ("/sys/fs/cgroup", "memory.max")):
        group = Path(root) / f"nb2pipe-test-{uuid.uuid4().hex[:8]}"
        try:
            group.mkdir()
        except OSError:
            continue
        try:
            (group / limit_file).write_text(str(limit))
            return group
        except OSError:
            group.rmdir()
    return None


def test_a_kernel_the_oom_killer_kills_is_reported_as_out_of_memory(tmp_path):
    group = _memory_cgroup(3 * 2**29)  # 1.5 GiB: the OOM killer strikes before the stage's memory:2GiB
    if group is None:
        pytest.skip("no cgroup memory limit can be set here (needs root and a writable /sys/fs/cgroup)")
    try:
        write_nb(tmp_path / NB, code("import time", "setup"), code(HOG, "stage:hog", "memory:2GiB"))
        procs = str(group / "cgroup.procs")
        done = subprocess.run(
            [sys.executable, "-m", "nb2pipe", "run", NB, "--jobs", "1"],
            cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
            preexec_fn=lambda: Path(procs).write_text(str(os.getpid())),
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        (line,) = _errors(done.stderr)
        match = OUT_OF_MEMORY.fullmatch(line)
        assert match and match[1] == "2GiB", line
        members = group / "cgroup.procs"
        wait_until(lambda: not members.read_text().strip(), "the cgroup's processes end", seen=members.read_text)
    finally:
        with contextlib.suppress(OSError):
            group.rmdir()


# --- command stages -------------------------------------------------------------------------------


def test_a_command_stage_is_stopped_over_its_timeout_and_its_memory(tmp_path, monkeypatch, cli):
    pipe = tmp_path / "pipelines" / "tools"
    pipe.mkdir(parents=True)
    argv = lambda source: json.dumps([sys.executable, "-c", source])  # noqa: E731
    (pipe / "nb2pipe.yaml").write_text(
        "version: 1\nwdir: ../..\nstages:\n"
        f"  sleeper:\n    cmd: {argv('import time; time.sleep(600)')}\n    settings: {{timeout: 2s}}\n"
        f"  hog:\n    cmd: {argv('import time; hog = bytearray(3 * 2**30); time.sleep(600)')}\n    settings: {{memory: 1GiB}}\n"
    )
    monkeypatch.chdir(tmp_path)
    exit_code, _, err = cli("run", "pipelines/tools", "--keep-going")
    assert exit_code == 1, err
    errors = sorted(_errors(err))
    assert re.fullmatch(r"error: stage 'hog' ran out of memory \(limit 1GiB, peak \d+\.\d GiB\); open \S+hog\.log", errors[0]), errors
    assert re.fullmatch(r"error: stage 'sleeper' timed out after 2s; open \S+sleeper\.log", errors[1]), errors


# --- on dask workers ------------------------------------------------------------------------------


@pytest.mark.exports
def test_timeout_and_retries_hold_on_the_workers_of_a_dask_cluster(tmp_path, monkeypatch, cli):
    pytest.importorskip("distributed", reason="dask is an optional extra: pip install 'dask[distributed]'")
    from nb2pipe.run import RunOptions, run_pipeline

    write_nb(
        tmp_path / NB,
        code("import time", "setup"),
        code("time.sleep(600)\n", "stage:sleeper", "timeout:15s"),
        code(FLAKY, "stage:flaky", "retries:1", "out:flaky.txt"),
    )
    monkeypatch.chdir(tmp_path)
    exit_code, _, err = cli("export", NB)
    assert exit_code == 0, err
    events: list[dict] = []
    result = run_pipeline(tmp_path / PIPE, RunOptions(executor="dask", jobs=2, keep_going=True), [events.append])
    assert result.outcomes == {"sleeper": Outcome.FAILED, "flaky": Outcome.RAN}
    assert result.errors["sleeper"].message.startswith("stage 'sleeper' timed out after 15s in cell 2; open ")
    assert [(e["stage"], e["try"]) for e in events if e["event"] == "stage_retry"] == [("flaky", 1)]
    assert (tmp_path / "flaky.txt").read_text() == "done"


# --- what show says ---------------------------------------------------------------------------------


def test_show_names_each_stage_s_settings_over_the_pipeline_defaults(tmp_path, monkeypatch, cli):
    nb = write_nb(
        tmp_path / NB,
        code("x = 1\n", "stage:load", "timeout:30m", "retries:2", "allow-failure"),
        code("y = 2\n", "stage:fit", "memory:4GiB", "env:MODE=fast", "secret:API_TOKEN"),
    )
    data = json.loads(nb.read_text())
    data["metadata"]["nb2pipe"] = {"defaults": {"cell-timeout": "5m"}}
    nb.write_text(json.dumps(data))
    monkeypatch.chdir(tmp_path)
    assert cli("export", NB)[0] == 0
    exit_code, out, err = cli("show", PIPE, "--json")
    assert exit_code == 0, err
    settings = {s["name"]: s["settings"] for s in json.loads(out)["stages"]}
    assert settings == {
        "load": {"timeout": "30m", "cell-timeout": "5m", "retries": 2, "allow-failure": True},
        "fit": {"cell-timeout": "5m", "memory": "4GiB", "env": {"MODE": "fast"}, "secret": ["API_TOKEN"]},
    }
    exit_code, out, err = cli("show", PIPE)
    assert exit_code == 0, err
    assert re.search(r"^\s+settings: +timeout:30m cell-timeout:5m retries:2 allow-failure$", out, re.M), out
    assert re.search(r"^\s+settings: +cell-timeout:5m memory:4GiB env:MODE=fast secret:API_TOKEN$", out, re.M), out
