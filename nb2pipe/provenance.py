"""Facts about where a run happened: the git commit (and whether the work tree was dirty) and the
environment (Python, platform, installed distributions), as the run history records them."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any


def git_info(folder: Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git repository holding `folder`, or (None, None) outside one."""
    return GitFacts(folder).result()


class GitFacts:
    """`git rev-parse HEAD` and `git status` of `folder`, both started at once, read when done: a
    run starts its stages meanwhile (a big work tree's status can take seconds)."""

    def __init__(self, folder: Path):
        self._done: tuple[str | None, bool | None] | None = None
        try:
            self._commit = subprocess.Popen(["git", "rev-parse", "HEAD"], cwd=folder, **_QUIET)
            self._status = subprocess.Popen(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder, **_QUIET)
        except OSError:
            self._done = (None, None)

    def ready(self) -> bool:
        return self._done is not None or (self._commit.poll() is not None and self._status.poll() is not None)

    def result(self, timeout: float = 30) -> tuple[str | None, bool | None]:
        """(commit, dirty), waiting at most `timeout` seconds; (None, None) outside a repository."""
        if self._done is None:
            try:
                commit, _ = self._commit.communicate(timeout=timeout)
                dirty, _ = self._status.communicate(timeout=timeout)
                ok = self._commit.returncode == 0 and self._status.returncode == 0
                self._done = (commit.strip(), bool(dirty.strip())) if ok else (None, None)
            except subprocess.TimeoutExpired:
                for process in (self._commit, self._status):
                    process.kill()
                    process.communicate()
                self._done = (None, None)
        return self._done


_QUIET: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.DEVNULL, "stdin": subprocess.DEVNULL, "text": True}


def environment() -> dict[str, Any]:
    """Python, platform, and every installed distribution with its version."""
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
