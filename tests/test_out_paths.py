"""Outputs stay inside the project; files a stage updates are its deps and its outs.

nb2pipe writes, caches and restores outputs, so an output that is the notebook's folder, a parent
of it, or anything outside it (absolute, `..`, through a symlink) would let a run or a restore
destroy files nb2pipe does not own. Declared outs like that are refused at export and at load;
inferred ones are dropped with a warning. Deps may be anywhere: they are only read.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import code, write_nb
from helpers import assert_one_line_error


def export(cli, tmp_path: Path, *cells):
    path = write_nb(tmp_path / "project" / "analysis.ipynb", *cells)
    return cli("export", path), path.parent / "pipelines" / "analysis"


def stages_of(folder: Path) -> dict:
    return yaml.safe_load((folder / "nb2pipe.yaml").read_text())["stages"]


ESCAPING_TAGS = {
    "out:./": "is the project folder itself",
    "out:.": "is the project folder itself",
    "out:data/..": "is the project folder itself",
    "out:..": "is a parent of the project folder",
    "out:../..": "is a parent of the project folder",
    "out:../shared": "is outside the project",
    "out:data/../../shared/x.csv": "is outside the project",
    "out:/tmp/elsewhere.csv": "is outside the project",
    "out:pipelines": "is or holds the pipeline folder",
    "out:analysis.ipynb": "is or holds the notebook",
}


@pytest.mark.parametrize("tag", ESCAPING_TAGS, ids=list(ESCAPING_TAGS))
def test_a_declared_out_that_escapes_the_project_is_refused_at_export(tmp_path, cli, tag):
    result, folder = export(cli, tmp_path, code("x = 1", "stage:make"), code("y = 2", "stage:save", tag))
    assert_one_line_error(result, f"cell 2 ('y = 2'): tag '{tag}'", ESCAPING_TAGS[tag])
    assert not folder.exists(), "a refused export writes nothing"


@pytest.mark.parametrize("path", ["../shared/x.csv", ".", "/tmp/x.csv"])
def test_structured_metadata_outs_that_escape_are_refused(tmp_path, cli, path):
    result, _ = export(cli, tmp_path, code("y = 2", nb2pipe={"stage": "save", "outs": [path]}))
    assert_one_line_error(result, "cell 1 ('y = 2')", "metadata nb2pipe.outs")


def test_an_out_through_a_symlink_that_points_out_is_refused(tmp_path, cli):
    outside = tmp_path / "shared"
    outside.mkdir()
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "data").symlink_to(outside)
    result, _ = export(cli, tmp_path, code("y = 2", "stage:save", "out:data/model.pkl"))
    assert_one_line_error(result, "tag 'out:data/model.pkl'", "is outside the project", f"'{outside}/model.pkl'")


def test_an_out_inside_the_project_through_a_symlink_that_stays_inside_is_fine(tmp_path, cli):
    (tmp_path / "project" / "real").mkdir(parents=True)
    (tmp_path / "project" / "data").symlink_to(tmp_path / "project" / "real")
    result, folder = export(cli, tmp_path, code("y = 2", "stage:save", "out:data/model.pkl"))
    assert result[0] == 0, result[2]
    assert stages_of(folder)["save"]["outs"] == ["data/model.pkl"]


@pytest.mark.parametrize("dep", ["/data/raw.csv", "../shared/raw.csv", "."])
def test_deps_may_be_anywhere(tmp_path, cli, dep):
    result, folder = export(cli, tmp_path, code("y = 2", "stage:load", f"in:{dep}", "out:data/y.csv"))
    assert result[0] == 0, result[2]
    assert dep.removeprefix("./") in stages_of(folder)["load"]["deps"]


INFERRED_ESCAPES = {
    "parent folder": "open('../shared/log.csv', 'w').write('1')",
    "absolute": "df.to_csv('/tmp/nb2pipe-elsewhere.csv')",
    "the notebook itself": "open('analysis.ipynb', 'w').write('{}')",
}


@pytest.mark.parametrize("case", INFERRED_ESCAPES, ids=list(INFERRED_ESCAPES))
def test_an_inferred_out_that_escapes_is_dropped_with_a_warning(tmp_path, cli, case):
    source = INFERRED_ESCAPES[case]
    (status, _out, err), folder = export(cli, tmp_path, code("import pandas as pd\ndf = None", "setup"), code(source, "stage:save"))
    assert status == 0, err
    assert "outs" not in stages_of(folder)["save"]
    warning = next(line for line in err.splitlines() if line.startswith("warning: "))
    assert "stage 'save', cell 2" in warning and "not an output" in warning


def test_an_inferred_out_through_an_outward_symlink_is_dropped(tmp_path, cli):
    (tmp_path / "shared").mkdir()
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "data").symlink_to(tmp_path / "shared")
    (status, _, err), folder = export(cli, tmp_path, code("open('data/out.txt', 'w').write('1')", "stage:save"))
    assert status == 0, err
    assert "outs" not in stages_of(folder)["save"]
    assert "cell 1" in err and "through a symlink" in err


# --- a hand-edited nb2pipe.yaml -----------------------------------------------------------------


@pytest.fixture
def pipeline(tmp_path, cli) -> Path:
    result, folder = export(cli, tmp_path, code("x = 1", "stage:make", "out:data/x.csv"), code("y = x", "stage:use"))
    assert result[0] == 0, result[2]
    return folder


def _edit(folder: Path, stage: str, key: str, value) -> None:
    spec = folder / "nb2pipe.yaml"
    data = yaml.safe_load(spec.read_text())
    data["stages"][stage][key] = value
    spec.write_text(yaml.safe_dump(data))


@pytest.mark.parametrize("key", ["outs", "metrics"])
@pytest.mark.parametrize("path, problem", [
    ("..", "is a parent of the project folder"),
    (".", "is the project folder itself"),
    ("../shared", "is outside the project"),
    ("/etc/passwd", "is outside the project"),
    ("pipelines", "is or holds the pipeline folder"),
])
@pytest.mark.parametrize("command", ["show", "status", "run"])
def test_a_hand_edited_output_that_escapes_is_refused_at_load(pipeline, cli, key, path, problem, command):
    _edit(pipeline, "make", key, [path])
    argv = [command, pipeline] + (["--dry-run"] if command == "run" else [])
    assert_one_line_error(cli(*argv), "nb2pipe.yaml': stage 'make'", f"'{path}' {problem}")


def test_a_hand_edited_output_through_an_outward_symlink_is_refused_at_load(pipeline, cli, tmp_path):
    (tmp_path / "shared").mkdir()
    (pipeline.parent.parent / "data").symlink_to(tmp_path / "shared")
    assert_one_line_error(cli("status", pipeline), "stage 'make'", "output 'data/x.csv' is outside the project", "through a symlink")


def test_a_hand_edited_absolute_dep_is_fine(pipeline, cli):
    _edit(pipeline, "use", "deps", ["/data/raw.csv"])
    status, out, err = cli("show", pipeline)
    assert status == 0, err
    assert "/data/raw.csv" in out


# --- files a stage updates: deps and outs of the same stage ---------------------------------------

UPDATES = {
    "open append": "with open('experiments.csv', 'a') as f:\n    f.write('run\\n')",
    "open a+": "with open('experiments.csv', 'a+') as f:\n    f.write('run\\n')",
    "open r+": "with open('experiments.csv', 'r+') as f:\n    f.write('run\\n')",
    "open mode keyword": "with open('experiments.csv', mode='ab') as f:\n    f.write(b'run\\n')",
    "Path.open append": "from pathlib import Path\nwith Path('experiments.csv').open('a') as f:\n    f.write('run\\n')",
    "to_csv append": "df.to_csv('experiments.csv', mode='a', header=False)",
    "read then rewrite": "old = open('experiments.csv').read()\nopen('experiments.csv', 'w').write(old + 'run\\n')",
    "read in one cell, rewrite in the next": ["old = open('experiments.csv').read()", "open('experiments.csv', 'w').write(old + 'run\\n')"],
}


@pytest.mark.parametrize("case", UPDATES, ids=list(UPDATES))
def test_a_file_a_stage_updates_is_a_dep_and_an_out_of_that_stage(tmp_path, cli, case):
    sources = UPDATES[case] if isinstance(UPDATES[case], list) else [UPDATES[case]]
    cells = [code("import pandas as pd\ndf = pd.DataFrame({'a': [1]})", "stage:prepare")]
    cells += [code(src, "stage:log") if i == 0 else code(src) for i, src in enumerate(sources)]
    (status, _, err), folder = export(cli, tmp_path, *cells)
    assert status == 0, err
    log = stages_of(folder)["log"]
    assert "experiments.csv" in log.get("deps", []), log
    assert "experiments.csv" in log.get("outs", []), log


def test_an_untagged_notebook_appending_to_a_file_lists_it_both_ways(tmp_path, cli):
    (status, _, err), folder = export(
        cli, tmp_path, code("score = 0.9"), code("with open('experiments.csv', 'a') as f:\n    f.write(f'{score}\\n')")
    )
    assert status == 0, err
    (stage,) = stages_of(folder).values()
    assert stage["deps"] == ["experiments.csv"] and stage["outs"] == ["experiments.csv"]


@pytest.mark.parametrize("source", [
    "with open('out.csv', 'w+') as f:\n    f.write('x')",
    "open('out.csv', 'w').write('x')\ncheck = open('out.csv').read()",
    "with open('out.csv', 'x') as f:\n    f.write('x')",
])
def test_a_file_a_stage_writes_before_reading_is_only_an_out(tmp_path, cli, source):
    (status, _, err), folder = export(cli, tmp_path, code(source, "stage:write"))
    assert status == 0, err
    stage = stages_of(folder)["write"]
    assert stage["outs"] == ["out.csv"] and "deps" not in stage


def test_a_file_a_later_stage_appends_to_is_its_dep_and_its_out(tmp_path, cli):
    (status, _, err), folder = export(
        cli, tmp_path,
        code("open('log.txt', 'w').write('start\\n')", "stage:first"),
        code("open('log.txt', 'a').write('more\\n')", "stage:second"),
    )
    assert status == 0, err
    stages = stages_of(folder)
    assert stages["second"]["deps"] == ["log.txt"] and stages["second"]["outs"] == ["log.txt"]
    assert "log.txt" not in stages["first"].get("outs", []), "a file has one producer: its last writer"


# --- a stage tag seen again after another stage -------------------------------------------------


def test_a_stage_split_around_a_stage_that_needs_it_is_refused_naming_both_cells(tmp_path, cli):
    result, folder = export(
        cli, tmp_path,
        code("x = 1", "stage:a"),
        code("y = x + 1", "stage:b"),
        code("z = y + 1", "stage:a"),
    )
    assert_one_line_error(result, "cell 3 ('z = y + 1')", "cell 2 ('y = x + 1')", "stage 'a'", "stage 'b'")
    assert not folder.exists()


def test_a_split_stage_cycle_through_files_is_refused_naming_both_cells(tmp_path, cli):
    result, _ = export(
        cli, tmp_path,
        code("open('f.csv', 'w').write('1')", "stage:a"),
        code("g = open('f.csv').read()\nopen('g.csv', 'w').write(g)", "stage:b"),
        code("z = open('g.csv').read()", "stage:a"),
    )
    assert_one_line_error(result, "cell 3", "cell 2", "'g.csv'")


def test_a_split_stage_cycle_through_a_third_stage_is_refused(tmp_path, cli):
    result, _ = export(
        cli, tmp_path,
        code("x = 1", "stage:a"),
        code("y = x + 1", "stage:b"),
        code("w = y + 1", "stage:c"),
        code("z = w + 1", "stage:a"),
    )
    assert_one_line_error(result, "cell 4 ('z = w + 1')", "cell 3 ('w = y + 1')")


def test_a_split_stage_that_can_run_still_merges(tmp_path, cli):
    (status, _, err), folder = export(
        cli, tmp_path,
        code("x = 1", "stage:a"),
        code("y = 2", "stage:b"),
        code("z = x + 1", "stage:a"),
    )
    assert status == 0, err
    assert stages_of(folder)["a"]["cells"] == [1, 3]


def test_a_pipeline_folder_symlinked_elsewhere_keeps_its_outputs(tmp_path, cli):
    """Variables and metrics live in the pipeline folder; when pipelines/ is a symlink to another
    disk, they are still nb2pipe's own outputs, not an escape."""
    (tmp_path / "project").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "project" / "pipelines").symlink_to(tmp_path / "elsewhere")
    (status, _, err), folder = export(
        cli, tmp_path, code("x = 1", "stage:make"), code("y = x + 1\nscore = 0.5", "stage:use", "metrics")
    )
    assert status == 0, err
    use = stages_of(folder)["use"]
    assert use["deps"] == ["pipelines/analysis/.nb2pipe/vars/make/x"] and use["metrics"] == ["pipelines/analysis/metrics/use.json"]
    for command in ("show", "status"):
        status, _, err = cli(command, folder)
        assert status == 0, err
