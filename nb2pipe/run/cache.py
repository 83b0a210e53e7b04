"""The output cache: stage outputs stored by content hash, so they can be restored.

1. `store(path, digest)` copies a file (reflink where the filesystem can) to
   `.nb2pipe/cache/objects/<digest>`; a folder is stored as a manifest object listing its files
   (each stored as an object of its own) and its subfolders. Variables handed between stages
   (under `.nb2pipe/vars/`) are hard-linked instead, however big: nb2pipe alone writes them,
   always as new files (nb2pipe.handoff), so the object and the variable never change in place.
2. `restore(path, digest)` makes `path` hold that content again, atomically per file (hand-off
   files linked back from the cache as they were stored). A folder is
   restored by difference: files whose content already matches are left alone, changed files are
   rewritten, files and folders that are not in the manifest are removed. Nothing is written
   through a symlink that leads out of the folder being restored, and a symlink is removed as a
   link, never followed.
3. The run cache maps a stage fingerprint (code, params, dep hashes) to the outs it produced, so
   a stage seen before is restored instead of rerun.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from nb2pipe.hashing import HashCache, atomic_write, hash_file
from nb2pipe.model import VARS_DIR

_FICLONE = 0x40049409  # Linux ioctl: share the data blocks of another file (btrfs, xfs)
_FOLDER_HEAD = b'{"nb2pipe-folder":'


def _object_name(digest: str) -> str:
    return digest.split(":", 1)[-1]


class OutputCache:
    def __init__(self, state_dir: Path):
        self.objects = state_dir / "cache" / "objects"
        self.runs = state_dir / "cache" / "runs"
        self._handoffs = os.path.join(os.path.abspath(state_dir), VARS_DIR, "")

    def _put(self, src: Path, dst: Path) -> None:
        """Make `dst` hold what `src` holds, atomically: a link when one of them is a hand-off
        file (unless they are on different filesystems), else a copy."""
        if os.path.abspath(src).startswith(self._handoffs) or os.path.abspath(dst).startswith(self._handoffs):
            dst.parent.mkdir(parents=True, exist_ok=True)
            if _link_atomically(src, dst):
                return
        atomic_write(dst, lambda tmp: _clone_or_copy(src, tmp))

    def _object(self, digest: str) -> Path:
        name = _object_name(digest)
        return self.objects / name[:2] / name[2:]

    def has(self, digest: str | None) -> bool:
        if digest is None:
            return False
        obj = self._object(digest)
        if not obj.exists():
            return False
        folder = self._manifest(obj)
        return folder is None or all(self._object(d).exists() for d in folder[0].values())

    def store(self, path: Path, digest: str, hashes: HashCache) -> None:
        """Keep the content of `path` (whose hash is `digest`) in the cache."""
        if self.has(digest):
            return
        obj = self._object(digest)
        if path.is_dir():
            files, folders = {}, []
            for rel, file in _tree(path):
                if file is None:
                    folders.append(rel)
                    continue
                file_digest = hashes.hash_path(file)
                if file_digest:
                    files[rel] = file_digest
                    self.store(file, file_digest, hashes)
            # "nb2pipe-folder" first: the object is recognised as a folder by how it starts
            manifest = {"nb2pipe-folder": dict(sorted(files.items())), "folders": sorted(folders)}
            atomic_write(obj, json.dumps(manifest))
        else:
            self._put(path, obj)

    def restore(self, path: Path, digest: str) -> None:
        """Make `path` hold the content stored under `digest` again."""
        obj = self._object(digest)
        folder = self._manifest(obj)
        if folder is None:
            if _is_link(path) or path.is_file():
                if not (path.is_file() and hash_file(path) == digest):  # a link is replaced, not written through
                    self._put(obj, path)
                return
            if path.is_dir():
                import shutil  # here: only a folder replaced by a file needs it

                shutil.rmtree(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._put(obj, path)
            return
        files, folders = folder
        _make_folder(path)
        real = os.path.realpath(path)
        for rel in sorted(folders):  # parents first
            if _inside(os.path.realpath((path / rel).parent), real):
                _make_folder(path / rel, keep_link=True)
        for rel, file_digest in files.items():
            target = path / rel
            if _inside(os.path.realpath(target.parent), real):
                target.parent.mkdir(parents=True, exist_ok=True)
                self.restore(target, file_digest)
        _remove_extras(path, set(files), set(folders))

    def _manifest(self, obj: Path) -> tuple[dict[str, str], list[str]] | None:
        """(files, folders) of a folder object; None for a file object."""
        try:
            with open(obj, "rb") as f:
                if f.read(len(_FOLDER_HEAD)) != _FOLDER_HEAD:
                    return None
                f.seek(0)
                data = json.load(f)
        except (OSError, ValueError):
            return None
        files = data.get("nb2pipe-folder")
        if not isinstance(files, dict):
            return None
        folders = data.get("folders")
        if not isinstance(folders, list):  # stored before folders were listed: their parents
            folders = sorted({str(Path(rel).parent) for rel in files} - {"."})
        return files, folders

    # --- the run cache ---

    def remember_run(self, fingerprint: str, outs: dict[str, str | None]) -> None:
        path = self.runs / f"{_object_name(fingerprint)}.json"
        atomic_write(path, json.dumps(outs, sort_keys=True))

    def recall_run(self, fingerprint: str) -> dict[str, str | None] | None:
        path = self.runs / f"{_object_name(fingerprint)}.json"
        try:
            outs = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(outs, dict) or not all(isinstance(d, str) for d in outs.values()):
            return None
        return outs if all(self.has(d) for d in outs.values()) else None


def _make_folder(path: Path, keep_link: bool = False) -> None:
    """A folder at `path`, replacing a file or (unless `keep_link`) a symlink that is there."""
    if (_is_link(path) and not (keep_link and path.is_dir())) or (path.exists() and not path.is_dir()):
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir(exist_ok=True)


def _is_link(path: Path) -> bool:
    return os.path.islink(path)


def _inside(real: str, folder: str) -> bool:
    return real == folder or real.startswith(folder.rstrip(os.sep) + os.sep)


def _tree(folder: Path, rel: str = "", ancestors: frozenset[str] = frozenset()) -> Iterator[tuple[str, Path | None]]:
    """(relative path, file) for every regular file and (relative path, None) for every subfolder
    under `folder`, following symlinks as the folder's hash does (a link back to a folder above
    is not followed again)."""
    real = os.path.realpath(folder)
    ancestors = ancestors | {real}
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        entry_rel = rel + entry.name
        try:
            mode = os.stat(entry.path).st_mode
        except OSError:  # a dangling link
            continue
        if stat.S_ISDIR(mode):
            yield entry_rel, None
            if os.path.realpath(entry.path) not in ancestors:
                yield from _tree(Path(entry.path), entry_rel + "/", ancestors)
        elif stat.S_ISREG(mode):
            yield entry_rel, Path(entry.path)


def _rel(root: str, name: str) -> str:
    return name if root == "." else f"{Path(root).as_posix()}/{name}"


def _remove_extras(folder: Path, files: set[str], folders: set[str]) -> None:
    """Remove what is under `folder` but not in the manifest: files and links (as links), then
    folders left empty. Special files (FIFOs, sockets) were never stored and are left alone."""
    for root, dirs, names in os.walk(folder, topdown=False):  # links are not followed
        rel_root = os.path.relpath(root, folder)
        for name in names + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            full = os.path.join(root, name)
            rel = _rel(rel_root, name)
            if rel in files or rel in folders:
                continue
            if os.path.islink(full) or stat.S_ISREG(os.lstat(full).st_mode):
                os.unlink(full)
        for name in dirs:
            full = os.path.join(root, name)
            rel = _rel(rel_root, name)
            if rel not in folders and not os.path.islink(full):
                with contextlib.suppress(OSError):  # it holds something nb2pipe does not remove
                    os.rmdir(full)


def _link_atomically(src: Path, dst: Path) -> bool:
    """Hard-link `src` at `dst` through a new name beside it; False when it cannot be linked."""
    temp = dst.with_name(f".{dst.name[:200]}.{os.urandom(4).hex()}.link")
    try:
        os.link(src, temp)
    except OSError:
        return False
    try:
        os.replace(temp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return True


def _clone_or_copy(src: Path, dst: Path) -> None:
    import shutil  # here: a run that stores nothing new never needs it

    try:
        import fcntl

        with open(src, "rb") as fin, open(dst, "wb") as fout:
            fcntl.ioctl(fout.fileno(), _FICLONE, fin.fileno())
        shutil.copystat(src, dst)
    except (OSError, ImportError):
        shutil.copy2(src, dst)
