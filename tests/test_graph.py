"""nb2pipe.graph on pipelines built in code: producers, edges (files, folders, after:), the order
and its ties, cycles, the stages a command selects (--stage, --downstream, --from), Mermaid."""

from __future__ import annotations

import pytest

from conftest import code, write_nb
from nb2pipe.errors import CycleError, SpecError, UnknownStageError
from nb2pipe.export import export_notebook
from nb2pipe.graph import downstream, mermaid, order, producers, select, upstream
from nb2pipe.model import Pipeline, Stage
from nb2pipe.spec import load_pipeline


def pipeline(*stages: Stage) -> Pipeline:
    return Pipeline(root="/project/pipelines/p", stages=stages)


def stage(name: str, deps=(), outs=(), metrics=(), after=()) -> Stage:
    return Stage(name=name, script=f"stages/{name}.py", deps=tuple(deps), outs=tuple(outs), metrics=tuple(metrics), after=tuple(after))


# prepare -> train -> evaluate, and report after evaluate; lint stands alone
ML = pipeline(
    stage("prepare", deps=["data/raw.csv"], outs=["data/clean.csv"]),
    stage("train", deps=["data/clean.csv"], outs=["models/model.pkl"], metrics=["metrics/train.json"]),
    stage("evaluate", deps=["models/model.pkl", "data/clean.csv"], metrics=["metrics/eval.json"]),
    stage("lint", deps=["src"]),
    stage("report", deps=["metrics/eval.json"], after=["lint"]),
)


# --- producers -----------------------------------------------------------------------------------


def test_every_out_and_metrics_file_has_its_producer():
    assert producers(ML) == {
        "data/clean.csv": "prepare",
        "models/model.pkl": "train",
        "metrics/train.json": "train",
        "metrics/eval.json": "evaluate",
    }


@pytest.mark.parametrize("second", [stage("b", outs=["x.csv"]), stage("b", metrics=["x.csv"])])
def test_two_producers_of_one_file_is_an_error_naming_both(second):
    with pytest.raises(SpecError) as caught:
        producers(pipeline(stage("a", outs=["x.csv"]), second))
    assert str(caught.value) == (
        "'x.csv' is declared as an output of both stage 'a' and stage 'b'; a file has one producer: remove one of the out: tags"
    )


def test_a_stage_may_name_its_own_out_twice():
    assert producers(pipeline(stage("a", outs=["x.csv"], metrics=["x.csv"]))) == {"x.csv": "a"}


# --- upstream: files, folders, after: ----------------------------------------------------------------


def test_upstream_of_a_chain_with_an_after_edge():
    assert upstream(ML) == {
        "prepare": [],
        "train": ["prepare"],
        "evaluate": ["prepare", "train"],  # in pipeline order, not the order of the deps
        "lint": [],
        "report": ["evaluate", "lint"],
    }


@pytest.mark.parametrize(
    "out, dep",
    [
        ("data", "data/clean.csv"),  # a file inside a produced folder
        ("data/", "data/clean.csv"),
        ("data", "data/sub/deeper.csv"),
        ("data/clean.csv", "data"),  # a folder holding a produced file
        ("data/sub/clean.csv", "data"),
        ("data/clean.csv", "data/"),
        ("data", "data"),
        ("data/", "data/"),  # a folder out written `out:data/`, as folders often are
        ("data/", "data"),
        ("data", "data/"),
        ("data/", "data/sub/deeper.csv"),
    ],
)
def test_folder_deps_and_folder_outs_make_edges(out, dep):
    edges = upstream(pipeline(stage("use", deps=[dep]), stage("make", outs=[out])))
    assert edges["use"] == ["make"]
    assert order(pipeline(stage("use", deps=[dep]), stage("make", outs=[out]))) == ["make", "use"]


def test_a_folder_out_with_a_trailing_slash_feeds_the_stage_that_reads_a_file_in_it(tmp_path):
    """As exported from a notebook: the stage that reads comes first in the notebook, the path is
    built (so inference cannot see the file), and the folder is tagged `out:data/`."""
    notebook = write_nb(
        tmp_path / "nb.ipynb",
        code("import os", "setup"),
        code("part = 'x'", "parameters"),
        code("print(open(f'data/{part}.csv').read())", "stage:use", "in:data/x.csv"),
        code("os.makedirs('data', exist_ok=True)\nopen(f'data/{part}.csv', 'w').write('1')", "stage:make", "out:data/"),
    )
    folder = export_notebook(notebook).folder
    assert select(load_pipeline(folder)) == ["make", "use"]


@pytest.mark.parametrize("first, second", [("data", "data/"), ("data/", "data")])
def test_one_folder_written_two_ways_still_has_one_producer(first, second):
    with pytest.raises(SpecError, match="is declared as an output of both stage 'a' and stage 'b'"):
        producers(pipeline(stage("a", outs=[first]), stage("b", outs=[second])))


@pytest.mark.parametrize("out, dep", [("data/clean.csv", "data/clean.csv.bak"), ("data2", "data/x"), ("dat", "data"), ("a/b", "b")])
def test_paths_that_only_look_alike_make_no_edge(out, dep):
    edges = upstream(pipeline(stage("make", outs=[out]), stage("use", deps=[dep])))
    assert edges["use"] == []


