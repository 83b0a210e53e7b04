"""The settings dialog of the lab extension checks durations and sizes as export reads them:
both sides run one table, tests/fixtures/settings_grammar.json (the TypeScript side is
labextension/tests/settings.test.ts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nb2pipe.settings import format_duration, format_size, parse_duration, parse_size

TABLE = json.loads((Path(__file__).parent / "fixtures" / "settings_grammar.json").read_text())


@pytest.mark.parametrize(("text", "seconds"), TABLE["durations"])
def test_durations_of_the_shared_table(text, seconds):
    if seconds is None:
        with pytest.raises(ValueError, match="is not a duration"):
            parse_duration(text)
    else:
        assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "size"), TABLE["sizes"])
def test_sizes_of_the_shared_table(text, size):
    if size is None:
        with pytest.raises(ValueError, match="is not a size"):
            parse_size(text)
    else:
        assert parse_size(text) == size


@pytest.mark.parametrize(("seconds", "text"), TABLE["formatted_durations"])
def test_formatted_durations_of_the_shared_table(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize(("size", "text"), TABLE["formatted_sizes"])
def test_formatted_sizes_of_the_shared_table(size, text):
    assert format_size(size) == text
