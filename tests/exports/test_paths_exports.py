"""Paths named by parameters in the exports (issue 12, item 4): DVC keeps the `${name}` template
and fills it from params.yaml itself; Airflow and Kubeflow get the paths params.yaml names."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import yaml

from nb2pipe.export import export_notebook
from nb2pipe.exporters import export_to, render

pytestmark = pytest.mark.exports

PIPELINE = Path("pipelines/paths")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """paths.ipynb: `load` reads the file parameter `input_file` names and writes `out_file`; `show`
    reads what `load` wrote through a variable holding the path."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for source, tags in [
        ("input_file = 'in.txt'\nout_file = 'total.txt'", ["parameters"]),
        ("numbers = [int(x) for x in open(input_file).read().split()]\nopen(out_file, 'w').write(str(sum(numbers)))",
         ["stage:load"]),
        ("written = out_file\nprint('total', open(written).read())", ["stage:show"]),
    ]:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.write(nb, str(tmp_path / "paths.ipynb"))
    (tmp_path / "in.txt").write_text("1 2 3\n")
    (tmp_path / "other.txt").write_text("10 20\n")
    export_notebook(tmp_path / "paths.ipynb")
    return tmp_path


def test_dvc_yaml_keeps_the_template_and_dvc_resolves_it_from_params_yaml(project: Path) -> None:
    (path,) = export_to("dvc", project / PIPELINE)
    stages = yaml.safe_load(path.read_text())["stages"]
    assert "${input_file}" in stages["load"]["deps"]
    assert stages["load"]["outs"] == ["${out_file}"]
    assert "${out_file}" in stages["show"]["deps"]
    dvc = pytest.importorskip("dvc.repo", reason="DVC is not installed: pip install 'nb2pipe[dvc]'")
    repo = dvc.Repo.init(str(project), no_scm=True)
    try:
        resolved = {s.name: s for s in repo.index.stages}
        assert _files(resolved["load"].deps) == ["in.txt"]
        assert [str(o.def_path) for o in resolved["load"].outs] == ["total.txt"]
        params = project / PIPELINE / "params.yaml"
        params.write_text(params.read_text().replace("in.txt", "other.txt"))
        repo = dvc.Repo(str(project))
        resolved = {s.name: s for s in repo.index.stages}
        assert _files(resolved["load"].deps) == ["other.txt"]
    finally:
        repo.close()


def _files(deps: list) -> list[str]:
    """The data files among a DVC stage's deps (not its script nor its params file)."""
    return [str(d.def_path) for d in deps if not str(d.def_path).endswith((".py", "params.yaml"))]


def test_airflow_orders_stages_by_the_paths_params_yaml_names(tmp_path: Path) -> None:
    """Two parameters naming one file: `make` writes `${made}`, `use` reads `${wanted}`; with
    params.yaml's values they are the same file, so `use` runs after `make`."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for source, tags in [
        ("made = 'x.txt'\nwanted = 'x.txt'", ["parameters"]),
        ("open(made, 'w').write('x')", ["stage:make"]),
        ("print(open(wanted).read())", ["stage:use"]),
    ]:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.write(nb, str(tmp_path / "two.ipynb"))
    export_notebook(tmp_path / "two.ipynb")
    _, files = render("airflow", tmp_path / "pipelines" / "two")
    (text,) = files.values()
    assert "tasks['make'] >> tasks['use']" in text
