"""Facts about where a run happened: the git commit (and whether the work tree was dirty) and the
environment (Python, platform, installed distributions), as the run history records them.

`RunFacts` works them out in a thread of its own, started once the run has dispatched its first
stage: none of it is needed to start a stage, and the stage's kernel takes far longer to boot.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any


def git_info(folder: Path, timeout: float = 30) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git repository holding `folder`, or (None, None) outside one (or
    when git takes longer than `timeout` seconds: a big work tree's status can take seconds)."""
    import subprocess  # here: `run` imports none of it on its way to the first stage

    quiet: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.DEVNULL, "stdin": subprocess.DEVNULL, "text": True}
    try:  # both at once
        commit = subprocess.Popen(["git", "rev-parse", "HEAD"], cwd=folder, **quiet)
        status = subprocess.Popen(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder, **quiet)
    except OSError:
        return None, None
    try:
        head, _ = commit.communicate(timeout=timeout)
        dirty, _ = status.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for process in (commit, status):
            process.kill()
            process.communicate()
        return None, None
    return (head.strip(), bool(dirty.strip())) if commit.returncode == 0 and status.returncode == 0 else (None, None)


class RunFacts:
    """(commit, dirty, environment) of a run, from a thread started by `start` (or `result`)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._thread: threading.Thread | None = None
        self._facts: tuple[str | None, bool | None, dict[str, Any]] | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="nb2pipe-run-facts", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        commit, dirty = git_info(self.folder)
        self._facts = (commit, dirty, environment())

    def ready(self) -> bool:
        return self._facts is not None

    def result(self) -> tuple[str | None, bool | None, dict[str, Any]]:
        self.start()
        assert self._thread is not None
        self._thread.join()
        return self._facts or (None, None, {})


def environment_hash(env: dict[str, Any]) -> str:
    import hashlib  # OpenSSL's: loaded in the facts thread, not before the first stage starts

    return hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()[:16]


def environment() -> dict[str, Any]:
    """Python, platform, and every installed distribution with its version."""
    import platform

    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "distributions": dict(sorted(installed_distributions().items())),
    }


def installed_distributions() -> dict[str, str]:
    """{name: version} of what is installed on sys.path, read from the `name-version.dist-info`
    folder names (parsing every METADATA file took most of a no-op run's time)."""
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            for suffix in (".dist-info", ".egg-info"):
                if name.endswith(suffix) and "-" in name:
                    dist, _, version = name[: -len(suffix)].partition("-")
                    found.setdefault(dist.replace("_", "-").lower(), version.split("-py")[0])
    return found
