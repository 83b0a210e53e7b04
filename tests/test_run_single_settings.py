"""The stage command the engines run (`python -m nb2pipe.run.single`) honours the stage's settings
(issue 17): `retries:` tries a failed stage again in a fresh kernel unless the engine retries it
itself (`--no-retries`), and `kernel:` picks the stage's kernel. Real kernels, the command
started as the engines start it (a subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import code, write_nb

COMMAND = [sys.executable, "-m", "nb2pipe.run.single", "pipelines/nb"]
# fails on its first try (leaving a marker), succeeds on the next; says which kernel runs it
FLAKY = (
    "import os, sys\n"
    "if not os.path.exists('tried'):\n    open('tried', 'w').close()\n    raise RuntimeError('first try fails')\n"
    "open('done.txt', 'w').write(sys.executable)\n"
)


@pytest.fixture
def project(tmp_path, monkeypatch, cli) -> Path:
    write_nb(
        tmp_path / "nb.ipynb",
        code(FLAKY, "stage:flaky", "retries:1", "out:done.txt"),
        code("x = 1\n", "stage:elsewhere", "kernel:no-such-kernel"),
    )
    monkeypatch.chdir(tmp_path)
    exit_code, _, err = cli("export", "nb.ipynb")
    assert exit_code == 0, err
    return tmp_path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=600)


def test_a_failed_stage_is_tried_again_as_its_retries_say(project: Path) -> None:
    result = _run("flaky")
    assert result.returncode == 0, result.stderr
    assert "stage 'flaky' failed (try 1 of 2); trying again in a fresh kernel" in result.stderr
    assert (project / "done.txt").is_file()


def test_no_retries_leaves_retrying_to_the_engine(project: Path) -> None:
    result = _run("flaky", "--no-retries")
    assert result.returncode == 1
    assert "first try fails" in result.stderr and "trying again" not in result.stderr
    assert not (project / "done.txt").exists()


def test_the_stages_kernel_setting_chooses_its_kernel(project: Path) -> None:
    result = _run("elsewhere")
    assert result.returncode == 2
    assert "kernel 'no-such-kernel' is not installed; installed kernels:" in result.stderr
