"""Shared fixtures and notebook builders: tiny notebooks built in code, the corpus folder, the CLI
in-process, runs in the background. Plain helper functions are in tests/helpers.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from helpers import REPO, Runs
from nb2pipe.cli import main

pytest_plugins = ["pytest_jupyter.jupyter_server"]

EXAMPLES = REPO / "example_notebooks"
CORPUS = REPO.parent / "shared" / "corpus"
GOLDEN = Path(__file__).resolve().parent / "golden"


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden from the current export")


def code(source: str, *tags: str, **metadata) -> dict:
    meta = dict(metadata)
    if tags:
        meta["tags"] = list(tags)
    return {"cell_type": "code", "metadata": meta, "source": source, "outputs": [], "execution_count": None}


def md(source: str, *tags: str) -> dict:
    return {"cell_type": "markdown", "metadata": {"tags": list(tags)} if tags else {}, "source": source}


def notebook(*cells: dict, minor: int = 5) -> dict:
    return {
        "cells": list(cells),
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": minor,
    }


def write_nb(path: Path, *cells: dict, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook(*cells, **kw), indent=1))
    return path


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def runs():
    """`nb2pipe run` in the background (helpers.Runs); whatever is left is killed by pid at the end."""
    started = Runs()
    yield started
    started.cleanup()


@pytest.fixture(autouse=True)
def _no_stale_papermill_cwd():
    """Start each test without a working directory left in papermill's process-wide file handler.

    papermill remembers the process's working directory of a run in a global handler and chdirs
    there to write the executed notebook; a CLI process never changes directory, but this test
    process does between tests, so a stale one could leak into the next test's in-process run.
    Nothing to do while no test in this process imported papermill.
    """
    if "papermill.iorw" in sys.modules:
        sys.modules["papermill.iorw"].papermill_io.get_handler("local").cwd(None)
    yield
