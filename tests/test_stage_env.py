"""A stage's environment, with real kernels: `kernel:NAME` runs it on that kernelspec, `env:` sets
its kernel's process environment (and is part of its fingerprint), `secret:` reaches the kernel
from the caller's environment or `.env` and is written nowhere, `track-env` makes the versions of
what the stage imports part of its staleness."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import sys
from pathlib import Path

import pytest

from conftest import code, write_nb
from helpers import assert_one_line_error, stage_status, summary
from nb2pipe import model as m

# what the stage's kernel process started with: /proc/self/environ, which no code cell can change
READ_START_ENV = (
    "import os\n"
    "start = dict(line.split('=', 1) for line in open('/proc/self/environ').read().split('\\0') if '=' in line)\n"
)


def _pipeline(nb: Path) -> Path:
    return nb.parent / "pipelines" / nb.stem


def _lock(nb: Path) -> dict:
    from nb2pipe.spec import safe_load

    return safe_load((_pipeline(nb) / m.LOCK_FILE).read_text())["stages"]


def _kernelspec(root: Path, name: str, mark: str) -> None:
    """A kernelspec `name` on this Python, whose kernel.json sets NB2PIPE_KERNEL_MARK=`mark`."""
    folder = root / "kernels" / name
    folder.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python ({mark})",
        "language": "python",
        "env": {"NB2PIPE_KERNEL_MARK": mark},
    }
    (folder / "kernel.json").write_text(json.dumps(spec))


# --- kernel: ----------------------------------------------------------------------------------


def test_kernel_setting_runs_the_stage_on_that_kernelspec_and_kernel_flag_is_the_default_of_the_others(cli, tmp_path, monkeypatch):
    jupyter = tmp_path / "jupyter"
    _kernelspec(jupyter, "other", "other")
    _kernelspec(jupyter, "third", "third")
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter))
    monkeypatch.chdir(tmp_path)
    write = "import os\nopen('{name}.txt', 'w').write(str(os.environ.get('NB2PIPE_KERNEL_MARK')))\n"
    nb = write_nb(
        tmp_path / "k.ipynb",
        code(write.format(name="a"), "stage:a", "kernel:other", "out:a.txt"),
        code(write.format(name="b"), "stage:b", "out:b.txt"),
    )
    status, _, err = cli("run", nb)
    assert status == 0, err
    assert (tmp_path / "a.txt").read_text() == "other"
    assert (tmp_path / "b.txt").read_text() == "None"  # the notebook's kernel, python3
    assert _lock(nb)["a"]["kernel"] == "other" and "kernel" not in _lock(nb)["b"]

    status, _out, err = cli("run", nb, "--force", "--kernel", "third")
    assert status == 0, err
    assert (tmp_path / "a.txt").read_text() == "other"  # its own kernel wins over --kernel
    assert (tmp_path / "b.txt").read_text() == "third"


def test_an_unknown_kernel_is_one_error_naming_the_installed_kernels_before_anything_runs(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nb = write_nb(
        tmp_path / "k.ipynb",
        code("open('first.txt', 'w').write('x')\n", "stage:first", "out:first.txt"),
        code("x = 1\n", "stage:second", "kernel:nosuch", "after:first"),
    )
    assert cli("export", nb)[0] == 0
    assert_one_line_error(cli("run", _pipeline(nb)), "stage 'second'", "kernel 'nosuch' is not installed", "installed kernels:", "python3")
    assert not (tmp_path / "first.txt").exists()


# --- env: -------------------------------------------------------------------------------------


def test_env_is_in_the_kernel_process_environment_and_in_the_fingerprint_without_its_value(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NB2PIPE_TEST_PASSED", "from-the-caller")
    record = READ_START_ENV + "open('seen.txt', 'w').write(start.get('MODE', '-') + ' ' + start.get('NB2PIPE_TEST_PASSED', '-'))\n"
    nb = write_nb(
        tmp_path / "e.ipynb",
        code(record, "stage:load", "env:MODE=fast", "env:NB2PIPE_TEST_PASSED", "out:seen.txt"),
        code("y = 1\n", "stage:plain"),
    )
    status, out, err = cli("run", nb)
    assert status == 0, err
    assert (tmp_path / "seen.txt").read_text() == "fast from-the-caller"
    executed = next(_pipeline(nb).glob("runs/*/load.ipynb")).read_text()
    assert "fast" not in executed and "from-the-caller" not in executed  # no code cell set them
    lock = _lock(nb)
    assert set(lock["load"]["env"]) == {"MODE", "NB2PIPE_TEST_PASSED"} and "fast" not in json.dumps(lock)
    assert "env" not in lock["plain"]  # a stage without settings: its lock entry as before
    assert stage_status(cli, _pipeline(nb))["load"]["reasons"] == []

    monkeypatch.setenv("NB2PIPE_TEST_PASSED", "changed")
    assert stage_status(cli, _pipeline(nb))["load"]["reasons"] == ["env changed: NB2PIPE_TEST_PASSED"]
    monkeypatch.setenv("NB2PIPE_TEST_PASSED", "from-the-caller")
    nb.write_text(nb.read_text().replace("env:MODE=fast", "env:MODE=slow"))
    cli("export", nb)
    reasons = stage_status(cli, _pipeline(nb))["load"]["reasons"]
    assert reasons == ["env changed: MODE"]
    status, out, err = cli("run", nb)
    assert status == 0 and summary(out).startswith("1 ran"), out + err
    assert (tmp_path / "seen.txt").read_text() == "slow from-the-caller"


def test_a_missing_passed_through_variable_is_one_error_before_anything_runs(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NB2PIPE_TEST_ABSENT", raising=False)
    nb = write_nb(
        tmp_path / "e.ipynb",
        code("open('first.txt', 'w').write('x')\n", "stage:first", "out:first.txt"),
        code("x = 1\n", "stage:second", "env:NB2PIPE_TEST_ABSENT", "after:first"),
    )
    assert cli("export", nb)[0] == 0
    assert_one_line_error(cli("run", _pipeline(nb)), "stage 'second'", "NB2PIPE_TEST_ABSENT", "not set")
    assert not (tmp_path / "first.txt").exists()


# --- secret: ----------------------------------------------------------------------------------


def _files_holding(root: Path, needles: list[bytes], skip: set[Path]) -> tuple[list[str], list[str]]:
    """(the files under `root` holding any of `needles`, every file looked at), relative to root."""
    holding, seen = [], []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and path not in skip:
            data = path.read_bytes()
            seen.append(str(path.relative_to(root)))
            if any(needle in data for needle in needles):
                holding.append(str(path.relative_to(root)))
    return holding, seen


def test_a_secret_reaches_the_kernel_and_no_file_nb2pipe_writes(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from_env, from_file = secrets.token_hex(16), secrets.token_hex(16)
    monkeypatch.setenv("NB2PIPE_TEST_TOKEN", from_env)
    monkeypatch.delenv("NB2PIPE_TEST_DOTENV", raising=False)
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"# the project's secrets\nexport OTHER=1\nNB2PIPE_TEST_DOTENV = '{from_file}'\n")
    nb = write_nb(
        tmp_path / "s.ipynb",
        code("x = 1\n", "parameters"),
        code(
            READ_START_ENV + "assert start['NB2PIPE_TEST_TOKEN'] and start['NB2PIPE_TEST_DOTENV']\n"
            "print('token', os.environ['NB2PIPE_TEST_TOKEN'])\n",
            "stage:use", "secret:NB2PIPE_TEST_TOKEN", "secret:NB2PIPE_TEST_DOTENV",
        ),
        code("os.environ['NB2PIPE_TEST_DOTENV']\n"),  # a rich output's text/plain
        code("raise ValueError('bad ' + os.environ['NB2PIPE_TEST_TOKEN'])\n"),
    )  # fmt: skip
    status, out, err = cli("run", nb)
    assert status == 1, out + err
    assert "ValueError: bad ***" in err and from_env not in out + err
    pipeline = _pipeline(nb)
    executed = next(pipeline.glob("runs/*/use.ipynb"))
    assert "token ***" in executed.read_text() and "'***'" in executed.read_text()
    assert "token ***" in next(pipeline.glob("runs/*/use.log")).read_text()

    holding, seen = _files_holding(tmp_path, [from_env.encode(), from_file.encode()], skip={dotenv})
    assert holding == []
    for written in ("nb2pipe.yaml", "runs.db", "events.jsonl", "use.ipynb", "use.log", "last.json"):
        assert any(name.endswith(written) for name in seen), (written, seen)
    yaml_text = (pipeline / m.PIPELINE_FILE).read_text()
    assert "NB2PIPE_TEST_TOKEN" in yaml_text  # the name is written, never the value
    db = sqlite3.connect(pipeline / m.STATE_DIR / "runs.db")
    assert from_env not in json.dumps(db.execute("SELECT * FROM environments").fetchall())


def test_a_missing_secret_is_one_error_naming_it_and_where_it_was_looked_for(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NB2PIPE_TEST_NOWHERE", raising=False)
    nb = write_nb(tmp_path / "s.ipynb", code("x = 1\n", "stage:use", "secret:NB2PIPE_TEST_NOWHERE"))
    assert cli("export", nb)[0] == 0
    assert_one_line_error(
        cli("run", _pipeline(nb)), "stage 'use'", "secret 'NB2PIPE_TEST_NOWHERE'", "the environment", str(tmp_path / ".env")
    )


def test_dotenv_lines_are_read_never_executed():
    from nb2pipe.stage_env import parse_dotenv

    text = "# comment\n\nA=1\nexport B='two words'\nC=\"quoted # not a comment\"\nD=plain # a comment\nE=$(touch /tmp/x)\nbad line\n"
    assert parse_dotenv(text) == {"A": "1", "B": "two words", "C": "quoted # not a comment", "D": "plain", "E": "$(touch /tmp/x)"}


# --- track-env --------------------------------------------------------------------------------


def _tiny_distribution(site: Path, version: str) -> None:
    """A distribution `nb2pipe-tiny` (module `nb2pipe_tiny`) at `version` in `site`, replacing any other."""
    for old in site.glob("nb2pipe_tiny-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    (site / "nb2pipe_tiny").mkdir(parents=True, exist_ok=True)
    (site / "nb2pipe_tiny" / "__init__.py").write_text("VALUE = 1\n")
    info = site / f"nb2pipe_tiny-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: nb2pipe-tiny\nVersion: {version}\n")
    (info / "top_level.txt").write_text("nb2pipe_tiny\n")


def test_track_env_makes_the_versions_of_imported_packages_part_of_staleness(cli, tmp_path, monkeypatch):
    site = tmp_path / "site"
    _tiny_distribution(site, "1.0")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    nb = write_nb(
        work / "t.ipynb",
        code("import nb2pipe_tiny\nv = nb2pipe_tiny.VALUE\n", "stage:tracked", "track-env"),
        code("import nb2pipe_tiny\nw = nb2pipe_tiny.VALUE\n", "stage:untracked"),
    )
    status, out, err = cli("run", nb)
    assert status == 0, err
    recorded = _lock(nb)["tracked"]["environment"]
    assert recorded["packages"] == {"nb2pipe-tiny": "1.0"} and recorded["python"] == sys.version.split()[0]
    db = sqlite3.connect(_pipeline(nb) / m.STATE_DIR / "runs.db")
    (lock,) = db.execute("SELECT lock FROM stages WHERE stage = 'tracked'").fetchone()
    assert json.loads(lock)["environment"] == recorded  # the history keeps it per stage too
    assert stage_status(cli, _pipeline(nb))["tracked"]["reasons"] == []

    _tiny_distribution(site, "1.1")
    statuses = stage_status(cli, _pipeline(nb))
    assert statuses["tracked"]["reasons"] == ["environment changed: nb2pipe-tiny 1.0 → 1.1"]
    assert statuses["untracked"]["reasons"] == []
    status, out, err = cli("run", nb)
    assert status == 0 and summary(out).startswith("1 ran, 1 up to date"), out + err


@pytest.mark.parametrize("where", ["stage", "defaults"])
def test_track_env_as_a_pipeline_default_applies_to_every_stage(cli, tmp_path, monkeypatch, where):
    monkeypatch.chdir(tmp_path)
    nb = write_nb(tmp_path / "t.ipynb", code("import json\nx = 1\n", "stage:only", *(["track-env"] if where == "stage" else [])))
    if where == "defaults":
        data = json.loads(nb.read_text())
        data["metadata"]["nb2pipe"] = {"defaults": {"track-env": True}}
        nb.write_text(json.dumps(data))
    status, _out, err = cli("run", nb)
    assert status == 0, err
    assert _lock(nb)["only"]["environment"] == {"python": sys.version.split()[0], "packages": {}}


# --- the single-stage runner the exports call, and command stages ----------------------------------


def test_the_exports_single_stage_runner_gives_a_notebook_stage_its_env_and_redacted_secret(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    token = secrets.token_hex(16)
    monkeypatch.delenv("NB2PIPE_TEST_DOTENV", raising=False)
    (tmp_path / ".env").write_text(f"NB2PIPE_TEST_DOTENV={token}\n")
    nb = write_nb(
        tmp_path / "x.ipynb",
        code(
            READ_START_ENV + "open('seen.txt', 'w').write(start['MODE'] + ' ' + str(len(start['NB2PIPE_TEST_DOTENV'])))\n"
            "print(os.environ['NB2PIPE_TEST_DOTENV'])\n",
            "stage:use", "env:MODE=fast", "secret:NB2PIPE_TEST_DOTENV", "out:seen.txt",
        ),
    )  # fmt: skip
    assert cli("export", nb)[0] == 0
    from nb2pipe.run.single import run_stage

    executed = run_stage(_pipeline(nb), "use", engine="dvc")
    assert (tmp_path / "seen.txt").read_text() == "fast 32"
    assert token not in executed.read_text() and "***" in executed.read_text()


def test_a_command_stage_gets_its_env_and_secrets_and_its_log_is_redacted(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    token = secrets.token_hex(16)
    monkeypatch.setenv("NB2PIPE_TEST_TOKEN", token)
    tools = tmp_path / "tools"
    tools.mkdir()
    source = "import os; open('seen.txt', 'w').write(os.environ['MODE']); print('token', os.environ['NB2PIPE_TEST_TOKEN'])"
    (tools / m.PIPELINE_FILE).write_text(
        f"version: 1\nwdir: ..\nstages:\n  tool:\n    cmd: {json.dumps([sys.executable, '-c', source])}\n    outs: [seen.txt]\n"
        "    settings: {env: {MODE: fast}, secret: [NB2PIPE_TEST_TOKEN]}\n"
    )
    status, _, err = cli("run", tools)
    assert status == 0, err
    assert (tmp_path / "seen.txt").read_text() == "fast"
    log = next(tools.glob("runs/*/tool.log")).read_text()
    assert "token ***" in log and token not in log


def test_redaction_replaces_held_values_also_escaped_and_line_by_line_until_released():
    from nb2pipe.run import redact

    assert redact.redact("nothing held") == "nothing held"
    quoted, pem = 'pa"ss\\word', "-----BEGIN KEY-----\nMIIEowIBAAKCAQEA\n-----END KEY-----"
    held = redact.hold([quoted, pem])
    again = redact.hold([quoted])  # a second run holding the same value
    try:
        assert redact.redact(f"x {quoted} y") == "x *** y"
        assert redact.redact(json.dumps({"text": quoted})) == '{"text": "***"}'
        # a multi-line value reaches the logs and the notebook's JSON a line at a time
        assert redact.redact("MIIEowIBAAKCAQEA\n") == "***\n"
        redact.release(held)
        assert redact.redact(quoted) == "***"  # still held by the other run
    finally:
        redact.release(again)
    assert redact.redact(quoted) == quoted


def test_stages_with_the_same_environment_each_get_a_fresh_kernel_started_with_it(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    record = READ_START_ENV + "open('{name}.txt', 'w').write(start.get('MODE', '-') + ' ' + str(os.getpid()))\n"
    nb = write_nb(
        tmp_path / "p.ipynb",
        *(code(record.format(name=name), f"stage:{name}", "env:MODE=same", f"out:{name}.txt") for name in ("one", "two", "three")),
        code("x = 1\n", "stage:plain"),
    )
    status, _, err = cli("run", nb, "--jobs", "2")
    assert status == 0, err
    seen = [(tmp_path / f"{name}.txt").read_text().split() for name in ("one", "two", "three")]
    assert [mode for mode, _ in seen] == ["same"] * 3
    assert len({pid for _, pid in seen}) == 3  # never a kernel used by another stage