def test_a_stage_that_reads_and_writes_one_file_does_not_depend_on_itself():
    assert upstream(pipeline(stage("log", deps=["log.txt"], outs=["log.txt"]))) == {"log": []}


def test_an_after_edge_to_an_unknown_stage_names_the_stage_and_a_close_match():
    with pytest.raises(UnknownStageError) as caught:
        upstream(pipeline(stage("train"), stage("report", after=["trian"])))
    assert str(caught.value) == "stage 'report', after: unknown stage 'trian'; did you mean 'train'?"


# --- order ----------------------------------------------------------------------------------------


def test_order_puts_every_stage_after_its_upstream():
    assert order(ML) == ["prepare", "lint", "train", "evaluate", "report"]


def test_ties_keep_the_order_of_the_pipeline_file():
    names = ["zeta", "alpha", "mid", "beta"]
    assert order(pipeline(*(stage(n) for n in names))) == names
    assert order(pipeline(*(stage(n) for n in reversed(names)))) == list(reversed(names))


def test_a_diamond_runs_its_two_branches_in_file_order_between_the_ends():
    diamond = pipeline(
        stage("end", deps=["r.txt", "l.txt"]),
        stage("right", deps=["s.txt"], outs=["r.txt"]),
        stage("left", deps=["s.txt"], outs=["l.txt"]),
        stage("start", outs=["s.txt"]),
    )
    assert order(diamond) == ["start", "right", "left", "end"]


@pytest.mark.parametrize(
    "stages, cycle",
    [
        ((stage("a", deps=["b.txt"], outs=["a.txt"]), stage("b", deps=["a.txt"], outs=["b.txt"])), {"a", "b"}),
        ((stage("a", after=["c"]), stage("b", after=["a"]), stage("c", after=["b"])), {"a", "b", "c"}),
        ((stage("a", after=["a"]),), {"a"}),
    ],
)
def test_a_cycle_is_one_line_that_prints_it_and_says_what_to_remove(stages, cycle):
    with pytest.raises(CycleError) as caught:
        order(pipeline(*stages))
    message = str(caught.value)
    path = message.removeprefix("the stages form a cycle: ").split("; ")[0].split(" -> ")
    assert path[0] == path[-1] and set(path) == cycle, message
    assert message.endswith("; remove one of these edges (an after:/prev: tag, or a file that is both read and written)")
    assert "\n" not in message


# --- select: --stage, --downstream, --from --------------------------------------------------------


def test_select_defaults_to_every_stage_in_order():
    assert select(ML) == order(ML)


def test_select_named_stages_only_in_dependency_order():
    assert select(ML, ["report", "prepare"]) == ["prepare", "report"]


def test_select_with_downstream_adds_what_depends_on_them():
    assert select(ML, ["train"], with_downstream=True) == ["train", "evaluate", "report"]
    assert select(ML, ["lint"], with_downstream=True) == ["lint", "report"]


def test_from_a_stage_is_the_stage_and_everything_after_it():
    assert select(ML, from_stage="prepare") == ["prepare", "train", "evaluate", "report"]
    assert select(ML, from_stage="report") == ["report"]


@pytest.mark.parametrize("kwargs", [{"stages": ["trian"]}, {"from_stage": "trian"}])
def test_select_an_unknown_stage_suggests_the_close_one(kwargs):
    with pytest.raises(UnknownStageError, match=r"^unknown stage 'trian'; did you mean 'train'\?$"):
        select(ML, **kwargs)


def test_an_unknown_stage_with_nothing_close_lists_the_known_ones():
    with pytest.raises(UnknownStageError, match=r"^unknown stage 'zzz'; known stages: prepare, train, evaluate, lint, report$"):
        select(ML, ["zzz"])


def test_downstream_of_several_roots():
    assert downstream(upstream(ML), ["prepare", "lint"]) == {"prepare", "train", "evaluate", "lint", "report"}
    assert downstream(upstream(ML), []) == set()


# --- mermaid ---------------------------------------------------------------------------------------


def test_mermaid_nodes_in_order_and_edges_labelled_with_their_files():
    assert mermaid(ML) == (
        "flowchart TD\n"
        '    s_prepare["prepare"]\n'
        '    s_lint["lint"]\n'
        '    s_train["train"]\n'
        '    s_evaluate["evaluate"]\n'
        '    s_report["report"]\n'
        '    s_prepare -->|"data/clean.csv"| s_train\n'
        '    s_prepare -->|"data/clean.csv"| s_evaluate\n'
        '    s_train -->|"models/model.pkl"| s_evaluate\n'
        '    s_evaluate -->|"metrics/eval.json"| s_report\n'
        "    s_lint --> s_report\n"
    )


def test_mermaid_node_ids_keep_names_with_dashes_apart():
    text = mermaid(pipeline(stage("a-b", outs=["x"]), stage("a_b", deps=["x"])))
    assert 's_a__b["a-b"]' in text and 's_a_b["a_b"]' in text
    assert 's_a__b -->|"x"| s_a_b' in text
