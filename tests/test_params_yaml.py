"""params.yaml is meant to be edited by hand: one parameter a line, lists and mappings in block
style, and still read the same way by YAML 1.1 (PyYAML) and YAML 1.2 (DVC) readers."""

from __future__ import annotations

from pathlib import Path

import yaml

from conftest import code, write_nb

PARAMETERS = (
    "alpha = 0.5\n"
    "layers = [64, 32]\n"
    "options = {'optimizer': 'adam', 'flags': ['on', '1e3'], 'schedule': {'warmup': 2}}\n"
    "name = 'yes'\n"
    "empty = []\n"
)
VALUES = {
    "alpha": 0.5,
    "layers": [64, 32],
    "options": {"optimizer": "adam", "flags": ["on", "1e3"], "schedule": {"warmup": 2}},
    "name": "yes",
    "empty": [],
}
BLOCK_BODY = [
    "alpha: 0.5",
    "layers:",
    "- 64",
    "- 32",
    "options:",
    "  optimizer: adam",
    "  flags:",
    "  - 'on'",
    "  - '1e3'",
    "  schedule:",
    "    warmup: 2",
    "name: 'yes'",
    "empty: []",
]


def _export(tmp_path: Path, cli, parameters: str) -> Path:
    nb = write_nb(
        tmp_path / "p.ipynb",
        code(parameters, "parameters"),
        code("print(alpha, layers, options, name, empty)", "stage:use"),
    )
    exit_code, _, err = cli("export", nb)
    assert exit_code == 0, err
    return tmp_path / "pipelines" / "p" / "params.yaml"


def _body(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if not line.startswith("#")]


def test_params_yaml_puts_one_parameter_a_line_and_nests_in_block_style(tmp_path, cli):
    params = _export(tmp_path, cli, PARAMETERS)
    assert _body(params) == BLOCK_BODY
    assert yaml.safe_load(params.read_text()) == VALUES


def test_a_flat_parameters_cell_is_one_name_a_line_not_a_flow_mapping(tmp_path, cli):
    params = _export(tmp_path, cli, "alpha = 0.5\nlayers = 3\nname = 'x'\nempty = None\noptions = 1\n")
    assert _body(params) == ["alpha: 0.5", "layers: 3", "name: x", "empty: null", "options: 1"]


def test_params_yaml_stays_in_block_style_after_a_hand_edit_and_a_new_parameter(tmp_path, cli):
    params = _export(tmp_path, cli, PARAMETERS)
    params.write_text(params.read_text().replace("alpha: 0.5", "alpha: 0.25"))  # the user's edit
    nb = write_nb(
        tmp_path / "p.ipynb",
        code(PARAMETERS + "extra = ['off', 2]\n", "parameters"),
        code("print(alpha, layers, options, name, empty, extra)", "stage:use"),
    )
    exit_code, _, err = cli("export", nb)
    assert exit_code == 0, err
    assert _body(params) == ["alpha: 0.25", *BLOCK_BODY[1:], "extra:", "- 'off'", "- 2"]
    assert yaml.safe_load(params.read_text()) == {**VALUES, "alpha": 0.25, "extra": ["off", 2]}
