"""Kale's `limit:memory:QTY` and nb2pipe's `memory:` are one setting (issue 17): the Kubeflow
export's memory limit and the runner's watch read the same value, and two values for it are an
export error naming the cells, wherever they sit."""

from __future__ import annotations

import pytest

from conftest import code, write_nb
from helpers import assert_one_line_error
from nb2pipe.spec import load_pipeline


def test_kales_memory_limit_is_the_memory_setting(cli, tmp_path):
    nb = write_nb(tmp_path / "a.ipynb", code("x = 1\n", "stage:load", "limit:memory:2Gi"))
    assert cli("export", nb)[0] == 0
    (stage,) = load_pipeline(tmp_path / "pipelines" / "a").stages
    assert stage.settings.memory == 2 * 2**30


@pytest.mark.parametrize("same_cell", [True, False])
def test_memory_and_a_different_kale_memory_limit_are_refused(cli, tmp_path, same_cell):
    tags = [("stage:load", "memory:1GiB", "limit:memory:2Gi")] if same_cell else [("stage:load", "memory:1GiB"), ("limit:memory:2Gi",)]
    nb = write_nb(tmp_path / "a.ipynb", *(code(f"x{i} = 1\n", *cell_tags) for i, cell_tags in enumerate(tags)))
    last = "cell 1 " if same_cell else "cell 2 "
    assert_one_line_error(cli("export", nb), "stage 'load'", "cell 1 ", last, "memory", "limit:memory:2Gi", "keep one of them")


def test_the_same_memory_both_ways_is_no_conflict(cli, tmp_path):
    nb = write_nb(tmp_path / "a.ipynb", code("x = 1\n", "stage:load", "memory:2GiB", "limit:memory:2Gi"))
    assert cli("export", nb)[0] == 0
