"""Nothing lost: whatever was at a stage's outs before it started is exactly there after it fails or
is interrupted, nothing outside the project is ever written or deleted, and what a run records is
what its stages consumed when they started. Real kernels and papermill throughout.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import stat
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from conftest import code, md, write_nb
from helpers import in_mount_namespace, one_error_line, read_only_bind_mount, run_cli, signal_another_thread, stage_status
from nb2pipe.cli import main

NB = "nb.ipynb"
PIPE = "pipelines/nb"


def tree(folder: Path) -> dict[str, object]:
    """Everything under `folder` as a user would see it: files with their bytes, links with their
    targets, folders (also empty ones)."""
    found: dict[str, object] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            full = Path(root) / name
            rel = full.relative_to(folder).as_posix()
            if full.is_symlink():
                found[rel] = ("link", os.readlink(full))
            elif full.is_dir():
                found[rel] = "folder"
            else:
                found[rel] = full.read_bytes()
    return found


def lock_of(root: Path) -> dict:
    return yaml.safe_load((root / PIPE / "nb2pipe.lock").read_text())["stages"]


# --- a failing first run leaves what the user had --------------------------------------------


def test_a_failing_first_run_leaves_a_hand_made_out_file_exactly_as_it_was(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    result = tmp_path / "result.csv"
    result.write_text("my hand-made result\n")
    os.utime(result, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    write_nb(tmp_path / NB, code("open('result.csv', 'w').write('half')\nraise ValueError('boom')", "stage:make", "out:result.csv"))
    exit_code, _out, err = cli("run", NB)
    assert exit_code == 1 and "ValueError: boom" in err
    assert result.read_text() == "my hand-made result\n"
    assert result.stat().st_mtime_ns == 1_600_000_000_000_000_000


def test_an_appended_log_survives_a_stage_that_fails_after_appending(tmp_path, monkeypatch, cli):
    """An untagged notebook appends to the user's experiment log, then fails."""
    monkeypatch.chdir(tmp_path)
    log = tmp_path / "experiments.csv"
    log.write_text("run,score\n1,0.8\n2,0.9\n")
    write_nb(
        tmp_path / NB,
        md("# Experiments"),
        code("with open('experiments.csv', 'a') as log:\n    log.write('3,0.1\\n')\nraise RuntimeError('diverged')"),
    )
    exit_code, _, err = cli("run", NB)
    assert exit_code == 1 and "RuntimeError: diverged" in err
    assert log.read_text() == "run,score\n1,0.8\n2,0.9\n"


