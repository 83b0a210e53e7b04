"""Tests of nb2pipe.hashing on real files in tmp_path."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import blake3
import pytest

from helpers import in_mount_namespace, read_only_bind_mount
from nb2pipe import hashing
from nb2pipe.hashing import HASH_PREFIX, HashCache, hash_bytes, hash_file

HOUR_NS = 3600 * 1_000_000_000


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def age(path: Path, seconds_ago: int = 3600) -> None:
    """Move a file's mtime into the past so the racy-mtime guard lets it be cached."""
    past = time.time_ns() - seconds_ago * 1_000_000_000
    os.utime(path, ns=(past, past))


def forbid_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    # The one monkeypatch in these tests: make any content read fail, to prove a cache hit.
    def refuse(path: Path) -> str:
        raise AssertionError(f"file was read again: {path}")

    monkeypatch.setattr(hashing, "hash_file", refuse)


# --- hash_bytes / hash_file ---------------------------------------------------


def test_hash_bytes_of_empty_input_is_the_blake3_empty_vector() -> None:
    expected = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    assert hash_bytes(b"") == HASH_PREFIX + expected
    assert hash_bytes(b"") == HASH_PREFIX + blake3.blake3(b"").hexdigest()


def test_hash_bytes_format() -> None:
    digest = hash_bytes(b"abc")
    assert digest.startswith("blake3:")
    assert len(digest) == len("blake3:") + 64
    int(digest[len("blake3:") :], 16)


