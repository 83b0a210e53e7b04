"""What export and explain infer for definitions used in later stages, rebound builtins, values
pickle cannot carry and hidden state (issue 12, items 1, 3, 6 and 12). The trap notebooks under
tests/traps/ are the cases; tests/test_flow_traps.py runs them against the notebook."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nb2pipe.export import plan_export

TRAPS = Path(__file__).resolve().parent / "traps"


def rendered(trap: str) -> Any:
    return plan_export(TRAPS / trap, None)


def stage_of(trap: str, name: str) -> Any:
    return next(s for s in rendered(trap).pipeline.stages if s.name == name)


def script_of(trap: str, stage: str) -> str:
    return str(rendered(trap).files[f"stages/{stage}.py"])


def explained(cli: Any, trap: str) -> dict[str, dict[str, Any]]:
    code, out, err = cli("explain", TRAPS / trap, "--json")
    assert code == 0, err
    return {stage["name"]: stage for stage in json.loads(out)["stages"]}


# --- 1. a definition brings its free names ------------------------------------------------------

DEFINITION_PARAMS = [
    ("definitions/helper_reads_parameter.ipynb", "score", ["threshold"], {"center": "prepare"}),
    ("definitions/chain_of_helpers.ipynb", "use_the_helpers", ["factor"], {}),
    ("definitions/class_in_default.ipynb", "train", ["learning_rate"], {}),
    ("definitions/decorated_helper.ipynb", "apply", [], {"offset": "tools"}),
]


@pytest.mark.parametrize(("trap", "stage", "params", "loads"), DEFINITION_PARAMS, ids=[c[0] for c in DEFINITION_PARAMS])
def test_a_copied_definition_brings_its_parameters_and_values(trap, stage, params, loads):
    consumer = stage_of(trap, stage)
    assert list(consumer.params) == params
    assert dict(consumer.loads) == loads
    script = script_of(trap, stage)
    for name in params:  # the stage's parameters cell sets it, so papermill can inject it
        assert f"# %% tags=[\"parameters\"]\n{name} = " in script


def test_a_parameter_read_only_through_a_definition_makes_the_stage_stale_when_it_changes():
    consumer = stage_of("definitions/chain_of_helpers.ipynb", "use_the_helpers")
    assert "factor" in consumer.params  # params are what staleness compares, key by key


def test_definitions_come_with_their_imports_and_helpers():
    script = script_of("definitions/chain_of_helpers.ipynb", "use_the_helpers")
    assert "import math" in script and "def scale(x)" in script and "def score(x)" in script
    script = script_of("definitions/class_in_default.ipynb", "train")
    assert script.index("class Settings") < script.index("def train(")


# --- 3. rebound builtins and shadowed names ------------------------------------------------------

BUILTIN_LOADS = [
    ("builtins/max_rebound.ipynb", "report", {"max": "load", "min": "load"}),
    ("builtins/names_as_settings.ipynb", "describe", {"dir": "configure", "format": "configure", "id": "configure", "input": "configure"}),
    ("builtins/list_as_data.ipynb", "sum_it", {"list": "build"}),
    ("builtins/shadowed_by_import.ipynb", "report", {"grid": "totals"}),
]


@pytest.mark.parametrize(("trap", "stage", "loads"), BUILTIN_LOADS, ids=[c[0] for c in BUILTIN_LOADS])
def test_a_builtin_name_rebound_to_data_is_a_value_to_carry(trap, stage, loads):
    assert dict(stage_of(trap, stage).loads) == loads


@pytest.mark.parametrize(
    ("trap", "stage", "statements"),
    [
        ("builtins/shadowed_by_import.ipynb", "report", ["from numpy import sum", "from math import pow"]),
        ("builtins/shadowed_by_def.ipynb", "ask", ["def input(prompt):", "def round(x):"]),
    ],
)
def test_a_builtin_shadowed_by_an_import_or_def_is_re_created(trap, stage, statements):
    script = script_of(trap, stage)
    for statement in statements:
        assert statement in script


def test_a_builtin_the_notebook_never_rebinds_is_not_carried():
    stage = stage_of("builtins/list_as_data.ipynb", "sum_it")  # reads print too
    assert "print" not in dict(stage.loads)


def test_a_parameter_named_like_a_builtin_is_injected_where_it_is_read():
    assert list(stage_of("builtins/parameter_named_input.ipynb", "name_the_file").params) == ["input", "format"]
    assert list(stage_of("builtins/parameter_named_input.ipynb", "report").params) == ["input"]


def test_copied_definitions_come_in_the_order_the_notebook_ran_them():
    script = script_of("definitions/decorated_helper.ipynb", "apply")
    assert "import functools" in script
    assert script.index("def twice(fn)") < script.index("@twice\ndef shift(x)")
