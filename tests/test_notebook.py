"""Cutting notebooks into stages: tags, Kale aliases, structured metadata, headings, parameters."""

from __future__ import annotations

import pytest

from conftest import code, md, notebook
from nb2pipe.errors import SpecError
from nb2pipe.notebook import headings, plan_notebook, slugify


def plan(*cells, name="nb", split_level=2):
    return plan_notebook(notebook(*cells), name, split_level)


def stage_cells(p):
    return {s.name: [c.number for c in s.cells] for s in p.stages}


def test_stage_tags_cut_stages_and_untagged_cells_join_the_previous_stage():
    p = plan(
        code("import os", "setup"),
        code("x = 1", "stage:load"),
        code("y = x + 1"),
        md("## Train"),
        code("z = 2", "stage:train", "after:load"),
    )
    assert stage_cells(p) == {"load": [2, 3], "train": [4, 5]}
    assert [c.number for c in p.setup] == [1]
    assert p.stages[1].after == ("load",)


@pytest.mark.parametrize(
    "stage_tag, after_tag, setup_tag, params_tag, metrics_tag",
    [
        ("stage:", "after:", "setup", "parameters", "metrics"),
        ("step:", "prev:", "imports", "pipeline-parameters", "pipeline-metrics"),
        ("block:", "prev:", "functions", "pipeline-parameters", "pipeline-metrics"),
    ],
    ids=["nb2pipe", "kale-step", "kale-block"],
)
def test_kale_aliases_mean_the_same_as_nb2pipe_tags(stage_tag, after_tag, setup_tag, params_tag, metrics_tag):
    p = plan(
        code("import numpy as np", setup_tag),
        code("n = 3", params_tag),
        code("a = np.ones(n)", stage_tag + "make"),
        code("b = a.sum()", stage_tag + "total", after_tag + "make"),
        code("print(b)", metrics_tag),
        code("print('exploring')", "skip"),
    )
    assert [s.name for s in p.stages] == ["make", "total"]
    assert p.stages[1].after == ("make",)
    assert p.stages[1].metrics_cells == (5,)
    assert [c.number for c in p.setup] == [1]
    assert dict(p.param_defaults) == {"n": 3}
    assert 6 not in [c.number for s in p.stages for c in s.cells]


def test_kale_empty_block_tag_continues_the_current_stage():
    p = plan(code("a = 1", "block:first"), code("b = 2", "block:"), code("c = 3", "block:second"))
    assert stage_cells(p) == {"first": [1, 2], "second": [3]}


def test_a_stage_tag_seen_again_adds_cells_to_that_stage():
    p = plan(code("a = 1", "stage:a"), code("b = 2", "stage:b"), code("a2 = 3", "stage:a"))
    assert stage_cells(p) == {"a": [1, 3], "b": [2]}


def test_kale_settings_are_kept_as_meta_not_errors():
    p = plan(code("x = 1", "step:gpu", "limit:nvidia.com/gpu:2", "image:python:3.11", "label:team:ml"))
    assert dict(p.stages[0].meta) == {"image": ("python:3.11",), "label": ("team:ml",), "limit": ("nvidia.com/gpu:2",)}


def test_structured_metadata_is_read_and_wins_over_tags():
    cell = code("x = 1", "stage:old", nb2pipe={"stage": "new", "deps": ["a.csv"], "outs": ["b.csv"]})
    p = plan(code("y = 0", "stage:first"), cell, code("z = 1", nb2pipe={"stage": "last", "after": ["first"]}))
    assert [s.name for s in p.stages] == ["first", "new", "last"]
    assert p.stages[1].deps == ("a.csv",) and p.stages[1].outs == ("b.csv",)
    assert p.stages[2].after == ("first",)


def test_in_and_out_tags_declare_files():
    p = plan(code("x = 1", "stage:a", "out:data/x.csv", "in:./raw.csv"))
    assert p.stages[0].deps == ("raw.csv",) and p.stages[0].outs == ("data/x.csv",)


def test_untagged_imports_above_the_first_stage_are_setup():
    p = plan(code("import pandas as pd\n%matplotlib inline\ndef f():\n    return 1"), code("x = f()", "stage:a"))
    assert [c.number for c in p.setup] == [1]


def test_untagged_notebook_splits_at_level_two_headings_even_mid_cell():
    p = plan(
        md("# Title\nintro"),
        code("import math"),
        md("some text\n\n## Load the data\nmore"),
        code("x = 1"),
        md("### detail"),
        code("y = 2"),
        md("## Train a Model!"),
        code("z = 3"),
        md("## Load the data"),
        code("w = 4"),
    )
    assert list(stage_cells(p)) == ["load_the_data", "train_a_model", "load_the_data_2"]
    assert stage_cells(p)["load_the_data"] == [3, 4, 5, 6]
    assert [c.number for c in p.setup] == [2]


