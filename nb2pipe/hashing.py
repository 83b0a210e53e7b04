"""Content hashing of pipeline inputs and outputs, so that only stale stages rerun.

A stage is stale when the hash of one of its files or folders differs from the
hash recorded at its last run. Hashes are BLAKE3 digests written "blake3:<64 hex>".

Algorithm of HashCache.hash_path(path):
 1. stat(path), following symlinks; a missing path gives None. A FIFO, socket, device
    or symlink loop is never read: it hashes as a marker of its kind.
 2. A file's stat key (absolute path, st_ino, st_size, st_mtime_ns) is looked up
    in the stat cache; on a hit the stored hash is returned and the file is not read.
 3. On a miss the file is read and hashed (memory-mapped and multithreaded when big).
    The result is cached unless the file's mtime is within RACY_WINDOW_NS of now
    (it could still change without its mtime changing, as in git's "racy" check)
    or its stat key changed while it was being read. Files under `written_once` (the
    variables handed between stages, never changed in place: a new save is a new file) are
    cached however young, so a big hand-off is read once, not once per stage that uses it.
 4. A folder is hashed as a manifest: a header line, then one line
    "relpath\\0filehash\\n" per file under it (any depth, symlinks followed,
    sorted by relpath bytes), each file hash coming from steps 2-3.
 5. save() writes the stat cache as JSON {path: [ino, size, mtime_ns, hash]}
    atomically, only when something changed, ignoring OSError.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import blake3

from nb2pipe.errors import Nb2PipeError
from nb2pipe.files import special_kind

HASH_PREFIX = "blake3:"

READ_CHUNK_SIZE = 1 << 20  # 1 MiB per read when streaming
MMAP_MIN_SIZE = 16 << 20  # files at least this big are memory-mapped and hashed on all cores
RACY_WINDOW_NS = 2_000_000_000  # files modified this recently are not cached
MAX_CACHE_ENTRIES = 100_000

FOLDER_MANIFEST_HEADER = b"nb2pipe-folder-v1\n"
# Stand-ins for a file hash in a folder manifest, for entries that cannot be read as files.
MISSING_MARK = "<missing>"  # dangling symlink, or a file that vanished during the walk
SPECIAL_MARK = "<special>"  # FIFO, socket or device: never read (a FIFO would block)
LOOP_MARK = "<symlink-loop>"  # symlink to a folder that contains it
SPECIAL_HEADER = b"nb2pipe-special-v1\n"  # a dep or out that is not a file or folder hashes as this + its kind

def hash_bytes(data: bytes) -> str:
    """Hash an in-memory byte string."""
    return HASH_PREFIX + blake3.blake3(data).hexdigest()


def hash_file(path: Path) -> str:
    """Hash a file's content, memory-mapped on all cores when big, streamed otherwise."""
    size = os.stat(path).st_size
    if size >= MMAP_MIN_SIZE:
        digest = _hash_file_mmap(path)
        if digest is not None:
            return digest
        return _hash_file_streamed(path, blake3.blake3(max_threads=blake3.blake3.AUTO))
    return _hash_file_streamed(path, blake3.blake3())


def _hash_file_mmap(path: Path) -> str | None:
    """Hash through blake3's update_mmap; None when mmap is unavailable for this file."""
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    if not hasattr(hasher, "update_mmap"):
        return None
    try:
        hasher.update_mmap(os.fspath(path))
    except OSError:
        return None
    return HASH_PREFIX + hasher.hexdigest()


def _hash_file_streamed(path: Path, hasher: blake3.blake3) -> str:
    """Hash by reading the file in READ_CHUNK_SIZE blocks into one reused buffer."""
    buffer = bytearray(READ_CHUNK_SIZE)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            hasher.update(view[:count])
    return HASH_PREFIX + hasher.hexdigest()


def _stat_key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _is_valid_entry(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 4
        and all(type(number) is int for number in value[:3])
        and isinstance(value[3], str)
        and value[3].startswith(HASH_PREFIX)
    )


def _load_entries(cache_file: Path | None) -> dict[str, list[Any]]:
    """Read the JSON stat cache; anything missing, unreadable or malformed counts as empty."""
    if cache_file is None:
        return {}
    try:
        with open(cache_file, "rb") as handle:
            data = json.load(handle)
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {path: value for path, value in data.items() if _is_valid_entry(value)}


