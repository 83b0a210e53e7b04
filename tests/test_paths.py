"""Paths held in variables and parameters, and files named by a library's convention (issue 12,
items 4 and 5).

A path a notebook keeps in a variable (`path + "train.csv"`, `os.path.join(out_dir, 'x.csv')`,
`Path('data') / name`, f-strings, `str.format`) is a dep or an out like a literal one. A path that
depends on a parameter is written to nb2pipe.yaml as a template (`${input_file}`) and resolved
with each run's values by `status` and `run`. A path computed at run time is said in a warning
naming the cell, and its stage runs after every earlier stage that writes files. `np.save('arr')`
writes `arr.npy`: the out is the file the library writes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from conftest import code, write_nb
from helpers import assert_one_line_error, stage_status

VARS = "/.nb2pipe/vars/"


def export(cli, tmp_path: Path, *cells: dict) -> tuple[tuple[int, str, str], Path]:
    path = write_nb(tmp_path / "project" / "analysis.ipynb", *cells)
    return cli("export", path), path.parent / "pipelines" / "analysis"


def files_of(folder: Path) -> dict[str, dict[str, list[str]]]:
    """Per stage: its file deps and outs (variables handed between stages left out) and after:."""
    stages = yaml.safe_load((folder / "nb2pipe.yaml").read_text())["stages"]
    return {
        name: {
            "deps": [p for p in entry.get("deps", []) if VARS not in p],
            "outs": [p for p in entry.get("outs", []) if VARS not in p],
            "after": entry.get("after", []),
        }
        for name, entry in stages.items()
    }


# Two stages: `make` writes a file through a path held in a variable, `use` reads it. The path
# is built each way users build paths.
WRITE_THEN_READ = {
    "concatenation": ("path = 'data/'", "path + 'train.csv'", "data/train.csv"),
    "os.path.join": ("import os\nout_dir = 'data'", "os.path.join(out_dir, 'x.csv')", "data/x.csv"),
    "Path /": ("from pathlib import Path\nname = 'x.csv'", "Path('data') / name", "data/x.csv"),
    "Path / Path": ("from pathlib import Path\nroot = Path('data')\nname = 'y.csv'", "root / name", "data/y.csv"),
    "f-string": ("out_dir = 'results'\nstem = 'model'", "f'{out_dir}/{stem}.txt'", "results/model.txt"),
    "str.format": ("out_dir = 'results'", "'{}/scores.txt'.format(out_dir)", "results/scores.txt"),
    "str.format by name": ("d = 'results'", "'{where}/s.txt'.format(where=d)", "results/s.txt"),
    "percent": ("stem = 'report'", "'%s.txt' % stem", "report.txt"),
    "str()": ("from pathlib import Path\np = Path('out') / 'a.txt'", "str(p)", "out/a.txt"),
    "variable of a variable": ("base = 'data'\nfull = base + '/z.txt'\nalias = full", "alias", "data/z.txt"),
    "augmented": ("p = 'data/'\np += 'w.txt'", "p", "data/w.txt"),
    "int in f-string": ("fold = 3", "f'fold{fold}.txt'", "fold3.txt"),
}


@pytest.mark.parametrize("case", WRITE_THEN_READ, ids=list(WRITE_THEN_READ))
def test_a_path_held_in_a_variable_is_an_out_of_its_writer_and_a_dep_of_its_reader(tmp_path, cli, case):
    setup, expression, expected = WRITE_THEN_READ[case]
    result, folder = export(
        cli, tmp_path,
        code(f"{setup}\nwith open({expression}, 'w') as f:\n    f.write('x')", "stage:make"),
        code(f"with open({expression}) as f:\n    text = f.read()\nprint(text)", "stage:use"),
    )
    assert result[0] == 0, result[2]
    files = files_of(folder)
    assert files["make"]["outs"] == [expected]
    assert files["use"]["deps"] == [expected]


def test_a_name_rebound_to_another_path_gives_each_path_in_turn(tmp_path, cli):
    result, folder = export(
        cli, tmp_path,
        code("p = 'a.txt'\nopen(p, 'w').write('a')\np = 'b.txt'\nopen(p, 'w').write('b')", "stage:make"),
        code("print(open('a.txt').read(), open(p).read())", "stage:use"),
    )
    assert result[0] == 0, result[2]
    assert files_of(folder)["make"]["outs"] == ["a.txt", "b.txt"]
    assert files_of(folder)["use"]["deps"] == ["a.txt", "b.txt"]


PARAMETER_PATHS = {
    "the parameter itself": ("input_file = 'in.csv'", "pd.read_csv(input_file)", "${input_file}"),
    "joined": ("data_dir = 'data'", "pd.read_csv(os.path.join(data_dir, 'in.csv'))", "${data_dir}/in.csv"),
    "f-string": ("data_dir = 'data'", "pd.read_csv(f'{data_dir}/in.csv')", "${data_dir}/in.csv"),
    "through a variable": ("data_dir = 'data'", "src = data_dir + '/in.csv'\npd.read_csv(src)", "${data_dir}/in.csv"),
    "a number": ("fold = 2", "pd.read_csv(f'fold{fold}.csv')", "fold${fold}.csv"),
}


@pytest.mark.parametrize("case", PARAMETER_PATHS, ids=list(PARAMETER_PATHS))
def test_a_path_from_a_parameter_is_recorded_as_a_template(tmp_path, cli, case):
    parameters, reading, expected = PARAMETER_PATHS[case]
    result, folder = export(
        cli, tmp_path,
        code(parameters, "parameters"),
        code(f"import os\nimport pandas as pd\nframe = {reading}" if "\n" not in reading
             else f"import os\nimport pandas as pd\n{reading}", "stage:load"),
    )
    assert result[0] == 0, result[2]
    assert files_of(folder)["load"]["deps"] == [expected]


def test_a_parameter_path_written_by_one_stage_and_read_by_another_is_an_edge(tmp_path, cli):
    result, folder = export(
        cli, tmp_path,
        code("out_file = 'clean.csv'", "parameters"),
        code("import pandas as pd\npd.DataFrame({'a': [1]}).to_csv(out_file, index=False)", "stage:clean"),
        code("import pandas as pd\nsrc = out_file\nprint(pd.read_csv(src))", "stage:report"),
    )
    assert result[0] == 0, result[2]
    files = files_of(folder)
    assert files["clean"]["outs"] == ["${out_file}"]
    assert files["report"]["deps"] == ["${out_file}"]


UNRESOLVED = {
    "a loop variable": "for name in ['a', 'b']:\n    open(name + '.txt', 'w').write(name)",
    "a value computed at run time": "import time\nstamp = str(int(time.time()))\nopen(stamp + '.txt', 'w').write('x')",
    "a function's result": "def where():\n    return 'w.txt'\nopen(where(), 'w').write('x')",
    "a path read from a file": "import pandas as pd\nsrc = open('list.txt').read().strip()\nframe = pd.read_csv(src)",
}


@pytest.mark.parametrize("case", UNRESOLVED, ids=list(UNRESOLVED))
def test_a_path_computed_at_run_time_is_warned_about_and_its_stage_runs_after_earlier_writers(tmp_path, cli, case):
    result, folder = export(
        cli, tmp_path,
        code("open('list.txt', 'w').write('x.csv')", "stage:first"),
        code("y = 1", "stage:other"),
        code(UNRESOLVED[case], "stage:computed"),
    )
    status, _, err = result
    assert status == 0, err
    assert "stage 'computed', cell 3" in err and "computed at run time" in err, err
    files = files_of(folder)
    assert files["computed"]["after"] == ["first"], "ordered after the earlier stage that writes files, only"


def test_a_stage_reading_files_runs_after_an_earlier_one_writing_a_computed_path(tmp_path, cli):
    result, folder = export(
        cli, tmp_path,
        code("import time\nname = str(int(time.time()))\nopen('out-' + name, 'w').write('x')", "stage:first"),
        code("y = 2", "stage:second"),
        code("print(open('names.txt').read())", "stage:third"),
    )
    assert result[0] == 0, result[2]
    files = files_of(folder)
    assert files["second"]["after"] == [], "it reads no file"
    assert files["third"]["after"] == ["first"], "the file it reads may be the one 'first' writes"


def test_a_literal_path_holding_a_dollar_brace_is_not_taken_for_a_template(tmp_path, cli):
    result, folder = export(cli, tmp_path, code("open('${HOME}.txt', 'w').write('x')", "stage:odd"), code("y = 1", "stage:next"))
    assert result[0] == 0, result[2]
    assert files_of(folder)["odd"]["outs"] == []
    assert "computed at run time" in result[2]
    status, out, err = cli("run", folder)
    assert status == 0, out + err


def test_file_objects_and_buffers_are_not_unresolved_paths(tmp_path, cli):
    result, _ = export(
        cli, tmp_path,
        code(
            "import io, json, sys\nimport pandas as pd\nbuf = io.StringIO('a\\n1\\n')\nframe = pd.read_csv(buf)\n"
            "with open('o.json', 'w') as f:\n    json.dump({'a': 1}, f)\nframe.to_csv(sys.stdout)",
            "stage:only",
        ),
    )
    assert result[0] == 0, result[2]
    assert "computed at run time" not in result[2], result[2]


# --- files named by convention (item 5) ------------------------------------------------------

CONVENTIONS = {
    "np.save adds .npy": ("import numpy as np\nnp.save('arr', np.arange(3))", ["arr.npy"]),
    "np.save keeps .npy": ("import numpy as np\nnp.save('arr2.npy', np.arange(3))", ["arr2.npy"]),
    "np.save of another suffix adds .npy": ("import numpy as np\nnp.save('arr.bin', np.arange(3))", ["arr.bin.npy"]),
    "np.save by keyword": ("import numpy as np\nnp.save(file='k', arr=np.arange(3))", ["k.npy"]),
    "np.savez adds .npz": ("import numpy as np\nnp.savez('b', a=np.arange(3))", ["b.npz"]),
    "np.savez_compressed adds .npz": ("import numpy as np\nnp.savez_compressed('c', a=np.arange(3))", ["c.npz"]),
    "np.savetxt as named": ("import numpy as np\nnp.savetxt('t', np.arange(3))", ["t"]),
    "plt.savefig adds .png": ("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
                              "plt.plot([1, 2])\nplt.savefig('fig')", ["fig.png"]),
    "fig.savefig adds .png": ("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
                              "fig, ax = plt.subplots()\nfig.savefig('plot')", ["plot.png"]),
    "savefig with a suffix": ("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
                              "plt.plot([1])\nplt.savefig('fig.svg')", ["fig.svg"]),
    # matplotlib adds the default suffix only when it picks the format: with format= it writes the name as given
    "savefig with format=": ("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
                             "plt.plot([1])\nplt.savefig('fig2', format='pdf')", ["fig2"]),
    "to_pickle compressed as named": ("import pandas as pd\npd.DataFrame({'a': [1]}).to_pickle('x.gz')", ["x.gz"]),
    "joblib.dump compressed as named": ("import joblib\njoblib.dump([1, 2], 'm.joblib.gz')", ["m.joblib.gz"]),
    "np.save through a variable": ("import numpy as np\nstem = 'v'\nnp.save(stem, np.arange(3))", ["v.npy"]),
    # the default format is rcParams["savefig.format"], as the notebook sets it (these come last:
    # run top to bottom, the setting holds for every later savefig)
    "savefig after rcParams": ("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
                               "plt.rcParams['savefig.format'] = 'svg'\nplt.plot([1])\nplt.savefig('rc1')", ["rc1.svg"]),
    "savefig after plt.rc": ("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
                             "plt.rc('savefig', format='pdf')\nplt.plot([1])\nplt.savefig('rc2')", ["rc2.pdf"]),
}


@pytest.mark.parametrize("case", CONVENTIONS, ids=list(CONVENTIONS))
def test_the_declared_out_is_the_file_the_library_writes(tmp_path, cli, case):
    source, expected = CONVENTIONS[case]
    result, folder = export(cli, tmp_path, code(source, "stage:save"), code("y = 1", "stage:later"))
    assert result[0] == 0, result[2]
    assert files_of(folder)["save"]["outs"] == expected


def test_conventional_names_match_what_the_libraries_write(tmp_path, cli):
    """Run each case for real: every inferred out exists, so the stage does not fail with
    "did not write its declared output"."""
    cells = [code(source, f"stage:s{i}") for i, (source, _) in enumerate(CONVENTIONS.values())]
    notebook = write_nb(tmp_path / "project" / "analysis.ipynb", *cells)
    status, out, err = cli("run", notebook)
    assert status == 0, out + err
    for _, expected in CONVENTIONS.values():
        for name in expected:
            assert (notebook.parent / name).is_file(), name


# --- templates resolved by run and status ----------------------------------------------------


def _parameter_notebook(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir(parents=True)
    (project / "in.csv").write_text("a\n1\n2\n")
    (project / "other.csv").write_text("a\n5\n")
    return write_nb(
        project / "analysis.ipynb",
        code("input_file = 'in.csv'\nout_file = 'total.txt'", "parameters"),
        code("import pandas as pd\nframe = pd.read_csv(input_file)", "stage:load"),
        code("import time\ntime.sleep(1)\nopen(out_file, 'w').write(str(frame['a'].sum()))", "stage:total"),
        code("src = out_file\nprint('total', open(src).read())", "stage:show"),
    )


def test_a_run_reads_the_parameter_path_and_the_lock_records_the_resolved_path(tmp_path, cli):
    notebook = _parameter_notebook(tmp_path)
    status, out, err = cli("run", notebook, "--jobs", "2")
    assert status == 0, out + err
    assert (notebook.parent / "total.txt").read_text() == "3"
    lock = yaml.safe_load((notebook.parent / "pipelines" / "analysis" / "nb2pipe.lock").read_text())["stages"]
    assert "in.csv" in json.dumps(lock["load"]), lock["load"]
    assert "${" not in json.dumps(lock), "the lock records resolved paths"

    status, out, err = cli("run", notebook, "-p", "input_file=other.csv", "-p", "out_file=five.txt")
    assert status == 0, out + err
    assert (notebook.parent / "five.txt").read_text() == "5"
    lock = yaml.safe_load((notebook.parent / "pipelines" / "analysis" / "nb2pipe.lock").read_text())["stages"]
    assert "other.csv" in json.dumps(lock["load"]) and "five.txt" in json.dumps(lock["total"])


def test_status_sees_a_change_of_the_file_a_parameter_names(tmp_path, cli):
    notebook = _parameter_notebook(tmp_path)
    status, out, err = cli("run", notebook)
    assert status == 0, out + err
    pipe = notebook.parent / "pipelines" / "analysis"
    assert stage_status(cli, pipe)["load"]["state"] == "up-to-date"
    (notebook.parent / "in.csv").write_text("a\n10\n")
    load = stage_status(cli, pipe)["load"]
    assert load["state"] == "stale"
    assert any("in.csv" in str(reason) for reason in load["reasons"]), load
    (notebook.parent / "total.txt").write_text("edited")
    assert stage_status(cli, pipe)["total"]["state"] == "stale", "its out, named by a parameter, was modified"


@pytest.mark.parametrize("value", ["../outside.txt", "/tmp/nb2pipe-outside.txt", "."])
def test_a_parameter_naming_an_out_outside_the_project_is_refused_at_run_time(tmp_path, cli, value):
    notebook = _parameter_notebook(tmp_path)
    assert cli("export", notebook)[0] == 0
    result = cli("run", notebook.parent / "pipelines" / "analysis", "-p", f"out_file={value}")
    assert_one_line_error(result, "stage 'total'", "${out_file}", value)
    assert not (tmp_path / "outside.txt").exists()


def test_a_stage_that_declares_its_outs_is_not_warned_about_a_computed_path_it_writes(tmp_path, cli):
    """Declared files win: `df.to_csv(ensure_parent("data/x.csv"))` tagged `out:data/x.csv`."""
    helper = "import os\ndef ensure_parent(path):\n    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)\n    return path"
    result, folder = export(
        cli, tmp_path,
        code(helper, "functions"),
        code("open('a.txt', 'w').write('a')", "stage:first"),
        code("open(ensure_parent('data/x.csv'), 'w').write('x')", "stage:second", "out:data/x.csv"),
    )
    assert result[0] == 0, result[2]
    assert "computed at run time" not in result[2]
    assert files_of(folder)["second"] == {"deps": [], "outs": ["data/x.csv"], "after": []}


def test_two_parameters_naming_one_file_order_the_run(tmp_path, cli):
    """`make` writes `${made}`, `use` reads `${wanted}`: with these values they are one file, so
    the run puts `use` after `make` even with two jobs."""
    notebook = write_nb(
        tmp_path / "project" / "two.ipynb",
        code("made = 'x.txt'\nwanted = 'x.txt'", "parameters"),
        code("import time\ntime.sleep(1)\nopen(made, 'w').write('made')", "stage:make"),
        code("print(open(wanted).read())", "stage:use"),
    )
    status, out, err = cli("run", notebook, "--jobs", "2")
    assert status == 0, out + err
    assert stage_status(cli, notebook.parent / "pipelines" / "two")["use"]["state"] == "up-to-date"


def test_a_scratch_workspace_links_the_file_a_parameter_names(tmp_path, monkeypatch):
    """`verify` and sweeps run in a scratch copy of the working folder: the input a parameter
    names is there, as the one a literal path names is."""
    from nb2pipe import api
    from nb2pipe.export import export_notebook

    notebook = _parameter_notebook(tmp_path)
    export_notebook(notebook)
    monkeypatch.chdir(notebook.parent)
    with api.scratch_workspace(notebook) as scratch:
        report = scratch.run()
        assert report.ok, report.errors
        assert scratch.path("total.txt").read_text() == "3"
    assert not (notebook.parent / "total.txt").exists(), "the workspace is untouched"


def test_explain_shows_each_path_a_parameter_names_and_each_path_it_cannot_know(tmp_path, cli):
    notebook = write_nb(
        tmp_path / "project" / "analysis.ipynb",
        code("data_dir = 'data'", "parameters"),
        code("import pandas as pd\nframe = pd.read_csv(f'{data_dir}/in.csv')", "stage:load"),
        code("for part in ['a', 'b']:\n    frame.to_csv(part + '.csv')", "stage:split"),
    )
    status, out, err = cli("explain", notebook)
    assert status == 0, err
    assert "dep     ${data_dir}/in.csv = data/in.csv (inferred)" in out, out
    assert "warning stage 'split', cell 3 (\"for part in ['a', 'b']:\"), line 2: the path given to frame.to_csv()" in out, out
    status, out, err = cli("explain", notebook, "--json")
    load = json.loads(out)["stages"][0]
    assert load["deps"] == [{"path": "${data_dir}/in.csv", "how": "inferred", "resolved": "data/in.csv"}]


# --- what the constant propagation knows, cell by cell ---------------------------------------

R, W = "read", "write"
RESOLVED = {
    "a branch forgets": (["p = 'a.txt'\nif flag:\n    p = 'b.txt'", "open(p).read()"], {}, [[], []], [0, 1]),
    "a loop target forgets": (["for p in ['a', 'b']:\n    pass", "open(p).read()"], {}, [[], []], [0, 1]),
    "a function declaring it global": (
        ["p = 'a.txt'\ndef move():\n    global p\n    p = 'b.txt'", "move()\nopen(p).read()"], {}, [[], []], [0, 1]),
    "tuple unpacking": (["src, dst = 'in.txt', 'out.txt'", "text = open(src).read()\nopen(dst, 'w').write(text)"], {},
                        [[], [("in.txt", R), ("out.txt", W)]], [0, 0]),
    # Python opens `dst` (the callee's receiver) before it evaluates the argument reading `src`
    "in the order they run": (["open('out.txt', 'w').write(open('in.txt').read())"], {}, [[("out.txt", W), ("in.txt", R)]], [0]),
    "a later cell rebinding": (["p = 'a.txt'", "p = p.upper()", "open(p).read()"], {}, [[], [], []], [0, 0, 1]),
    "a parameter rebound": (["path = path + '.bak'", "open(path).read()"], {"path": "x"}, [[], [("${path}.bak", R)]], [0, 0]),
    "a file object is no path": (["import json\nwith open('o.json', 'w') as f:\n    json.dump(1, f)"], {}, [[("o.json", W)]], [0]),
    "an open workbook is no path": (["import pandas as pd\nbook = pd.ExcelFile('b.xlsx')", "frame = pd.read_excel(book, 'Sheet1')"], {},
                                     [[], []], [0, 0]),
    "an image read": (["import matplotlib.pyplot as plt\nd = 'figs'", "img = plt.imread(d + '/a.png')"], {},
                      [[], [("figs/a.png", R)]], [0, 0]),
    "a file's size": (["import os\nsize = os.path.getsize('a.bin')"], {}, [[("a.bin", R)]], [0]),
    "taken apart": (["import os\nfrom pathlib import Path\nsrc = Path('data/raw/x.csv')\nname = os.path.basename(str(src))",
                     "open(src.parent / ('clean_' + name), 'w').write('')\nopen(src.with_suffix('.txt'), 'w').write('')\n"
                     "open(os.path.dirname(src) + '/' + src.stem + '.json', 'w').write('')"], {},
                    [[], [("data/raw/clean_x.csv", W), ("data/raw/x.txt", W), ("data/raw/x.json", W)]], [0, 0]),
    "a parameter's last part cannot be taken apart": (["open(Path(name).with_suffix('.bak'), 'w').write('')"], {"name": "x"},
                                                      [[]], [1]),
    "a parameter's folder can": (["from pathlib import Path\np = Path(d) / 'x.csv'", "open(p.with_suffix('.txt'), 'w')"], {"d": "o"},
                                 [[], [("${d}/x.txt", W)]], [0, 0]),
    "Path() is the working folder": (["from pathlib import Path\nimages = Path() / 'images'", "open(images / 'a.png', 'wb')"], {},
                                     [[], [("images/a.png", W)]], [0, 0]),
    "a URL is no file": (["import pandas as pd\nurl = 'https://example.org/x.csv'\nframe = pd.read_csv(url)"], {}, [[]], [0]),
    "a comprehension over paths": (["names = ['a', 'b']", "texts = [open(n).read() for n in names]"], {}, [[], []], [0, 1]),
    "a Path variable opened": (["from pathlib import Path\np = Path('d') / 'x.txt'", "with p.open('w') as f:\n    f.write('x')"], {},
                               [[], [("d/x.txt", W)]], [0, 0]),
    "a literal holding ${ is no template": (["open('${HOME}/x.txt', 'w').write('x')"], {"HOME": "h"}, [[]], [1]),
    "np.save named by a parameter": (["import numpy as np\nnp.save(stem, np.arange(2))"], {"stem": "arr"}, [[]], [1]),
    "np.save named by a parameter, suffix given": (["import numpy as np\nnp.save(stem + '.npy', np.arange(2))"], {"stem": "a"},
                                                   [[("${stem}.npy", W)]], [0]),
}


@pytest.mark.parametrize("case", RESOLVED, ids=list(RESOLVED))
def test_what_each_cell_touches_with_paths_followed(case):
    from nb2pipe.infer.constants import resolve_cells

    sources, parameters, accesses, unresolved = RESOLVED[case]
    found = resolve_cells(sources, parameters)
    assert [list(cell.accesses) for cell in found] == accesses
    assert [len(cell.unresolved) for cell in found] == unresolved


def test_a_function_body_is_not_module_level():
    """Names inside a function are its own; its calls run when it is called (the cell walker keeps
    their literal paths): no warning for `save_fig`'s computed path where it is defined."""
    from nb2pipe.infer.constants import resolve_cells

    source = (
        "import matplotlib.pyplot as plt\nfig_dir = 'figs'\n"
        "def save_fig(name):\n    path = fig_dir + '/' + name + '.png'\n    plt.savefig(path)\n    fig_dir = 1"
    )
    (cell, after) = resolve_cells([source, "open(fig_dir + '/list.txt').read()"], {})
    assert cell.unresolved == ()
    assert after.accesses == (("figs/list.txt", "read"),), "a local of the function does not rebind the global"


