"""Nothing lost: what a stage's outputs were before it ran, and putting exactly that back.

1. Before a stage starts, `Journal.start` notes each of its outs: a path that exists is kept in
   the output cache (unless its content is there already) and noted by its content hash; a
   symlink is noted as the link (nb2pipe never writes through it); a path that does not exist is
   noted as absent. The journal (`.nb2pipe/journal.json`) is written atomically and fsynced
   before the stage may start.
2. When the stage finally fails or is interrupted, `Journal.restore` puts back exactly what was
   noted: the content, the link, or nothing (what the stage created there is removed).
   `Journal.end` then forgets the stage, as it does when the stage succeeds.
3. A run killed by `kill -9` leaves the journal behind; the next run restores from it first
   (`recover`), under the run lock, so the killed run is surely gone.
Every path is checked by `lockfile.out_path` first: nothing outside the project, and never the
project's folders or their parents, is written, restored or deleted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nb2pipe import lockfile
from nb2pipe import model as m
from nb2pipe.errors import Nb2PipeError
from nb2pipe.hashing import HashCache, atomic_write
from nb2pipe.run.cache import OutputCache

JOURNAL_FILE = "journal.json"
VERSION = 2  # version 1 noted an out without a lock entry as None even when a file was there
LINK = "link"

Snapshot = Any  # a content hash, None (absent), or {"link": target}


class Journal:
    def __init__(self, pipeline: m.Pipeline, cache: OutputCache, run_id: str):
        self.pipeline = pipeline
        self.cache = cache
        self.run_id = run_id
        self.path = lockfile.state_dir(pipeline) / JOURNAL_FILE
        self.stages: dict[str, dict[str, Snapshot]] = {}

    def start(self, stage: m.Stage, hashes: HashCache) -> None:
        """Note what is at the stage's outs now (and keep its content) before the stage starts."""
        self.stages[stage.name] = {p: snapshot(self.pipeline, p, self.cache, hashes) for p in stage.produced}
        try:
            self._write()
        except BaseException:
            del self.stages[stage.name]
            raise

    def restore(self, name: str) -> None:
        """Put back what was at the stage's outs when it started."""
        restore_snapshots(self.pipeline, self.cache, self.stages.get(name, {}))

    def end(self, name: str) -> None:
        if self.stages.pop(name, None) is not None:
            self._write()

    def _write(self) -> None:
        if self.stages:
            data = {"version": VERSION, "run": self.run_id, "pid": os.getpid(), "stages": self.stages}
            atomic_write(self.path, json.dumps(data, sort_keys=True))
        elif self.path.exists():
            self.path.unlink()


def snapshot(pipeline: m.Pipeline, out: str, cache: OutputCache, hashes: HashCache) -> Snapshot:
    target = lockfile.out_path(pipeline, out)
    if os.path.islink(target):
        return {LINK: os.readlink(target)}
    digest = hashes.hash_path(target)
    if digest is not None:
        cache.store(target, digest, hashes)
    return digest


def restore_snapshots(pipeline: m.Pipeline, cache: OutputCache, outs: dict[str, Snapshot]) -> None:
    for out, noted in outs.items():
        target = lockfile.out_path(pipeline, out, as_found=True)
        if isinstance(noted, dict):
            link = str(noted.get(LINK))
            if not (os.path.islink(target) and os.readlink(target) == link):
                _remove(target)
                os.symlink(link, target)
        elif noted is None:
            _remove(target)
        elif cache.has(noted):
            cache.restore(target, noted)


def _remove(target: Path) -> None:
    if os.path.islink(target) or target.is_file():
        target.unlink()
    elif target.is_dir():
        import shutil  # here: a run that puts back no folder never needs it

        shutil.rmtree(target)


def read_journal(pipeline: m.Pipeline) -> dict[str, Any] | None:
    """The journal a killed run left (None when there is none); an error when it is damaged."""
    path = lockfile.state_dir(pipeline) / JOURNAL_FILE
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict) and data.get("version") is None and isinstance(data.get("stages"), dict):
        data = _from_version_1(data)
    if not _valid(data):
        raise Nb2PipeError(
            f"'{path}' (what an interrupted run was doing) is damaged, so its stages' outputs cannot be "
            f"checked; restore the outputs with `nb2pipe checkout {os.path.relpath(pipeline.root)}`, then delete that file"
        )
    return data


def _from_version_1(data: dict[str, Any]) -> dict[str, Any]:
    """An older nb2pipe's journal: {stage: {"outs": {path: digest or None}}}, where None meant
    only "no lock entry" (a file may have been there), so those paths are left as they are."""
    stages = {}
    for name, entry in data["stages"].items():
        outs = entry.get("outs") if isinstance(entry, dict) else None
        stages[name] = {p: d for p, d in outs.items() if d is not None} if isinstance(outs, dict) else outs
    return {**data, "version": VERSION, "stages": stages}


def _valid(data: Any) -> bool:
    if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
        return False
    for outs in data["stages"].values():
        if not isinstance(outs, dict) or not all(isinstance(p, str) for p in outs):
            return False
        for noted in outs.values():
            if not (noted is None or isinstance(noted, str) or (isinstance(noted, dict) and isinstance(noted.get(LINK), str))):
                return False
    return True