def atomic_write(target: Path, payload: bytes | str | Callable[[Path], None]) -> None:
    """Write payload to a temp file beside target, fsync it, then rename it over target: readers
    see the old file or the new one, never a torn one. Text is written as UTF-8. A function as
    payload fills the temp file itself, given its path (to copy a file: the mode and times the
    function gives it are kept).

    The file gets the mode of the file it replaces, or, when new, 0666 less the umask, as `open`
    would give it (the temp file is created with mode 0666, so the kernel applies the umask and
    any default ACL). The temp file has a name no other file has (O_EXCL), so nothing beside
    target is ever overwritten, and it is gone afterwards, whatever happened."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode: int | None = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        mode = None
    fd, temp_name = _create_temp_beside(target)
    try:
        with os.fdopen(fd, "wb") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            if callable(payload):
                payload(Path(temp_name))
            else:
                handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())  # the file's data, whichever descriptor wrote it
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


_NAME_MAX = 255  # bytes in one file name (Linux, macOS)


def _create_temp_beside(target: Path) -> tuple[int, str]:
    """A new hidden file `.<target name>.<random>.tmp` beside target (the target's name cut short
    when the whole would be longer than a name may be), opened for writing with mode 0666
    (mkstemp would make it 0600, whatever the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    stem = os.fsencode(target.name)[: _NAME_MAX - len(".12345678.tmp") - 1]
    for _ in range(100):
        name = os.path.join(os.fsencode(target.parent), b"." + stem + f".{os.urandom(4).hex()}.tmp".encode())
        try:
            return os.open(name, flags, 0o666), os.fsdecode(name)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside '{target}'")


class HashCache:
    """Content hashes of files and folders, with a stat cache so an unchanged file is never read twice."""

    def __init__(self, cache_file: Path | None, written_once: Path | None = None) -> None:
        """`written_once`: a folder whose files are never changed in place, only replaced by new
        files (the variables handed between stages): their hashes are kept however young they are."""
        self._cache_file = Path(os.path.abspath(cache_file)) if cache_file is not None else None
        self._written_once = os.path.join(os.path.abspath(written_once), "") if written_once is not None else None
        self._entries = _load_entries(self._cache_file)
        self._changed = False

    def hash_path(self, path: Path) -> str | None:
        """Hash a file or folder; None when path does not exist.

        Anything else (a FIFO, socket or device, a symlink loop) is never read: it hashes as a
        marker of what it is, so it neither blocks nor crashes, and changes when it is replaced.
        """
        absolute = os.path.abspath(path)
        try:
            st = os.stat(absolute)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            if e.errno == errno.ELOOP:
                return hash_bytes(SPECIAL_HEADER + LOOP_MARK.encode())
            raise Nb2PipeError(f"cannot read '{path}': {e.strerror}; fix the path or its permissions") from None
        try:
            if stat.S_ISDIR(st.st_mode):
                return self._hash_folder(absolute, st)
            if stat.S_ISREG(st.st_mode):
                return self._hash_regular_file(absolute, st)
        except OSError as e:
            raise Nb2PipeError(f"cannot read '{e.filename or path}': {e.strerror}; fix its permissions or remove it") from None
        return _special_hash(st)

    def derived(self, key: str, compute: Callable[[], str]) -> str:
        """A hash worked out from content whose own hash is part of `key` (e.g. a script's
        normalized code, keyed by the hash of its text), kept in the same file across runs; `key`
        must not be an absolute path."""
        entry = self._entries.pop(key, None)
        if entry is None:
            entry, self._changed = [0, 0, 0, compute()], True
        self._entries[key] = entry  # most recently used goes last
        digest: str = entry[3]
        return digest

    def save(self) -> None:
        """Persist the stat cache if it changed; failures to write (e.g. read-only dir) are ignored."""
        if self._cache_file is None or not self._changed:
            return
        kept = dict(list(self._entries.items())[-MAX_CACHE_ENTRIES:])
        payload = json.dumps(kept, separators=(",", ":")).encode()
        try:
            atomic_write(self._cache_file, payload)
        except OSError:
            return
        self._entries = kept
        self._changed = False

    # --- files ---------------------------------------------------------------

    def _hash_regular_file(self, absolute: str, st: os.stat_result) -> str:
        cached = self._lookup(absolute, st)
        if cached is not None:
            return cached
        digest = hash_file(Path(absolute))
        if self._may_cache(absolute, st):
            self._store(absolute, st, digest)
        return digest

    def _lookup(self, absolute: str, st: os.stat_result) -> str | None:
        entry = self._entries.get(absolute)
        if entry is None or tuple(entry[:3]) != _stat_key(st):
            return None
        self._entries[absolute] = self._entries.pop(absolute)  # most recently used goes last
        digest: str = entry[3]  # a hash string: _load_entries keeps no other entry
        return digest

    def _may_cache(self, absolute: str, st: os.stat_result) -> bool:
        """False if the file was modified too recently (unless it is written once), or changed
        while it was read."""
        written_once = self._written_once is not None and absolute.startswith(self._written_once)
        if st.st_mtime_ns >= time.time_ns() - RACY_WINDOW_NS and not written_once:
            return False
        try:
            return _stat_key(os.stat(absolute)) == _stat_key(st)
        except OSError:
            return False

    def _store(self, absolute: str, st: os.stat_result, digest: str) -> None:
        self._entries.pop(absolute, None)
        self._entries[absolute] = [*_stat_key(st), digest]
        self._changed = True

    # --- folders -------------------------------------------------------------

    def _hash_folder(self, absolute: str, st: os.stat_result) -> str:
        cache_file_id = self._cache_file_id()
        lines = [
            os.fsencode(relpath) + b"\0" + self._manifest_hash(file_path, file_st).encode() + b"\n"
            for relpath, file_path, file_st in _walk(absolute, "", frozenset({_file_id(st)}))
            if isinstance(file_st, str) or _file_id(file_st) != cache_file_id
        ]
        lines.sort()
        return hash_bytes(FOLDER_MANIFEST_HEADER + b"".join(lines))

    def _manifest_hash(self, file_path: str, file_st: os.stat_result | str) -> str:
        if isinstance(file_st, str):  # one of the *_MARK stand-ins
            return file_st
        return self._hash_regular_file(file_path, file_st)

    def _cache_file_id(self) -> tuple[int, int] | None:
        """(device, inode) of the cache file, which folder hashes leave out; None if it is absent."""
        if self._cache_file is None:
            return None
        try:
            return _file_id(os.stat(self._cache_file))
        except OSError:
            return None


def _walk(
    folder: str, rel_prefix: str, ancestors: frozenset[tuple[int, int]]
) -> Iterator[tuple[str, str, os.stat_result | str]]:
    """Yield (relpath, path, stat or *_MARK) for every file under folder, following symlinks."""
    with os.scandir(folder) as scan:
        entries = list(scan)
    for entry in entries:
        relpath = rel_prefix + entry.name
        try:
            st = entry.stat()  # follows symlinks
        except FileNotFoundError:
            yield relpath, entry.path, MISSING_MARK
            continue
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
            yield relpath, entry.path, LOOP_MARK  # a symlink that points at itself
            continue
        if not stat.S_ISDIR(st.st_mode):
            yield relpath, entry.path, st if stat.S_ISREG(st.st_mode) else SPECIAL_MARK
        elif _file_id(st) in ancestors:
            yield relpath, entry.path, LOOP_MARK
        else:
            yield from _walk(entry.path, relpath + "/", ancestors | {_file_id(st)})


def _special_hash(st: os.stat_result) -> str:
    """The hash of something that is neither a file nor a folder: what it is, never its content
    (devices by number, so /dev/zero and /dev/null differ)."""
    device = f" {os.major(st.st_rdev)},{os.minor(st.st_rdev)}" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else ""
    return hash_bytes(SPECIAL_HEADER + (special_kind(st) + device).encode())


def _file_id(st: os.stat_result) -> tuple[int, int]:
    """Identity of a file or folder on this machine: (device, inode)."""
    return (st.st_dev, st.st_ino)


_MEMO: dict[tuple[str, str, int, int, int], object] = {}
_Value = TypeVar("_Value")


def memo_by_stat(kind: str, path: Path, compute: Callable[[], _Value]) -> _Value:
    """`compute()` once per (kind, path, inode, size, mtime_ns): for long-lived processes such
    as the Jupyter server, which ask about the same unchanged files again and again."""
    st = os.stat(path)
    key = (kind, str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _MEMO:
        if len(_MEMO) > 10_000:
            _MEMO.clear()
        _MEMO[key] = compute()
    return cast(_Value, _MEMO[key])  # stored by compute() for the same kind and path