def test_a_failed_stage_puts_back_what_was_at_the_path_a_parameter_names(tmp_path, cli):
    """Nothing lost holds for a parameter's path too: the stage writes, then fails, and the file
    holds what the last good run left there."""
    notebook = write_nb(
        tmp_path / "project" / "analysis.ipynb",
        code("out_file = 'result.txt'\nfail = False", "parameters"),
        code("with open(out_file, 'w') as f:\n    f.write('partial' if fail else 'good')\nassert not fail, 'failed on purpose'",
             "stage:write"),
    )
    status, out, err = cli("run", notebook)
    assert status == 0, out + err
    status, out, err = cli("run", notebook, "-p", "fail=True")
    assert status == 1 and "failed on purpose" in err, out + err
    assert (notebook.parent / "result.txt").read_text() == "good"


def test_the_output_cache_restores_the_files_a_parameter_named(tmp_path, cli):
    """Back to earlier values: the stages are restored from the output cache, their outs at the
    paths those values name."""
    notebook = _parameter_notebook(tmp_path)
    assert cli("run", notebook)[0] == 0
    assert cli("run", notebook, "-p", "input_file=other.csv", "-p", "out_file=five.txt")[0] == 0
    (notebook.parent / "total.txt").unlink()
    status, out, err = cli("run", notebook)
    assert status == 0, out + err
    restored = re.search(r"(\d+) restored from cache", out)
    assert restored and int(restored.group(1)) >= 2, out  # `load` and `total`
    assert (notebook.parent / "total.txt").read_text() == "3"


