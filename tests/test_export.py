"""Export: the files it writes, byte for byte; determinism; --check; hand edits; formats."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

from conftest import EXAMPLES, GOLDEN, code, write_nb

EXAMPLE_NAMES = sorted(p.stem for p in EXAMPLES.glob("*.ipynb"))


def copy_example(tmp_path: Path, name: str) -> Path:
    target = tmp_path / f"{name}.ipynb"
    shutil.copy(EXAMPLES / f"{name}.ipynb", target)
    return target


def folder_files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_golden_pipeline_folder_of_each_example(tmp_path, cli, name, request):
    nb = copy_example(tmp_path, name)
    status, _, err = cli("export", nb)
    assert status == 0, err
    got = folder_files(tmp_path / "pipelines" / name)
    golden = GOLDEN / name
    if request.config.getoption("--update-golden"):
        shutil.rmtree(golden, ignore_errors=True)
        for rel, text in got.items():
            (golden / rel).parent.mkdir(parents=True, exist_ok=True)
            (golden / rel).write_text(text)
    assert got == folder_files(golden), "generated files differ from tests/golden (rerun with --update-golden after reviewing)"


def test_export_is_deterministic_and_a_rerun_touches_nothing(tmp_path, cli):
    nb = copy_example(tmp_path, "wine_quality")
    cli("export", nb)
    folder = tmp_path / "pipelines" / "wine_quality"
    first = folder_files(folder)
    mtimes = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    status, out, _ = cli("export", nb)
    assert status == 0 and "nothing changed" in out
    assert folder_files(folder) == first
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == mtimes


def test_outputs_execution_counts_and_ids_change_nothing(tmp_path, cli):
    nb = copy_example(tmp_path, "wine_quality")
    cli("export", nb)
    data = json.loads(nb.read_text())
    for i, cell in enumerate(data["cells"]):
        cell["id"] = f"changed-{i}"
        if cell["cell_type"] == "code":
            cell["execution_count"] = 40 + i
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["noise\n"]}]
    nb.write_text(json.dumps(data))
    status, out, _ = cli("export", nb, "--check")
    assert status == 0, out


def test_check_lists_the_files_that_differ_and_exits_1(tmp_path, cli):
    nb = copy_example(tmp_path, "wine_quality")
    assert cli("export", nb, "--check")[0] == 1  # nothing exported yet
    cli("export", nb)
    assert cli("export", nb, "--check")[0] == 0
    data = json.loads(nb.read_text())
    train = next(c for c in data["cells"] if "stage:train" in c["metadata"].get("tags", []))
    train["source"] = "".join(train["source"]) + "\nprint('changed')"
    nb.write_text(json.dumps(data))
    status, out, _ = cli("export", nb, "--check")
    assert status == 1
    assert "differs: stages/train.py" in out and "differs: nb2pipe.yaml" in out
    assert "differs: stages/load.py" not in out


def test_a_hand_edited_file_is_not_overwritten_without_force(tmp_path, cli):
    nb = copy_example(tmp_path, "wine_quality")
    cli("export", nb)
    script = tmp_path / "pipelines" / "wine_quality" / "stages" / "train.py"
    script.write_text(script.read_text() + "\nprint('my tweak')\n")
    data = json.loads(nb.read_text())
    data["cells"][-1]["source"] = "".join(data["cells"][-1]["source"]) + "\n# new"
    nb.write_text(json.dumps(data))
    status, _, err = cli("export", nb)
    assert status == 2 and f"'{script}' was edited by hand" in err and "--force" in err
    assert "my tweak" in script.read_text()
    assert cli("export", nb, "--force")[0] == 0
    assert "my tweak" not in script.read_text()


def test_params_yaml_edits_are_kept_and_new_parameters_added(tmp_path, cli):
    nb = write_nb(tmp_path / "a.ipynb", code("alpha = 0.5", "parameters"), code("print(alpha)", "stage:s"))
    cli("export", nb)
    params = tmp_path / "pipelines" / "a" / "params.yaml"
    assert yaml.safe_load(params.read_text()) == {"alpha": 0.5}
    params.write_text("alpha: 0.1\n")
    write_nb(nb, code("alpha = 0.5\nbeta = 2", "parameters"), code("print(alpha, beta)", "stage:s"))
    assert cli("export", nb)[0] == 0
    assert yaml.safe_load(params.read_text()) == {"alpha": 0.1, "beta": 2}
    # untouched params.yaml follows the notebook's defaults
    nb2 = write_nb(tmp_path / "b.ipynb", code("alpha = 0.5", "parameters"), code("print(alpha)", "stage:s"))
    cli("export", nb2)
    write_nb(nb2, code("alpha = 0.7", "parameters"), code("print(alpha)", "stage:s"))
    cli("export", nb2)
    assert yaml.safe_load((tmp_path / "pipelines" / "b" / "params.yaml").read_text()) == {"alpha": 0.7}


def test_stage_scripts_read_back_through_jupytext_with_provenance(tmp_path, cli):
    nb = copy_example(tmp_path, "wine_quality")
    cli("export", nb)
    folder = tmp_path / "pipelines" / "wine_quality"
    spec = yaml.safe_load((folder / "nb2pipe.yaml").read_text())
    source = json.loads(nb.read_text())
    for name, entry in spec["stages"].items():
        script = jupytext.read(folder / entry["script"])
        assert script.metadata["kernelspec"]["name"] == "python3"
        parameters = [c for c in script.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(parameters) == (1 if entry.get("params") else 0)
        if parameters:
            assert sorted(yaml.safe_load(parameters[0].source.replace(" = ", ": "))) == sorted(entry["params"])
        assert script.metadata["nb2pipe"]["notebook"] == "../../wine_quality.ipynb"
        titled = [c for c in script.cells if c.metadata.get("title", "").startswith("wine_quality.ipynb cell ")]
        assert titled, f"stage '{name}' names none of its notebook cells"
        for cell in titled:
            number = int(cell.metadata["title"].split()[2])
            assert cell.source == "".join(source["cells"][number - 1]["source"]).rstrip("\n")


def test_each_stage_lists_exactly_the_parameters_it_reads(tmp_path, cli):
    nb = copy_example(tmp_path, "wine_quality")
    cli("export", nb)
    spec = yaml.safe_load((tmp_path / "pipelines" / "wine_quality" / "nb2pipe.yaml").read_text())
    params = {name: entry.get("params", []) for name, entry in spec["stages"].items()}
    assert params["load"] == []
    assert set(params["split"]) == {"test_size", "seed"}
    assert set(params["train"]) == {"n_estimators", "max_depth", "seed"}


def test_ipynb_format_writes_valid_notebooks(tmp_path, cli):
    nb = copy_example(tmp_path, "diabetes_kale")
    assert cli("export", nb, "--format", "ipynb")[0] == 0
    scripts = sorted((tmp_path / "pipelines" / "diabetes_kale" / "stages").glob("*.ipynb"))
    assert [p.stem for p in scripts] == ["compare", "load_data", "train_forest", "train_ridge"]
    for path in scripts:
        nbformat.validate(nbformat.read(path, as_version=4))
    assert cli("export", nb, "--format", "ipynb", "--check")[0] == 0


def test_a_removed_stage_loses_its_script(tmp_path, cli):
    nb = write_nb(tmp_path / "a.ipynb", code("x = 1", "stage:one"), code("y = 2", "stage:two"))
    cli("export", nb)
    write_nb(nb, code("x = 1", "stage:one"))
    cli("export", nb)
    assert sorted(p.name for p in (tmp_path / "pipelines" / "a" / "stages").iterdir()) == ["one.py"]


def test_metrics_cell_gets_code_that_writes_its_metrics(tmp_path, cli):
    nb = write_nb(tmp_path / "m.ipynb", code("acc = 0.9\nn: int = 3\nlabel = 'x'", "stage:ev", "metrics"))
    cli("export", nb)
    folder = tmp_path / "pipelines" / "m"
    spec = yaml.safe_load((folder / "nb2pipe.yaml").read_text())
    assert spec["stages"]["ev"]["metrics"] == ["pipelines/m/metrics/ev.json"]
    script = (folder / "stages" / "ev.py").read_text()
    namespace: dict = {}
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        body = jupytext.reads(script, fmt="py:percent")
        for cell in body.cells:
            if cell.cell_type == "code":
                exec(cell.source, namespace)
    finally:
        os.chdir(cwd)
    assert json.loads((folder / "metrics" / "ev.json").read_text()) == {"acc": 0.9, "n": 3}


def test_a_stage_loads_the_variables_an_earlier_stage_binds(tmp_path, cli):
    nb = write_nb(tmp_path / "a.ipynb", code("df = 1", "stage:load"), code("print(df)\nprint(df)", "stage:use"))
    status, _, err = cli("export", nb)
    assert status == 0 and "warning" not in err
    spec = yaml.safe_load((tmp_path / "pipelines" / "a" / "nb2pipe.yaml").read_text())
    folder = "pipelines/a/.nb2pipe/vars/load/df"
    assert spec["stages"]["load"]["outs"] == [folder] and spec["stages"]["load"]["saves"] == ["df"]
    assert spec["stages"]["use"]["deps"] == [folder] and spec["stages"]["use"]["loads"] == {"df": "load"}


def test_export_parses_each_cell_once(tmp_path, cli, monkeypatch):
    """A definition copied into later stages is taken from the analysis, not parsed again per
    consumer; the setup check and the flow analysis share one parse of each cell."""
    import ast
    import uuid

    token = uuid.uuid4().hex  # sources no earlier test analysed
    helpers = f"import math\n\n\ndef area(r):\n    return math.pi * r * r  # {token}"
    setup = f"import os  # {token}"
    users = [f"a_{n} = area({n})  # {token}" for n in range(3)]
    nb = write_nb(
        tmp_path / "a.ipynb",
        code(setup),
        code(helpers, "stage:helpers"),
        *(code(source, f"stage:use{n}") for n, source in enumerate(users)),
    )
    parsed: list[str] = []
    real_parse = ast.parse

    def counting_parse(source, *args, **kwargs):
        parsed.append(source if isinstance(source, str) else "")
        return real_parse(source, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", counting_parse)
    status, _, err = cli("export", nb)
    assert status == 0, err
    script = (tmp_path / "pipelines" / "a" / "stages" / "use2.py").read_text()
    assert "def area(r):" in script and "import math" in script
    assert {source: parsed.count(source) for source in (setup, helpers, *users)} == dict.fromkeys((setup, helpers, *users), 1)


def test_show_lists_stages_files_params_and_edges(tmp_path, cli):
    nb = copy_example(tmp_path, "diabetes_kale")
    cli("export", nb)
    status, out, _ = cli("show", tmp_path / "pipelines" / "diabetes_kale")
    assert status == 0
    assert "load_data -> train_ridge" in out and "train_forest -> compare" in out
    assert "outs:     data/diabetes.csv" in out
    assert "params    alpha=1.0" in out


def test_show_mermaid_draws_the_dag(tmp_path, cli):
    nb = copy_example(tmp_path, "diabetes_kale")
    cli("export", nb)
    status, out, _ = cli("show", tmp_path / "pipelines" / "diabetes_kale", "--mermaid")
    assert status == 0 and out.startswith("flowchart TD\n")
    assert 's_load_data -->|"data/diabetes.csv"| s_train_ridge' in out
    assert "s_train_ridge --> s_compare" in out or 's_train_ridge -->|' in out


def test_show_json_is_machine_readable(tmp_path, cli):
    nb = copy_example(tmp_path, "wine_quality")
    cli("export", nb)
    _status, out, _ = cli("show", tmp_path / "pipelines" / "wine_quality", "--json")
    info = json.loads(out)
    assert [s["name"] for s in info["stages"]] == ["load", "split", "train", "evaluate"]
    assert info["stages"][1]["upstream"] == ["load"]


def test_nbconvert_exporter_writes_the_same_folder(tmp_path, cli):
    nb = copy_example(tmp_path, "wine_quality")
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "nb2pipe", str(nb)],
        check=True, capture_output=True, cwd=tmp_path,
    )
    folder = tmp_path / "pipelines" / "wine_quality"
    assert (folder / "nb2pipe.yaml").exists() and (folder / "stages" / "train.py").exists()
    assert cli("export", nb, "--check")[0] == 0
    with zipfile.ZipFile(tmp_path / "wine_quality-pipeline.zip") as archive:  # the whole pipeline, as Lab downloads it
        names = archive.namelist()
        assert "pipelines/wine_quality/stages/train.py" in names and "pipelines/wine_quality/params.yaml" in names
        for name in names:
            assert archive.read(name) == (tmp_path / name).read_bytes(), name


def test_python_dash_m_and_the_console_script(tmp_path):
    nb = copy_example(tmp_path, "wine_quality")
    result = subprocess.run([sys.executable, "-m", "nb2pipe", "export", str(nb)], capture_output=True, text=True)
    assert result.returncode == 0 and "4 stages: load, split, train, evaluate" in result.stdout
    exe = Path(sys.executable).parent / "nb2pipe"
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "examples:" in result.stdout


