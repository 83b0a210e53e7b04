"""The output cache: stage outputs stored by content hash, so they can be restored.

1. `store(path, digest)` copies a file (reflink where the filesystem can) to
   `.nb2pipe/cache/objects/<digest>`; a folder is stored as a manifest object listing its files,
   each stored as an object of its own.
2. `restore(path, digest)` puts that content back at `path`, atomically per file.
3. The run cache maps a stage fingerprint (code, params, dep hashes) to the outs it produced, so
   a stage seen before is restored instead of rerun.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from nb2pipe.hashing import HashCache

_FICLONE = 0x40049409  # Linux ioctl: share the data blocks of another file (btrfs, xfs)


def _object_name(digest: str) -> str:
    return digest.split(":", 1)[-1]


class OutputCache:
    def __init__(self, state_dir: Path):
        self.objects = state_dir / "cache" / "objects"
        self.runs = state_dir / "cache" / "runs"

    def _object(self, digest: str) -> Path:
        name = _object_name(digest)
        return self.objects / name[:2] / name[2:]

    def has(self, digest: str | None) -> bool:
        if digest is None:
            return False
        obj = self._object(digest)
        if not obj.exists():
            return False
        manifest = self._manifest(obj)
        return manifest is None or all(self._object(d).exists() for d in manifest.values())

    def store(self, path: Path, digest: str, hashes: HashCache) -> None:
        obj = self._object(digest)
        if obj.exists():
            return
        if path.is_dir():
            manifest = {}
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                file_digest = hashes.hash_path(file)
                if file_digest:
                    manifest[file.relative_to(path).as_posix()] = file_digest
                    self.store(file, file_digest, hashes)
            _write_via_temp(obj, lambda tmp: tmp.write_text(json.dumps({"nb2pipe-folder": manifest}, sort_keys=True)))
        else:
            _write_via_temp(obj, lambda tmp: _clone_or_copy(path, tmp))

    def restore(self, path: Path, digest: str) -> None:
        obj = self._object(digest)
        manifest = self._manifest(obj)
        if manifest is None:
            if path.is_dir():
                shutil.rmtree(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_via_temp(path, lambda tmp: _clone_or_copy(obj, tmp))
            return
        if path.exists() and not path.is_dir():
            path.unlink()
        if path.is_dir():
            shutil.rmtree(path)
        for rel, file_digest in manifest.items():
            self.restore(path / rel, file_digest)
        path.mkdir(parents=True, exist_ok=True)

    def _manifest(self, obj: Path) -> dict[str, str] | None:
        try:
            with open(obj, "rb") as f:
                head = f.read(18)
                if head != b'{"nb2pipe-folder":':
                    return None
                return json.loads(head + f.read())["nb2pipe-folder"]
        except (OSError, ValueError, KeyError):
            return None

    # --- the run cache ---

    def remember_run(self, fingerprint: str, outs: dict[str, str | None]) -> None:
        path = self.runs / f"{_object_name(fingerprint)}.json"
        _write_via_temp(path, lambda tmp: tmp.write_text(json.dumps(outs, sort_keys=True)))

    def recall_run(self, fingerprint: str) -> dict[str, str | None] | None:
        path = self.runs / f"{_object_name(fingerprint)}.json"
        try:
            outs = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return outs if all(self.has(d) for d in outs.values()) else None


def _clone_or_copy(src: Path, dst: Path) -> None:
    try:
        import fcntl

        with open(src, "rb") as fin, open(dst, "wb") as fout:
            fcntl.ioctl(fout.fileno(), _FICLONE, fin.fileno())
        shutil.copystat(src, dst)
    except (OSError, ImportError):
        shutil.copy2(src, dst)


def _write_via_temp(target: Path, write) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