def test_split_level_chooses_the_heading_level():
    p = plan(md("# One"), code("x = 1"), md("## sub"), code("y = 2"), md("# Two"), code("z = 3"), split_level=1)
    assert list(stage_cells(p)) == ["one", "two"]


def test_no_headings_gives_one_stage_named_after_the_notebook():
    p = plan(code("x = 1"), code("y = x"), name="my_analysis")
    assert stage_cells(p) == {"my_analysis": [1, 2]}


def test_code_before_the_first_heading_that_does_work_becomes_its_own_stage():
    p = plan(md("# Churn study"), code("df = load()"), md("## Model"), code("fit(df)"))
    assert list(stage_cells(p)) == ["churn_study", "model"]


@pytest.mark.parametrize(
    "text, slug",
    [("Load the data", "load_the_data"), ("1. Train `model`!", "s_1_train_model"), ("¿¡", "stage"), ("A" * 80, "a" * 64)],
)
def test_slugify(text, slug):
    assert slugify(text) == slug


def test_headings_ignore_fenced_code():
    assert headings("```\n## not a heading\n```\n## real") == [(2, "real")]


def test_parameters_cell_accepts_annotations_comments_and_multiline_literals():
    p = plan(
        code('"""Defaults; papermill overrides them."""\n'
             "a: float = 2.25  # learning rate\nname = 'x'\nflags = [\n  1,\n  2,\n]\nd = {'k': None, 'b': True}\nneg = -1", "parameters"),
        code("print(a)", "stage:s"),
    )
    assert dict(p.param_defaults) == {"a": 2.25, "name": "x", "flags": [1, 2], "d": {"k": None, "b": True}, "neg": -1}


def test_injected_parameters_override_the_defaults():
    p = plan(code("a = 1\nb = 2", "parameters"), code("a = 10", "injected-parameters"), code("print(a, b)"))
    assert dict(p.param_defaults) == {"a": 10, "b": 2}
    assert all(c.number != 2 for s in p.stages for c in s.cells)


def test_outputs_ids_and_execution_counts_do_not_change_the_source_hash():
    a = notebook(code("x = 1", "stage:a"))
    b = notebook(code("x = 1", "stage:a"))
    b["cells"][0].update(id="abc", execution_count=7, outputs=[{"output_type": "stream", "name": "stdout", "text": "1"}])
    assert plan_notebook(a, "n").source_hash == plan_notebook(b, "n").source_hash
    c = notebook(code("x = 2", "stage:a"))
    assert plan_notebook(c, "n").source_hash != plan_notebook(a, "n").source_hash


def test_a_stage_name_from_structured_metadata_is_validated():
    with pytest.raises(SpecError, match="bad stage name"):
        plan(code("x = 1", nb2pipe={"stage": "Bad Name"}))


# --- issue 12 item 10: every heading at or above the split level starts a stage -----------------


@pytest.mark.parametrize(
    "cells, expected",
    [
        # a `# Part` after `##` sections: its code is not folded into the last `##` stage
        ([md("# Study"), code("import math"), md("## Load"), code("a = 1"), md("# Part two"), code("b = a + 1")],
         {"load": [3, 4], "part_two": [5, 6]}),
        # the same when the higher heading shares its cell with text
        ([md("## Load"), code("a = 1"), md("Done loading.\n\n# Appendix\nmore words"), code("c = a * 2")],
         {"load": [1, 2], "appendix": [3, 4]}),
        # a cell with two such headings: the code below it belongs to the last one
        ([md("## Load"), code("a = 1"), md("# Part two\n## Train"), code("m = a")],
         {"load": [1, 2], "train": [3, 4]}),
        # headings deeper than the split level still never split
        ([md("## Load"), code("a = 1"), md("### detail\n#### more"), code("b = a")], {"load": [1, 2, 3, 4]}),
    ],
    ids=["level-1-after-level-2", "mid-cell", "two-in-one-cell", "deeper-never"],
)
def test_every_heading_at_or_above_the_split_level_starts_a_stage(cells, expected):
    assert stage_cells(plan(*cells)) == expected


def test_split_level_three_splits_at_one_two_and_three():
    p = plan(md("# A"), code("a = 1"), md("### C"), code("c = a"), md("## B"), code("b = c"), md("#### D"), code("d = b"),
             split_level=3)
    assert stage_cells(p) == {"a": [1, 2], "c": [3, 4], "b": [5, 6, 7, 8]}
