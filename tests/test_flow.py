"""What export and explain infer for definitions used in later stages, rebound builtins, values
pickle cannot carry and hidden state (issue 12, items 1, 3, 6 and 12). The trap notebooks under
tests/traps/ are the cases; tests/test_flow_traps.py runs them against the notebook."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import code, md, write_nb
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


# --- 6. values pickle cannot carry -----------------------------------------------------------------

NOTEBOOK_CLASSES = [
    ("unpicklable/class_instance.ipynb", "measure", "class Box:"),
    ("unpicklable/dataclass_records.ipynb", "report", "@dataclass\nclass Point:"),
]


@pytest.mark.parametrize(("trap", "stage", "statement"), NOTEBOOK_CLASSES, ids=[c[0] for c in NOTEBOOK_CLASSES])
def test_the_class_of_a_loaded_instance_is_re_created_before_the_load(trap, stage, statement):
    script = script_of(trap, stage)
    assert statement in script
    assert script.index(statement) < script.index("_nb2pipe_load(")


def test_a_stage_that_loads_nothing_re_creates_no_class():
    assert "class Box" not in script_of("unpicklable/class_instance.ipynb", "build").split("# %% class_instance.ipynb cell")[0]


SAVE = """
from nb2pipe.handoff import save
class Box:
    def __init__(self, w):
        self.w = w
def double(x):
    return 2 * x
def make_counter(start):
    count = [start]
    def step():
        count[0] += 1
        return count[0]
    return step
scale = 3
values = {
    "box": [Box(4)],
    "lambda": lambda x: x * scale,
    "functions": [double],
    "closure": make_counter(10),
}
for name, value in values.items():
    save(name, {name: value}, FOLDER + "/" + name, stage="a", consumers=["b"])
"""

LOAD = """
from nb2pipe.handoff import load
class Box:
    def __init__(self, w):
        self.w = w
