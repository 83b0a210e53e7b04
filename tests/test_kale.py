"""Kale-tagged notebooks cut as Kale cuts them (issue 12, item 11).

Each rule is Kale's own, read from kubeflow-kale/kale backend/kale/processors/nbprocessor.py
(NotebookProcessor.parse_notebook and parse_cell_metadata) and its tests
(backend/kale/tests/unit_tests/test_parser.py); the README lists where nb2pipe differs on purpose.
"""

from __future__ import annotations

import shutil

import pytest

from conftest import CORPUS, code, md, notebook
from nb2pipe.errors import SpecError
from nb2pipe.export import export_notebook
from nb2pipe.notebook import plan_notebook


def plan(*cells, name="nb"):
    return plan_notebook(notebook(*cells), name)


def stage_cells(p):
    return {s.name: [c.number for c in s.code_cells] for s in p.stages}


@pytest.mark.parametrize("tag", ["imports", "functions"])
def test_untagged_cells_after_imports_or_functions_join_them_and_run_at_the_top_of_every_step(tag):
    p = plan(
        code("import numpy as np", tag),
        code("LR = 1e-3\nEPOCHS = 2"),  # Kale: part of the `imports` block, prepended to every step
        code("def scale(x):\n    return x * LR"),
        code("a = np.ones(EPOCHS)", "step:make"),
        code("b = scale(a)"),
        code("c = b.sum()", "step:total", "prev:make"),
    )
    assert [c.number for c in p.setup] == [1, 2, 3]
    assert stage_cells(p) == {"make": [4, 5], "total": [6]}


def test_a_skipped_cell_does_not_end_the_block_above_it():
    p = plan(code("import math", "imports"), code("print('debug')", "skip"), code("R = math.pi"), code("x = R", "step:s"))
    assert [c.number for c in p.setup] == [1, 3]


@pytest.mark.parametrize("tags", [("pipeline-metrics",), ("out:table.csv",), ("in:raw.csv",)])
def test_a_cell_with_a_role_of_its_own_is_not_swallowed_by_the_imports_block(tags):
    with pytest.raises(SpecError, match=r"cell 2 .* is above the first stage"):  # not silently setup: say so
        plan(code("import math", "imports"), code("x = math.pi", *tags), code("y = 1", "step:a"))
    p = plan(code("import math", "imports"), code("y = 1", "step:a"), code("x = math.pi", *tags))
    assert [c.number for c in p.setup] == [1] and stage_cells(p) == {"a": [2, 3]}


def test_a_step_ends_the_imports_block():
    p = plan(code("import math", "imports"), code("x = 1", "step:a"), code("y = x + math.pi"))
    assert [c.number for c in p.setup] == [1]
    assert stage_cells(p) == {"a": [2, 3]}


def test_markdown_between_does_not_end_the_block():
    p = plan(code("import math", "imports"), md("## Hyper-parameters"), code("R = 2"), code("x = R", "step:a"))
    assert [c.number for c in p.setup] == [1, 3]


def test_an_empty_block_tag_after_imports_continues_the_imports_block():
    p = plan(code("import math", "imports"), code("R = 2", "block:"), code("x = R", "step:a"))
    assert [c.number for c in p.setup] == [1, 2]


def test_untagged_cells_after_pipeline_parameters_are_more_parameters():
    p = plan(code("a = 1", "pipeline-parameters"), code("b = 'x'"), code("c = a", "step:s"))
    assert dict(p.param_defaults) == {"a": 1, "b": "x"}
    assert stage_cells(p) == {"s": [3]}


def test_several_pipeline_parameters_cells_are_merged_as_kale_does():
    p = plan(code("a = 1", "pipeline-parameters"), code("x = a", "step:s"), code("b = 2", "pipeline-parameters"))
    assert dict(p.param_defaults) == {"a": 1, "b": 2}


def test_papermill_parameters_cells_are_still_one_cell():
    with pytest.raises(SpecError, match="two parameters cells"):
        plan(code("a = 1", "parameters"), code("x = a", "stage:s"), code("b = 2", "parameters"))


def test_prev_counts_only_on_the_cell_that_creates_the_step():
    p = plan(
        code("a = 1", "step:one"),
        code("b = 2", "step:two"),
        code("c = 3", "block:", "prev:nowhere"),  # Kale ignores prev on a cell that creates no step
        code("d = 4", "step:one", "prev:two"),  # ... and on a cell of an existing step
    )
    assert [s.after for s in p.stages] == [(), ()]