def test_a_folder_out_is_put_back_file_for_file_after_a_failure(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    models = tmp_path / "models"
    (models / "old" / "deep").mkdir(parents=True)
    (models / "empty").mkdir()
    (models / "a.bin").write_bytes(b"\x00\x01keep")
    (models / "old" / "deep" / "b.txt").write_text("b")
    (models / "gone.txt").write_text("the stage deletes me")
    (models / "alias.txt").symlink_to("a.bin")
    before = tree(models)
    write_nb(
        tmp_path / NB,
        code(
            "import os, shutil\n"
            "open('models/a.bin', 'wb').write(b'overwritten')\n"
            "os.remove('models/gone.txt')\n"
            "shutil.rmtree('models/empty')\n"
            "os.makedirs('models/new/inner')\n"
            "open('models/new/inner/c.txt', 'w').write('c')\n"
            "open('models/d.txt', 'w').write('d')\n"
            "raise ValueError('half way')",
            "stage:train", "out:models",
        ),
    )
    exit_code, _, err = cli("run", NB)
    assert exit_code == 1 and "ValueError: half way" in err
    assert tree(models) == before


def test_outs_that_did_not_exist_are_removed_and_a_link_created_by_the_stage_too(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("not nb2pipe's")
    write_nb(
        tmp_path / NB,
        code(f"import os\nos.symlink({str(outside)!r}, 'made')\nraise ValueError('x')", "stage:s", "out:made"),
    )
    exit_code, _, err = cli("run", NB)
    assert exit_code == 1 and "ValueError: x" in err
    assert not os.path.lexists(tmp_path / "made")
    assert (outside / "precious.txt").read_text() == "not nb2pipe's"


def test_an_out_that_is_a_symlink_out_of_the_project_is_refused_and_left_alone(tmp_path, monkeypatch, cli):
    """`data` is the user's link to a big disk, declared as an out: nb2pipe would write through
    it, so the run is refused before anything runs; the link and the disk stay as they were."""
    monkeypatch.chdir(tmp_path)
    disk = tmp_path.parent / f"{tmp_path.name}-disk"
    disk.mkdir()
    (disk / "keep.txt").write_text("on the big disk")
    (tmp_path / "data").symlink_to(disk)
    write_nb(tmp_path / NB, code("open('data/new.txt', 'w').write('x')\nraise ValueError('never runs')", "stage:s", "out:data"))
    exit_code, _, err = cli("run", NB)
    assert exit_code == 2
    assert "'data' is outside the project: through a symlink" in one_error_line(err)
    assert (tmp_path / "data").is_symlink() and os.readlink(tmp_path / "data") == str(disk)
    assert sorted(p.name for p in disk.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize("out", ["./", ".", "..", "../elsewhere", "sub/../..", "/tmp/x"])
def test_outs_that_are_the_project_a_parent_or_outside_are_refused_before_anything_runs(tmp_path, monkeypatch, out):
    """Written by hand into nb2pipe.yaml (export refuses such tags too): one line, exit 2, nothing
    run, nothing deleted."""
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    (project / "keep.txt").write_text("keep")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "keep.txt").write_text("keep")
    write_nb(project / NB, code("open('x.txt', 'w').write('x')\nraise ValueError('never runs')", "stage:s", "out:x.txt"))
    assert main(["export", NB]) == 0
    spec_file = project / PIPE / "nb2pipe.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    spec["stages"]["s"]["outs"] = [out]
    spec_file.write_text(yaml.safe_dump(spec))
    exit_code, _, err = run_cli("run", PIPE, "--force")
    assert exit_code == 2
    line = one_error_line(err)
    assert f"'{out}'" in line or f"'{out.rstrip('/')}'" in line, line
    assert (project / "keep.txt").read_text() == "keep" and (project / NB).is_file()
    assert (tmp_path / "elsewhere" / "keep.txt").read_text() == "keep"
    assert not (project / "x.txt").exists()


# --- interrupted and killed runs ------------------------------------------------------------

SLOW = (
    "import os, time\n"
    "open('result.csv', 'w').write('half written')\n"
    "open('started', 'w').close()\n"
    "while not os.path.exists('go'):\n"
    "    time.sleep(0.05)\n"
)


def wait_for(path: Path, proc: subprocess.Popen, runs, timeout: float = 120) -> None:
    """Wait until the stage of the run `proc` has made `path`; fail if the run ends first."""
    runs.wait_until(proc, path.exists, f"the stage makes {path.name}", timeout=timeout)


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    "how",
    ["sigterm", "sigint", "sigint-inherited-ignored", "sigterm-inherited-ignored", "sigint-to-another-thread"],
)
def test_an_interrupted_first_run_puts_the_users_file_back(tmp_path, how, runs):
    """However the runner was started: a server or a script may start it with SIGINT ignored."""
    (tmp_path / "result.csv").write_text("mine\n")
    write_nb(tmp_path / NB, code(SLOW, "stage:slow", "out:result.csv"))
    popen = {"preexec_fn": ignore_sigint} if "ignored" in how else {}
    if how == "sigterm-inherited-ignored":
        popen = {"preexec_fn": lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN)}
    proc = runs.start(tmp_path, NB, **popen)
    wait_for(tmp_path / "started", proc, runs)
    assert (tmp_path / "result.csv").read_text() == "half written"
    if how == "sigint-to-another-thread":  # the OS may hand a Ctrl-C to any thread
        signal_another_thread(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT if "sigint" in how else signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert (tmp_path / "result.csv").read_text() == "mine\n"
    assert not (tmp_path / PIPE / ".nb2pipe" / "journal.json").exists()
    assert not (tmp_path / PIPE / "nb2pipe.lock").exists()


def test_after_kill_9_of_a_first_run_the_next_run_puts_the_users_file_back(tmp_path, monkeypatch, cli, runs):
    (tmp_path / "result.csv").write_text("mine\n")
    write_nb(tmp_path / NB, code(SLOW, "stage:slow", "out:result.csv"))
    proc = runs.start(tmp_path, NB)
    wait_for(tmp_path / "started", proc, runs)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert (tmp_path / "result.csv").read_text() == "half written"
    monkeypatch.chdir(tmp_path)
    exit_code, _, err = cli("run", PIPE, "--dry-run")
    assert exit_code == 0, err
    assert "recovered stage 'slow'" in err
    assert (tmp_path / "result.csv").read_text() == "mine\n"


# --- what a run records is what the stage saw when it started ---------------------------------

READS_WHILE_WAITING = (
    "import os, time\n"
    "text = open('in.txt').read()\n"
    "open('started', 'w').close()\n"
    "while not os.path.exists('go'):\n"
    "    time.sleep(0.05)\n"
    "open('out.txt', 'w').write(text)\n"
)


def test_an_input_edited_while_its_stage_runs_leaves_the_stage_stale(tmp_path, monkeypatch, cli, runs):
    (tmp_path / "in.txt").write_text("v1")
    write_nb(tmp_path / NB, code(READS_WHILE_WAITING, "stage:copy", "in:in.txt", "out:out.txt"))
    proc = runs.start(tmp_path, NB)
    wait_for(tmp_path / "started", proc, runs)
    (tmp_path / "in.txt").write_text("v2, edited while the stage ran")
    (tmp_path / "go").touch()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert (tmp_path / "out.txt").read_text() == "v1"
    monkeypatch.chdir(tmp_path)
    assert stage_status(cli, PIPE)["copy"]["reasons"] == ["dep changed: in.txt"]
    # the history holds the hash of what the stage read: v1's
    from nb2pipe.hashing import hash_bytes

    _exit_code, out, err = cli("show", PIPE, "latest", "--json")
    (stage,) = json.loads(out)["stages"]
    assert stage["lock"]["deps"]["in.txt"] == hash_bytes(b"v1")


def test_a_failed_stage_keeps_the_inputs_it_started_with_in_the_history(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.txt").write_text("input")
    write_nb(tmp_path / NB, code("alpha = 2", "parameters"), code("open('in.txt').read()\nraise ValueError(alpha)", "stage:s", "in:in.txt"))
    assert cli("run", NB)[0] == 1
    _exit_code, out, _err = cli("show", PIPE, "latest", "--json")
    (stage,) = json.loads(out)["stages"]
    from nb2pipe.hashing import hash_bytes

    assert stage["outcome"] == "failed"
    assert stage["lock"]["deps"] == {"in.txt": hash_bytes(b"input")}
    assert stage["lock"]["params"] == {"alpha": 2}
    assert stage["fingerprint"].startswith("blake3:")


def test_a_second_run_of_a_notebook_does_not_re_export_under_the_running_pipeline(tmp_path, runs):
    write_nb(tmp_path / NB, code(SLOW, "stage:slow", "out:result.csv"))
    proc = runs.start(tmp_path, NB)
    wait_for(tmp_path / "started", proc, runs)
    script = tmp_path / PIPE / "stages" / "slow.py"
    before = script.read_bytes()
    write_nb(tmp_path / NB, code(SLOW + "print('edited')\n", "stage:slow", "out:result.csv"))
    exit_code, _, err = run_cli("run", NB, cwd=tmp_path)
    assert exit_code == 1 and f"already running (pid {proc.pid})" in err
    assert "exported" not in err
    assert script.read_bytes() == before
    (tmp_path / "go").touch()
    assert proc.wait(timeout=120) == 0


# --- staleness details -----------------------------------------------------------------------


def test_a_stage_that_appends_to_a_file_it_reads_is_up_to_date_after_it_ran(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "log.txt").write_text("start\n")
    write_nb(tmp_path / NB, code("open('log.txt', 'a').write('line\\n')", "stage:log", "in:log.txt", "out:log.txt"))
    assert cli("run", NB)[0] == 0
    assert stage_status(cli, PIPE)["log"]["reasons"] == []
    _exit_code, out, _ = cli("run", NB)
    assert out.strip().splitlines()[-1] == "0 ran, 1 up to date, 0 restored from cache, 0 failed"
    assert (tmp_path / "log.txt").read_text() == "start\nline\n"
    (tmp_path / "log.txt").write_text("start\nline\nby hand\n")
    assert stage_status(cli, PIPE)["log"]["reasons"] == ["out modified: log.txt"]


def test_a_nan_parameter_is_up_to_date_after_its_run(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    write_nb(tmp_path / NB, code("threshold = 1.0", "parameters"), code("print(threshold)", "stage:s"))
    assert cli("run", NB, "-p", "threshold=nan")[0] == 0
    _exit_code, out, _err = cli("status", PIPE, "--json", "-p", "threshold=nan")
    assert json.loads(out)["stages"][0]["reasons"] == []


@pytest.mark.parametrize("jobs", ["-1", "0"])
def test_jobs_below_one_is_refused(tmp_path, monkeypatch, jobs):
    monkeypatch.chdir(tmp_path)
    write_nb(tmp_path / NB, code("x = 1", "stage:s"))
    exit_code, _, err = run_cli("run", NB, "--jobs", jobs)
    assert exit_code == 2
    assert f"--jobs {jobs}" in one_error_line(err)


# --- state files of the wrong shape ---------------------------------------------------------


@pytest.fixture
def ran(tmp_path, monkeypatch, cli) -> Path:
    monkeypatch.chdir(tmp_path)
    write_nb(tmp_path / NB, code("open('a.txt', 'w').write('a')", "stage:a", "out:a.txt"))
    exit_code, _, err = cli("run", NB)
    assert exit_code == 0, err
    return tmp_path


def write_lock(root: Path, stages) -> None:
    (root / PIPE / "nb2pipe.lock").write_text(yaml.safe_dump({"schema": 1, "stages": stages}))


@pytest.mark.parametrize(
    "entry",
    [[1, 2], "text", {"code": 5}, {"code": "x", "params": [1]}, {"code": "x", "deps": ["a"]}, {"code": "x", "outs": {"a.txt": 3}}, None],
)
def test_a_lock_entry_of_the_wrong_shape_is_one_line(ran, entry):
    write_lock(ran, {"a": entry})
    for argv in (("status", PIPE), ("run", PIPE), ("checkout", PIPE)):
        exit_code, _, err = run_cli(*argv)
        assert exit_code == 2, (argv, err)
        assert "nb2pipe.lock" in one_error_line(err) and "stage 'a'" in err


@pytest.mark.parametrize("content", [b"\xff\xfe not utf-8", b"schema: 99\nstages: {}\n", b"- a\n- b\n", b"schema: one\n"])
def test_a_damaged_or_newer_lock_file_is_one_line(ran, content):
    (ran / PIPE / "nb2pipe.lock").write_bytes(content)
    exit_code, _, err = run_cli("status", PIPE)
    assert exit_code == 2
    line = one_error_line(err)
    assert "nb2pipe.lock" in line
    if b"99" in content:
        assert "upgrade nb2pipe" in line


@pytest.mark.parametrize("content", ['[1, 2]', '{"a": 5}', '{"a": {"outcome": 3}}', "\xff"])
def test_last_json_of_the_wrong_shape_does_not_stop_status_or_run(ran, content):
    (ran / PIPE / ".nb2pipe" / "last.json").write_text(content, encoding="latin-1")
    assert run_cli("status", PIPE)[0] == 0
    exit_code, _out, err = run_cli("run", PIPE)
    assert exit_code == 0, err


@pytest.mark.parametrize("content", ['[1]', '{"stages": 5}', '{"stages": {"a": {"outs": {"a.txt": 7}}}}', "{not json"])
def test_a_damaged_journal_stops_the_run_with_the_way_out(ran, content):
    journal = ran / PIPE / ".nb2pipe" / "journal.json"
    journal.write_text(content)
    exit_code, _, err = run_cli("run", PIPE)
    assert exit_code == 2
    assert "journal.json" in one_error_line(err) and "nb2pipe checkout" in err
    assert (ran / "a.txt").read_text() == "a"


def test_a_damaged_history_never_stops_a_run(ran, cli):
    db = ran / PIPE / ".nb2pipe" / "runs.db"
    for extra in ("-wal", "-shm"):
        Path(str(db) + extra).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    exit_code, out, err = run_cli("run", PIPE, "--force")
    assert exit_code == 0, err
    assert "warning: the run history" in err and "mv " in err
    assert out.strip().splitlines()[-1].startswith("1 ran")
    for argv in (("runs", PIPE), ("show", PIPE, "latest"), ("tag", PIPE, "latest", "x")):
        exit_code, _, err = run_cli(*argv)
        assert exit_code == 2
        assert "is damaged" in one_error_line(err) and ".damaged" in err


def test_run_refs_are_not_sql_patterns(ran, cli):
    for ref in ("%", "_", "2%", "____"):
        exit_code, _, err = cli("show", PIPE, ref)
        assert exit_code == 2 and f"no run or tag '{ref}'" in err


def test_checkout_never_writes_where_a_hand_edited_lock_points_outside(ran, cli):
    entry = lock_of(ran)["a"]
    entry["outs"] = {"../../escaped.txt": entry["outs"]["a.txt"], "a.txt": entry["outs"]["a.txt"]}
    write_lock(ran, {"a": entry})
    (ran / "a.txt").unlink()
    exit_code, _out, err = cli("checkout", PIPE)
    assert exit_code == 0, err
    assert (ran / "a.txt").read_text() == "a"
    assert not (ran.parent.parent / "escaped.txt").exists()


def test_putting_an_out_back_never_touches_a_users_file_beside_it(ran, cli):
    """An out is put back through a temporary file beside it. A user's file that happens to have
    the name nb2pipe once gave that file (`.<out>.<pid>.tmp`) is neither overwritten nor moved,
    by checkout or by the restore after a failure, and no temporary file is left behind."""
    mine = ran / f".a.txt.{os.getpid()}.tmp"
    mine.write_text("mine")
    (ran / "a.txt").unlink()
    exit_code, _, err = cli("checkout", PIPE)
    assert exit_code == 0, err
    assert (ran / "a.txt").read_text() == "a" and mine.read_text() == "mine"
    write_nb(ran / NB, code("open('a.txt', 'w').write('half')\nraise ValueError('boom')", "stage:a", "out:a.txt"))
    exit_code, _, err = cli("run", NB)
    assert exit_code == 1 and "ValueError: boom" in err
    assert (ran / "a.txt").read_text() == "a" and mine.read_text() == "mine"
    assert sorted(p.name for p in ran.iterdir() if p.is_file()) == sorted([mine.name, "a.txt", NB])


def test_an_out_whose_name_is_as_long_as_a_name_can_be_is_put_back(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    name = "r" * 251 + ".txt"  # 255 bytes: the longest name Linux allows
    (tmp_path / name).write_text("my result")
    write_nb(tmp_path / NB, code(f"open({name!r}, 'w').write('half')\nraise ValueError('boom')", "stage:make", f"out:{name}"))
    exit_code, _, err = cli("run", NB)
    assert exit_code == 1 and "ValueError: boom" in err and "Traceback" not in err
    assert (tmp_path / name).read_text() == "my result"


def test_wait_says_what_it_waits_for(tmp_path, runs):
    write_nb(tmp_path / NB, code(SLOW, "stage:slow", "out:result.csv"))
    proc = runs.start(tmp_path, NB)
    wait_for(tmp_path / "started", proc, runs)
    waiter = runs.start(tmp_path, PIPE, "--wait")
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(waiter.stderr.readline()), daemon=True).start()
    try:
        seen = lines.get(timeout=120)  # said at once, while the other run still holds the lock
    except queue.Empty:
        pytest.fail("the waiting run said nothing on stderr within 120 s")
    assert "waiting for the run of pipeline" in seen and f"(pid {proc.pid})" in seen
    assert waiter.poll() is None
    (tmp_path / "go").touch()
    assert proc.wait(timeout=120) == 0
    assert waiter.wait(timeout=120) == 0


def test_a_symlinked_pipelines_folder_still_runs_stages_in_the_notebooks_folder(tmp_path, monkeypatch, cli):
    project, store = tmp_path / "project", tmp_path / "store"
    project.mkdir()
    (store / "pipelines").mkdir(parents=True)
    (project / "pipelines").symlink_to(store / "pipelines")
    write_nb(project / NB, code("import os\nopen('where.txt', 'w').write(os.getcwd())", "stage:s", "out:where.txt"))
    monkeypatch.chdir(project)
    exit_code, _, err = cli("run", NB)
    assert exit_code == 0, err
    assert Path((project / "where.txt").read_text()).resolve() == project.resolve()
    assert not (store / "where.txt").exists()


# --- a read-only folder and a full disk (root bypasses chmod: real mounts, in a mount namespace) --

def test_a_read_only_pipeline_folder_gives_one_line_and_status_still_works(ran):
    lock = (ran / PIPE / "nb2pipe.lock").read_bytes()
    write_nb(ran / NB, code("open('a.txt', 'w').write('a, edited')", "stage:a", "out:a.txt"))  # export has work to do
    results = in_mount_namespace(ran, [
        read_only_bind_mount(ran),
        ["status", PIPE],
        ["run", PIPE, "--force"],
        ["export", NB],
    ])
    (status_code, status_out, status_err), (run_code, _, run_err), (export_code, _, export_err) = results[1:]
    assert status_code == 0, status_err
    assert "source notebook changed since export" in status_out and "up-to-date" in status_out
    assert run_code == 2 and "read-only" in one_error_line(run_err)
    assert export_code == 2 and "read-only" in one_error_line(export_err)
    assert (ran / PIPE / "nb2pipe.lock").read_bytes() == lock


FILLS_THE_DISK = "open('big.bin', 'wb').write(b'x' * (5 << 20))\n"


def test_a_full_disk_gives_one_line_puts_outputs_back_and_the_next_run_works(tmp_path):
    project = tmp_path / "small-disk"
    project.mkdir()
    steps = [
        # 8 MiB: the stage's 5 MiB out fits once, not twice (the output cache keeps a copy)
        ["sh", f"mount -t tmpfs -o size=8m tmpfs '{project}'"],
        ["sh", f"cp '{tmp_path / 'src' / NB}' '{project / NB}' && echo before > '{project / 'big.bin'}'"],
        ["run", NB],
        ["sh", f"test \"$(cat '{project / 'big.bin'}')\" = before"],
        ["sh", f"test ! -e '{project / PIPE / '.nb2pipe' / 'journal.json'}'"],
        ["sh", f"mount -o remount,size=64m '{project}'"],
        ["run", NB],
        ["status", PIPE],
    ]
    write_nb(tmp_path / "src" / NB, code(FILLS_THE_DISK, "stage:fill", "out:big.bin"))
    results = in_mount_namespace(project, steps)
    (full_code, _, full_err) = results[2]
    assert full_code == 2, full_err
    errors = [line for line in full_err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and full_err.rstrip().endswith(errors[0]) and "Traceback" not in full_err, full_err
    assert "No space left on device" in errors[0]
    assert results[3] == 0, "the file that was at the out before the run is back"
    assert results[4] == 0, "no journal left behind: nothing is half done"
    run_code, run_out, run_err = results[6]
    assert run_code == 0, run_err
    assert run_out.strip().splitlines()[-1] == "1 ran, 0 up to date, 0 restored from cache, 0 failed"
    assert results[7][0] == 0 and "up-to-date" in results[7][1]


def test_an_out_that_is_a_fifo_is_refused_before_anything_runs(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    os.mkfifo(tmp_path / "pipe")
    write_nb(tmp_path / NB, code("open('ran.txt', 'w').write('ran')", "stage:s", "out:pipe"))
    exit_code, _, err = run_cli("run", NB)
    assert exit_code == 2 and "'pipe' is not a file or folder" in err.strip().splitlines()[-1]
    assert not (tmp_path / "ran.txt").exists() and stat.S_ISFIFO(os.lstat(tmp_path / "pipe").st_mode)
