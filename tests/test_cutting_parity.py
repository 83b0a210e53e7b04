"""The exporter and the JupyterLab extension cut a notebook into stages by the same rules.

Both are checked against one table, tests/fixtures/cutting.json: this file checks
nb2pipe.notebook.plan_notebook, labextension/tests/parity.test.ts checks the extension's
describeCells (which draws the stage chips and borders). Two implementations stay (the extension
decorates cells as they are typed, without a round trip to the server), and this table keeps them
in step.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import notebook
from nb2pipe import model as m
from nb2pipe.notebook import plan_notebook

FIXTURE = Path(__file__).parent / "fixtures" / "cutting.json"
CASES = json.loads(FIXTURE.read_text(encoding="utf-8"))["cases"]


def as_nbformat(cell: dict) -> dict:
    metadata: dict = {}
    if "tags" in cell:
        metadata["tags"] = cell["tags"]
    if "nb2pipe" in cell:
        metadata["nb2pipe"] = cell["nb2pipe"]
    raw = {"cell_type": cell["type"], "metadata": metadata, "source": cell["source"]}
    if cell["type"] == "code":
        raw.update(outputs=[], execution_count=None)
    return raw


def where_the_exporter_puts(cells: list[dict]) -> list[str | None]:
    """For each cell: its stage, or 'setup' / 'parameters' / 'skip', or None (nowhere; not code)."""
    plan = plan_notebook(notebook(*map(as_nbformat, cells)), "nb")
    place: dict[int, str] = {cell.number: "setup" for cell in plan.setup}
    for stage in plan.stages:
        place.update({cell.number: stage.name for cell in stage.code_cells})
    if plan.parameters is not None:
        place[plan.parameters.number] = "parameters"
    found: list[str | None] = []
    for number, cell in enumerate(cells, start=1):
        tags = set(cell.get("tags", []))
        if cell["type"] != "code":
            found.append(None)
        elif number in place:
            found.append(place[number])
        elif tags & set(m.SKIP_TAGS):
            found.append("skip")
        elif plan.parameters is not None and cell["source"] in plan.parameters.source.splitlines():
            found.append("parameters")  # Kale's pipeline-parameters block: merged into the parameters cell
        elif m.INJECTED_PARAMETERS_TAG in tags:
            found.append("parameters")  # its values win over the parameters cell's; it is in no stage
        else:
            found.append(None)
    return found


@pytest.mark.parametrize("case", CASES, ids=[c["name"][:70] for c in CASES])
def test_the_exporter_cuts_the_notebook_as_the_table_says(case):
    assert where_the_exporter_puts(case["cells"]) == [cell["expect"] for cell in case["cells"]]


@pytest.mark.parametrize("case", CASES, ids=[c["name"][:70] for c in CASES])
def test_the_extension_differs_only_where_export_parses_python(case):
    """'lab' (what the extension shows instead) is only ever blank, and only for untagged code the
    exporter places by analysing it: setup when it only imports or defines, else a stage."""
    for cell in case["cells"]:
        if "lab" not in cell:
            continue
        assert cell["lab"] is None and cell["type"] == "code", cell
        assert not any(t.startswith(m.STAGE_TAG_PREFIXES) or t in m.SETUP_TAGS for t in cell.get("tags", [])), cell
        assert cell["expect"] is not None, cell