def test_nb2pipe_after_tags_count_on_any_cell_of_the_stage():
    p = plan(code("a = 1", "stage:one"), code("b = 2", "stage:two"), code("c = 3", "after:one"))
    assert p.stages[1].after == ("one",)


def test_two_step_names_on_one_cell_are_an_error_as_in_kale():
    with pytest.raises(SpecError, match=r"cell 1 .*two stage tags.*'step:a'.*'step:b'"):
        plan(code("a = 1", "step:a", "step:b"))


KALE_CORPUS = {
    "kale__kubeflow__examples__digit-recognition-kaggle-competition_digit-recognizer-orig.ipynb": {
        "setup": [5, 6],
        "stages": ["download_data", "load_data", "preprocess_data", "modeling", "prediction"],
    },
    "kale__kubeflow__examples__natural-language-processing-with-disaster-tweets-kaggle-competition_"
    "natural-language-processing-with-disaster-tweets-kale.ipynb": {
        "setup": [7, 8],
        "stages": ["load_data", "eda_data", "preprocess_data", "corpus_creation", "embedding_step", "final_model", "train_model"],
    },
}


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the shared corpus is not at {CORPUS}")
@pytest.mark.parametrize("name", sorted(KALE_CORPUS), ids=["digit-recognizer", "disaster-tweets"])
def test_real_kale_notebooks_export_with_kales_steps(tmp_path, name):
    notebook_path = tmp_path / "nb.ipynb"
    shutil.copy(CORPUS / name, notebook_path)
    result = export_notebook(notebook_path)
    assert [s.name for s in result.pipeline.stages] == KALE_CORPUS[name]["stages"]
    setup_script = (result.folder / result.pipeline.stages[0].script).read_text()
    for number in KALE_CORPUS[name]["setup"]:
        assert f"cell {number} (setup)" in setup_script


# --- the same steps as Kale's own parser, on every Kale notebook of the corpus ---------------------


def kale_blocks(nb: dict) -> tuple[list[str], dict[str, list[str]], list[str], list[str]]:
    """(imports + functions sources, {step: sources}, parameters sources, metrics sources), as Kale's
    NotebookProcessor.parse_notebook cuts a notebook: the reference these tests compare with,
    transcribed from kubeflow-kale/kale backend/kale/processors/nbprocessor.py. `block:NAME` is
    read as `step:NAME` (Kale before its KFP v2 backend; see the README's differences)."""
    imports, functions, parameters, metrics = [], [], [], []
    steps: dict[str, list[str]] = {}
    reserved = {"imports": imports, "functions": functions, "pipeline-parameters": parameters, "pipeline-metrics": metrics}
    prev = None
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        tags = cell.get("metadata", {}).get("tags", [])
        special = next((t for t in tags if t in (*reserved, "skip")), None)
        names = [t.split(":", 1)[1] for t in tags if t.startswith(("step:", "block:"))]
        name = special or (names[0] if names else None)
        if name == "skip":
            continue
        if name in reserved:
            reserved[name].append(source)
            prev = name
        elif not name:
            if prev in reserved:
                reserved[prev].append(source)
            elif prev:
                steps[prev].append(source)
        else:
            steps.setdefault(name, []).append(source)
            prev = name
    return imports + functions, steps, parameters, metrics


KALE_NOTEBOOKS = sorted(CORPUS.glob("kale__*.ipynb")) if CORPUS.is_dir() else []


@pytest.mark.skipif(not KALE_NOTEBOOKS, reason=f"the shared corpus is not at {CORPUS}")
@pytest.mark.parametrize("path", KALE_NOTEBOOKS, ids=[p.stem[6:60] for p in KALE_NOTEBOOKS])
def test_kale_notebooks_of_the_corpus_get_kales_steps_setup_and_parameters(path):
    import json

    nb = json.loads(path.read_text(encoding="utf-8"))
    setup, steps, parameters, metrics = kale_blocks(nb)
    try:
        p = plan_notebook(nb, "nb")
    except SpecError as error:
        assert "is not a literal assignment" in str(error)  # Kale refuses it too: parameters must be assignments
        pytest.skip(f"refused by nb2pipe and by Kale: {error}")
    assert [s.name for s in p.stages] == list(steps)
    # a deliberate difference (README): a pipeline-metrics cell runs in the stage above it
    assert {s.name: [c.source for c in s.code_cells if c.source not in metrics] for s in p.stages} == steps
    kept = [c.source for c in p.setup]
    assert [s for s in setup if s.strip() and s in kept] == [s for s in setup if s.strip() and "install" not in s]
    if parameters:
        assert p.parameters is not None and p.parameters.source == "\n".join(parameters)
