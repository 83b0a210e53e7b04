"""Run ids: `%Y%m%d-%H%M%S-xxxx`, sortable by time, and never the same twice (a sweep mints
a hundred of them within a second, from several threads; a collision would record one trial
over another, or lose it from the history)."""

from __future__ import annotations

import re
import threading
from collections import Counter

from nb2pipe.run import starting
from nb2pipe.run.starting import new_run_id

ID_SHAPE = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{4}$")  # labextension/src/executed.ts reads this shape too


def test_thousands_of_ids_minted_within_seconds_from_threads_are_distinct() -> None:
    minted: list[str] = []

    def mint() -> None:
        minted.extend(new_run_id() for _ in range(1500))

    threads = [threading.Thread(target=mint) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    repeated = [run_id for run_id, n in Counter(minted).items() if n > 1]
    assert not repeated, f"{len(repeated)} ids minted twice, e.g. {repeated[:3]}"
    assert all(ID_SHAPE.match(run_id) for run_id in minted), minted[:3]


def test_an_id_drawn_twice_in_one_second_is_drawn_again(monkeypatch) -> None:
    draws = iter([b"\xab\xcd", b"\xab\xcd", b"\x12\x34"])
    monkeypatch.setattr(starting.os, "urandom", lambda n: next(draws))
    monkeypatch.setattr(starting, "_timestamp", lambda: "20260101-120000-")
    assert [new_run_id(), new_run_id()] == ["20260101-120000-abcd", "20260101-120000-1234"]


def test_an_id_the_history_has_already_is_not_given_out(monkeypatch) -> None:
    draws = iter([b"\x00\x01", b"\x00\x02"])
    monkeypatch.setattr(starting.os, "urandom", lambda n: next(draws))
    monkeypatch.setattr(starting, "_timestamp", lambda: "20260101-120001-")
    assert new_run_id(taken=lambda run_id: run_id.endswith("0001")) == "20260101-120001-0002"


def test_ids_sort_by_the_time_they_were_minted(monkeypatch) -> None:
    stamps = iter(["20260101-235959-", "20260102-000000-"])
    monkeypatch.setattr(starting, "_timestamp", lambda: next(stamps))
    first, second = new_run_id(), new_run_id()
    assert first < second