def test_same_content_same_hash_different_content_different_hash(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", b"hello")
    b = write(tmp_path / "b.txt", b"hello")
    c = write(tmp_path / "c.txt", b"hello!")
    assert hash_file(a) == hash_file(b) == hash_bytes(b"hello")
    assert hash_file(c) != hash_file(a)


@pytest.mark.parametrize("size", [0, 1, hashing.READ_CHUNK_SIZE + 7])
def test_streamed_file_hash_matches_hash_bytes(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    assert hash_file(write(tmp_path / "f.bin", data)) == hash_bytes(data)


def test_big_file_memory_mapped_hash_matches_hash_bytes(tmp_path: Path) -> None:
    data = os.urandom(hashing.MMAP_MIN_SIZE + 12345)
    assert hash_file(write(tmp_path / "big.bin", data)) == hash_bytes(data)


# --- HashCache: files ---------------------------------------------------------


def test_missing_path_gives_none(tmp_path: Path) -> None:
    cache = HashCache(None)
    assert cache.hash_path(tmp_path / "nope") is None
    assert cache.hash_path(tmp_path / "nope" / "deeper") is None


def test_file_hash_is_its_content_hash(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", b"a,b\n1,2\n")
    assert HashCache(None).hash_path(path) == hash_bytes(b"a,b\n1,2\n")


def test_unchanged_file_is_not_read_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "data.bin", b"payload")
    age(path)
    cache = HashCache(None)
    first = cache.hash_path(path)
    forbid_reading(monkeypatch)
    assert cache.hash_path(path) == first


def test_recently_modified_file_is_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "fresh.bin", b"just written")  # mtime is now: inside the racy window
    cache = HashCache(None)
    cache.hash_path(path)
    forbid_reading(monkeypatch)
    with pytest.raises(AssertionError, match="read again"):
        cache.hash_path(path)


def test_a_young_file_written_once_is_read_once_and_its_replacement_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under `written_once` (hand-off files: a new save is a new file) even a file written just now
    is read once; a file elsewhere, as young, is read every time."""
    vars_dir = tmp_path / "vars"
    (vars_dir / "a").mkdir(parents=True)
    handed = write(vars_dir / "a" / "x.pkl", b"first save")
    elsewhere = write(tmp_path / "out.csv", b"a,b")
    cache = HashCache(None, written_once=vars_dir)
    assert cache.hash_path(vars_dir) is not None and cache.hash_path(elsewhere) == hash_bytes(b"a,b")
    with monkeypatch.context() as patched:
        forbid_reading(patched)
        assert cache.hash_path(handed) == hash_bytes(b"first save")
        with pytest.raises(AssertionError, match="read again"):
            cache.hash_path(elsewhere)
    handed.unlink()
    write(vars_dir / "a" / "x.pkl", b"second save")  # as handoff.save does: a new file
    assert cache.hash_path(handed) == hash_bytes(b"second save")


def test_modified_file_gets_new_hash(tmp_path: Path) -> None:
    path = write(tmp_path / "data.bin", b"version 1")
    age(path, 7200)
    cache = HashCache(None)
    assert cache.hash_path(path) == hash_bytes(b"version 1")
    path.write_bytes(b"version 2")
    age(path, 3600)
    assert cache.hash_path(path) == hash_bytes(b"version 2")


def test_same_size_rewrite_with_new_mtime_gets_new_hash(tmp_path: Path) -> None:
    path = write(tmp_path / "data.bin", b"AAAA")
    age(path, 7200)
    cache = HashCache(None)
    cache.hash_path(path)
    path.write_bytes(b"BBBB")
    age(path, 3600)
    assert cache.hash_path(path) == hash_bytes(b"BBBB")


def test_touched_file_is_reread_and_keeps_its_hash(tmp_path: Path) -> None:
    path = write(tmp_path / "data.bin", b"same bytes")
    age(path, 7200)
    cache = HashCache(None)
    reads: list[Path] = []
    real_hash_file = hashing.hash_file

    def counting_hash_file(p: Path) -> str:
        reads.append(p)
        return real_hash_file(p)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hashing, "hash_file", counting_hash_file)
        first = cache.hash_path(path)
        age(path, 3600)  # mtime changes, content does not
        second = cache.hash_path(path)
    assert first == second
    assert len(reads) == 2


# --- HashCache: persistence ---------------------------------------------------


def test_cache_persists_across_instances(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_file = tmp_path / ".nb2pipe" / "hashcache.json"
    path = write(tmp_path / "data.bin", b"persist me")
    age(path)
    first = HashCache(cache_file)
    digest = first.hash_path(path)
    assert not cache_file.exists()  # created lazily, on save
    first.save()
    stored = json.loads(cache_file.read_text())
    st = path.stat()
    assert stored == {os.path.abspath(path): [st.st_ino, st.st_size, st.st_mtime_ns, digest]}

    forbid_reading(monkeypatch)
    assert HashCache(cache_file).hash_path(path) == digest


def test_save_writes_nothing_when_nothing_changed(tmp_path: Path) -> None:
    cache_file = tmp_path / "hashcache.json"
    path = write(tmp_path / "data.bin", b"x")
    age(path)
    cache = HashCache(cache_file)
    cache.save()
    assert not cache_file.exists()
    cache.hash_path(path)
    cache.save()
    age(cache_file)
    aged = cache_file.stat().st_mtime_ns
    cache.hash_path(path)  # cache hit: nothing new
    cache.save()
    assert cache_file.stat().st_mtime_ns == aged


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[1, 2, 3]", b"\xff\xfe\x00", b"", b'{"/x": "oops", "/y": [1, 2]}'],
)
def test_corrupt_cache_file_is_treated_as_empty(tmp_path: Path, content: bytes) -> None:
    cache_file = write(tmp_path / "hashcache.json", content)
    path = write(tmp_path / "data.bin", b"data")
    age(path)
    cache = HashCache(cache_file)
    assert cache.hash_path(path) == hash_bytes(b"data")
    cache.save()
    assert list(json.loads(cache_file.read_text())) == [os.path.abspath(path)]


def test_stale_entry_in_cache_file_is_not_trusted(tmp_path: Path) -> None:
    cache_file = tmp_path / "hashcache.json"
    path = write(tmp_path / "data.bin", b"real")
    age(path)
    st = path.stat()
    wrong = hash_bytes(b"something else")
    write(cache_file, json.dumps({str(path): [st.st_ino, st.st_size + 1, st.st_mtime_ns, wrong]}).encode())
    assert HashCache(cache_file).hash_path(path) == hash_bytes(b"real")


SAVE_AND_HASH = """
import sys
from pathlib import Path
from nb2pipe.hashing import HashCache, hash_bytes
cache = HashCache(Path(sys.argv[1]))
assert cache.hash_path(Path(sys.argv[2])) == hash_bytes(b"x")
cache.save()
assert cache.hash_path(Path(sys.argv[2])) == hash_bytes(b"x")
print("saved")
"""


def test_save_into_read_only_folder_does_not_raise(tmp_path: Path) -> None:
    """A read-only bind mount, which holds for root too (chmod does not): save() writes nothing,
    raises nothing, and the cache still answers."""
    locked = tmp_path / "locked"
    locked.mkdir()
    path = write(tmp_path / "data.bin", b"x")
    age(path)
    cache_file = locked / "sub" / "hashcache.json"
    results = in_mount_namespace(tmp_path, [
        read_only_bind_mount(locked),
        ["sh", f"! touch '{locked}/probe' 2>/dev/null"],  # the folder is read-only, for root too
        ["py", f"import sys; sys.argv[1:] = [{str(cache_file)!r}, {str(path)!r}]\n" + SAVE_AND_HASH],
    ])  # fmt: skip
    assert results[1] == 0, "the bind mount is not read-only"
    exit_code, out, err = results[2]
    assert exit_code == 0 and out.strip() == "saved", err
    assert list(locked.iterdir()) == []


def test_save_leaves_no_temp_files(tmp_path: Path) -> None:
    cache_file = tmp_path / "state" / "hashcache.json"
    path = write(tmp_path / "data.bin", b"x")
    age(path)
    cache = HashCache(cache_file)
    cache.hash_path(path)
    cache.save()
    assert sorted(p.name for p in cache_file.parent.iterdir()) == ["hashcache.json"]


# --- HashCache: folders -------------------------------------------------------


def test_folder_hash_is_independent_of_creation_order(tmp_path: Path) -> None:
    files = {"b.txt": b"2", "a.txt": b"1", "sub/c.txt": b"3", "sub/deeper/d.txt": b"4"}
    for name, data in files.items():
        write(tmp_path / "one" / name, data)
    for name, data in reversed(list(files.items())):
        write(tmp_path / "two" / name, data)
    cache = HashCache(None)
    assert cache.hash_path(tmp_path / "one") == cache.hash_path(tmp_path / "two")


def test_folder_hash_changes_on_add_remove_rename_and_edit(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    write(folder / "a.txt", b"alpha")
    write(folder / "sub" / "b.txt", b"beta")
    cache = HashCache(None)
    seen = [cache.hash_path(folder)]

    write(folder / "sub" / "c.txt", b"gamma")
    seen.append(cache.hash_path(folder))
    (folder / "sub" / "c.txt").unlink()
    assert cache.hash_path(folder) == seen[0]

    (folder / "a.txt").rename(folder / "renamed.txt")
    seen.append(cache.hash_path(folder))
    (folder / "renamed.txt").write_bytes(b"ALPHA")
    seen.append(cache.hash_path(folder))
    assert len(set(seen)) == len(seen)


def test_empty_folder_has_a_stable_hash_distinct_from_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e1").mkdir()
    (tmp_path / "e2").mkdir()
    empty_file = write(tmp_path / "empty.bin", b"")
    cache = HashCache(None)
    empty = cache.hash_path(tmp_path / "e1")
    assert empty == cache.hash_path(tmp_path / "e2") == HashCache(None).hash_path(tmp_path / "e1")
    assert empty == hash_bytes(hashing.FOLDER_MANIFEST_HEADER)
    assert empty != cache.hash_path(empty_file)


def test_folder_manifest_format(tmp_path: Path) -> None:
    write(tmp_path / "d" / "z.txt", b"z")
    write(tmp_path / "d" / "sub" / "a.txt", b"a")
    manifest = (
        hashing.FOLDER_MANIFEST_HEADER
        + b"sub/a.txt\0" + hash_bytes(b"a").encode() + b"\n"
        + b"z.txt\0" + hash_bytes(b"z").encode() + b"\n"
    )
    assert HashCache(None).hash_path(tmp_path / "d") == hash_bytes(manifest)


def test_unchanged_folder_is_not_read_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "data"
    for name in ("a", "b", "sub/c"):
        age(write(folder / name, name.encode()))
    cache = HashCache(None)
    first = cache.hash_path(folder)
    forbid_reading(monkeypatch)
    assert cache.hash_path(folder) == first


def test_folder_follows_file_symlinks_and_marks_dangling_ones(tmp_path: Path) -> None:
    target = write(tmp_path / "outside.txt", b"target")
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "link.txt").symlink_to(target)
    cache = HashCache(None)
    with_link = cache.hash_path(folder)
    real = tmp_path / "real"
    write(real / "link.txt", b"target")
    assert with_link == cache.hash_path(real)

    target.unlink()
    dangling = cache.hash_path(folder)
    assert dangling not in (with_link, cache.hash_path(tmp_path / "empty_does_not_exist"))
    (folder / "link.txt").unlink()
    assert cache.hash_path(folder) != dangling


def test_folder_symlink_loop_does_not_recurse_forever(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    write(folder / "a.txt", b"a")
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    assert HashCache(None).hash_path(folder) is not None


def test_folder_hash_skips_the_cache_file_itself(tmp_path: Path) -> None:
    pipeline = tmp_path / "pipeline"
    age(write(pipeline / "data.csv", b"1,2"))
    cache = HashCache(pipeline / ".nb2pipe" / "hashcache.json")
    before = cache.hash_path(pipeline)
    cache.save()
    assert (pipeline / ".nb2pipe" / "hashcache.json").exists()
    assert cache.hash_path(pipeline) == before


def test_a_derived_hash_is_worked_out_once_and_kept_across_runs(tmp_path: Path) -> None:
    """What `run` and `status` use for a stage's normalized code: tokenizing a script costs more
    than reading it, so an unchanged script is normalized once, in the first run that reads it."""
    cache_file = tmp_path / "hashes.json"
    calls: list[str] = []

    def compute(text: str) -> str:
        calls.append(text)
        return hash_bytes(text.upper().encode())

    first = HashCache(cache_file)
    key = f"normalized-code {hash_bytes(b'x = 1')}"
    assert first.derived(key, lambda: compute("x = 1")) == hash_bytes(b"X = 1")
    first.save()
    again = HashCache(cache_file)  # the next run
    assert again.derived(key, lambda: compute("x = 1")) == hash_bytes(b"X = 1")
    other = f"normalized-code {hash_bytes(b'x = 2')}"
    assert again.derived(other, lambda: compute("x = 2")) == hash_bytes(b"X = 2")
    assert calls == ["x = 1", "x = 2"]