def test_a_cell_too_deep_to_follow_does_not_stop_the_export(tmp_path, cli):
    deep = "p = " + " + ".join(["'a'"] * 700) + "\nopen(p, 'w').write('x')"
    result, folder = export(cli, tmp_path, code(deep, "stage:deep"), code("open('b.txt', 'w').write('b')", "stage:after"))
    assert result[0] == 0, result[2]
    assert "Traceback" not in result[2]
    assert files_of(folder)["after"]["outs"] == ["b.txt"]


# --- paths built inside the notebook's own functions -----------------------------------------

SAVE_RESULTS = "import os\ndef save_results(frame, name, folder='results'):\n" \
               "    os.makedirs(folder, exist_ok=True)\n    frame.to_csv(f'{folder}/{name}.csv', index=False)"


def test_a_helper_writing_a_path_from_its_arguments_writes_it_in_the_calling_stage(tmp_path, cli):
    result, folder = export(
        cli, tmp_path,
        code(SAVE_RESULTS, "functions"),
        code("import pandas as pd\nframe = pd.DataFrame({'a': [1, 2]})\nsave_results(frame, 'train')", "stage:make"),
        code("import pandas as pd\nprint(pd.read_csv('results/train.csv'))", "stage:use"),
    )
    assert result[0] == 0, result[2]
    files = files_of(folder)
    assert files["make"]["outs"] == ["results/train.csv"]
    assert files["use"]["deps"] == ["results/train.csv"]