box = load(FOLDER + "/box")[0]
print(type(box) is Box, box.w)
print(load(FOLDER + "/lambda")(2), load(FOLDER + "/functions")[0](5), load(FOLDER + "/closure")())
"""


def _python(code: str, folder: Path) -> str:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", f"FOLDER = {str(folder)!r}\n" + code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_values_pickle_cannot_carry_load_in_another_process(tmp_path):
    """A script's `__main__` is what a stage kernel's is: notebook classes travel by name (the
    consumer re-creates them), notebook functions, lambdas and closures by value."""
    _python(SAVE, tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*/*")) == [
        "box.pkl", "closure.cloudpickle", "functions.cloudpickle", "lambda.cloudpickle"
    ]
    assert _python(LOAD, tmp_path).split("\n") == ["True 4", "6 10 11", ""]


def test_explain_says_before_the_run_which_values_need_cloudpickle_or_cannot_be_carried(cli, tmp_path):
    carried = explained(cli, "unpicklable/lambda_values.ipynb")["rules"]["carries"]
    assert carried == ["saves convert with cloudpickle (it holds a lambda)", "saves rules with cloudpickle (it holds a lambda)"]
    carried = explained(cli, "unpicklable/list_of_functions.ipynb")["steps"]["carries"]
    assert carried == ["saves steps with cloudpickle (it holds the notebook's function 'clean')"]

    nb = write_nb(tmp_path / "gen.ipynb", md("## Make"), code("rows = (n * n for n in range(3))\nlog = open('log.txt', 'w')"),
                  md("## Use"), code("print(list(rows))\nlog.write('x')"))
    code_, out, err = cli("explain", nb)
    assert code_ == 0, err
    warnings = [line for line in out.splitlines() if line.startswith("  warning stage 'make', cell 2 ")]
    assert [w.split("): ", 1)[1] for w in warnings] == [
        "variable 'log' is an open file, which cannot be saved, but a later stage reads it; open the file in the stage that uses it",
        "variable 'rows' is a generator, which cannot be saved, but a later stage reads it; make it a list",
    ]


# --- 12. hidden state across stages ----------------------------------------------------------------

HIDDEN_STATE = [
    ("hidden_state/random_seed_then_draw.ipynb", {"seed": [], "draw": [("random", "seed")]}),
    ("hidden_state/numpy_seed.ipynb", {"seed": [], "sample": [("numpy.random", "seed")], "more": [("numpy.random", "sample")]}),
    ("hidden_state/sklearn_global_seed.ipynb", {"data": [], "split": [("numpy.random", "data")]}),
    ("hidden_state/environ_and_path.ipynb", {"configure": [], "report": [("os.environ", "configure"), ("sys.path", "configure")]}),
    ("hidden_state/working_folder.ipynb", {"move": [], "write": [("working folder", "move")]}),
]


@pytest.mark.parametrize(("trap", "restores"), HIDDEN_STATE, ids=[c[0] for c in HIDDEN_STATE])
def test_hidden_state_is_restored_from_the_stage_that_left_it(trap, restores):
    stages = {s.name: s for s in rendered(trap).pipeline.stages}
    for stage, expected in restores.items():
        state_deps = sorted(p.rsplit("/", 2)[1:] for p in stages[stage].deps if "/nb2pipe-state-" in p)
        assert state_deps == sorted([provider, "nb2pipe-state-" + kind.replace(".", "-").replace(" ", "-")] for kind, provider in expected)
        script = script_of(trap, stage)
        for kind, _ in expected:
            assert f"_nb2pipe_restore_state({kind!r}, " in script


def test_explain_names_the_hidden_state_each_stage_carries(cli):
    stages = explained(cli, "hidden_state/random_seed_then_draw.ipynb")
    assert stages["seed"]["carries"] == ["saves global random state (random) for later stages"]
    assert stages["draw"]["carries"] == ["restores global random state (random) from stage 'seed'"]
    _, out, _ = cli("explain", TRAPS / "hidden_state/random_seed_then_draw.ipynb")
    assert "  carries restores global random state (random) from stage 'seed'" in out


def test_an_unseeded_generator_is_not_carried_and_a_private_generator_is_not_global(tmp_path):
    from nb2pipe.infer.state_kinds import plan_hidden_state

    stages = [("a", [("cell 2", "x = random.random()")]), ("b", [("cell 3", "y = random.random()\nrng = np.random.default_rng(0)")])]
    states, _ = plan_hidden_state(["import random", "import numpy as np"], stages)
    assert states["b"].restores == ()
    stages = [("a", [("cell 2", "rng = np.random.default_rng(0)\nnp.random.seed(1)")]), ("b", [("cell 3", "g = np.random.default_rng(2)")])]
    states, _ = plan_hidden_state(["import numpy as np"], stages)
    assert states["b"].restores == ()


def test_an_environment_key_that_is_not_a_literal_is_a_warning_naming_the_stage_and_cell():
    from nb2pipe.infer.state_kinds import plan_hidden_state

    stages = [("a", [("cell 2", "key = 'X'\nos.environ[key] = '1'")]), ("b", [("cell 3", "print(1)")])]
    states, warnings = plan_hidden_state(["import os"], stages)
    assert warnings == [
        "stage 'a', cell 2: os.environ is changed with a key that is not a literal string, so later stages cannot be given "
        "that change; set it with a literal key (os.environ['NAME'] = ...)"
    ]
    assert states["b"].restores == (("os.environ", "a"),)


def test_a_definition_whose_defaults_read_values_is_re_created_after_they_are_loaded():
    script = script_of("definitions/default_from_value.ipynb", "use")
    assert script.index("columns = _nb2pipe_load(") < script.index("def pick(row, keys=columns, most=limit)")
    assert script.index("limit = _nb2pipe_load(") < script.index("def pick(row, keys=columns, most=limit)")


def test_a_rebound_builtin_changed_in_place_is_handed_on_from_the_stage_that_changed_it():
    assert dict(stage_of("builtins/list_rebound_then_extended.ipynb", "show").loads) == {"list": "grow"}
    assert dict(stage_of("builtins/list_rebound_then_extended.ipynb", "grow").loads) == {"list": "start"}


def test_a_method_call_on_a_builtin_the_notebook_never_rebinds_carries_nothing(tmp_path):

    nb = write_nb(tmp_path / "b.ipynb", md("## A"), code("str.join(',', ['a'])"), md("## B"), code("print(str('x'))"))
    assert all(not stage.loads and not stage.saves for stage in plan_export(nb, None).pipeline.stages)


def test_a_re_created_class_brings_the_parameters_its_methods_read():
    apply = stage_of("definitions/method_reads_parameter.ipynb", "apply")
    assert list(apply.params) == ["scale"] and dict(apply.loads) == {"scaler": "build"}
    assert "class Scaler:" in script_of("definitions/method_reads_parameter.ipynb", "apply")


@pytest.mark.parametrize(
    ("source", "kinds"),
    [
        ("from random import choice\nchoice([1, 2])", ["random"]),
        ("import numpy.random as npr\nnpr.seed(1)", ["numpy.random"]),
        ("from numpy.random import shuffle\nshuffle(a)", ["numpy.random"]),
        ("import torch\ntorch.manual_seed(0)\nnet = torch.nn.Linear(2, 2)", ["torch", "torch"]),
        ("from sklearn.model_selection import train_test_split\ntrain_test_split(x)", ["numpy.random"]),
        ("import numpy as np\nrng = np.random.default_rng(0)\nrng.random()", []),
        ("%env MODE=fast", ["os.environ"]),
        ("%cd data", ["working folder"]),
        ("import os\nos.environ.setdefault('A', '1')\nos.environ.get('B')", ["os.environ"]),
        ("import sys\nsys.path.append('lib')", ["sys.path"]),
        ("import random as r\nr.Random(3).random()", []),
    ],
)
def test_the_hidden_state_a_cell_uses(source, kinds):
    from nb2pipe.infer.state_kinds import cell_state_uses

    assert [use.kind for use in cell_state_uses(source, {})] == kinds


def test_a_seed_nb2pipe_cannot_carry_is_a_warning_naming_the_stage_the_cell_and_the_state():
    from nb2pipe.infer.state_kinds import plan_hidden_state

    stages = [("a", [("cell 2", "tf.random.set_seed(1)")]), ("b", [("cell 3", "x = tf.random.uniform([1])")])]
    _, warnings = plan_hidden_state(["import tensorflow as tf"], stages)
    assert warnings == [
        "stage 'a', cell 2: global random state (tensorflow) is seeded here, but nb2pipe cannot carry it to later stages; "
        "seed it in each stage that draws from it"
    ]
    assert plan_hidden_state(["import tensorflow as tf"], stages[:1])[1] == []  # no later stage: nothing lost


def test_an_environment_key_full_of_quotes_is_carried_as_data(tmp_path, monkeypatch, cli):
    """The key reaches the generated save/restore cells quoted: the next stage sees the same key
    and value, and nothing in it runs as code."""
    monkeypatch.chdir(tmp_path)
    key = "K'\\\"); open('pwned', 'w'); (\""
    write_nb(
        tmp_path / "env.ipynb",
        md("## Set"),
        code(f"import os\nos.environ[{key!r}] = 'v'"),
        md("## Use"),
        code(f"import os\nprint(repr(os.environ.get({key!r})))"),
    )
    exit_code, out, err = cli("run", "env.ipynb")
    assert exit_code == 0, out + err
    assert not (tmp_path / "pwned").exists()
    executed = next((tmp_path / "pipelines" / "env" / "runs").glob("*/use.ipynb"))
    outputs = [o for c in json.loads(executed.read_text())["cells"] for o in c.get("outputs", [])]
    printed = ["".join(o.get("text", "")) for o in outputs]
    assert "'v'\n" in printed, printed