def test_a_helper_given_a_path_only_the_run_knows_is_warned_about_at_the_call(tmp_path, cli):
    result, folder = export(
        cli, tmp_path,
        code(SAVE_RESULTS, "functions"),
        code("open('first.txt', 'w').write('x')", "stage:first"),
        code("import pandas as pd\nframe = pd.DataFrame({'a': [1]})\nfor name in ['a', 'b']:\n    save_results(frame, name)",
             "stage:many"),
    )
    assert result[0] == 0, result[2]
    assert "stage 'many', cell 3" in result[2] and "line 4" in result[2] and "computed at run time" in result[2], result[2]
    assert files_of(folder)["many"]["after"] == ["first"]


def test_a_helper_writing_a_parameter_path_runs_before_its_reader(tmp_path, cli):
    notebook = write_nb(
        tmp_path / "project" / "helper.ipynb",
        code("report_dir = 'reports'", "parameters"),
        code("import os, time\ndef write_report(text, name):\n    os.makedirs(report_dir, exist_ok=True)\n"
             "    with open(os.path.join(report_dir, name), 'w') as f:\n        f.write(text)", "functions"),
        code("time.sleep(1)\nwrite_report('all good', 'summary.txt')", "stage:make"),
        code("print(open(report_dir + '/summary.txt').read())", "stage:show"),
    )
    status, out, err = cli("run", notebook, "--jobs", "2")
    assert status == 0, out + err
    assert (notebook.parent / "reports" / "summary.txt").read_text() == "all good"
