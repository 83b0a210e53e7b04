"""Generated files are safe and faithful.

- Stage scripts carry every notebook cell faithfully: read back with jupytext, each cell is there,
  in its kind, byte for byte (trailing blank lines of a code cell aside); markdown never runs and
  code is never dropped; where a percent script cannot carry a cell, the stage is a notebook.
- The code hash (state.normalized_code) sees the cells jupytext sees.
- Names and text from a notebook reach generated files as data: quoted, or refused when they
  hold control characters.
- params.yaml means the same to PyYAML (YAML 1.1) and to DVC's reader (YAML 1.2), and parameter
  defaults that cannot round-trip are refused.
- Generated files respect the umask and keep the mode of the file they replace.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import stat
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

from conftest import CORPUS, code, md, write_nb
from nb2pipe.errors import Nb2PipeError
from nb2pipe.export import export_notebook

CORPUS_NOTEBOOKS = sorted(CORPUS.glob("*.ipynb")) if CORPUS.is_dir() else []


# --- reading back what export wrote ------------------------------------------------------------


def stage_cells(folder: Path) -> dict[str, list]:
    """Per stage, the cells of its script as run time reads them (jupytext / nbformat)."""
    spec = yaml.safe_load((folder / "nb2pipe.yaml").read_text(encoding="utf-8"))
    cells = {}
    for name, entry in spec["stages"].items():
        path = folder / entry["script"]
        if path.suffix == ".ipynb":
            cells[name] = nbformat.read(str(path), as_version=4).cells
        else:
            cells[name] = jupytext.reads(path.read_text(encoding="utf-8"), fmt="py:percent").cells
    return cells


_TITLE_CELL = re.compile(r"cell (\d+)(?: \(setup\))?$")


def notebook_cell_number(cell) -> int | None:
    title = cell.metadata.get("title", "")
    match = _TITLE_CELL.search(title)
    return int(match.group(1)) if match else None


def trimmed(source: str) -> str:
    """A code cell's source without trailing blank lines (which are not code)."""
    lines = source.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def assert_cells_survive(notebook: Path, folder: Path) -> int:
    """Every notebook cell a stage script carries comes back byte for byte, in its kind; the
    number of cells checked."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    checked = 0
    for stage, cells in stage_cells(folder).items():
        numbers = [notebook_cell_number(c) for c in cells]
        for cell, number in zip(cells, numbers, strict=True):
            if number is None:
                assert cell.cell_type == "code" or cell.source.startswith("# Stage"), (stage, cell)
                continue
            original = nb["cells"][number - 1]
            source = "".join(original["source"]) if isinstance(original["source"], list) else original["source"]
            assert cell.cell_type == original["cell_type"], f"stage '{stage}', cell {number} changed kind"
            expected = trimmed(source) if cell.cell_type == "code" else source
            got = trimmed(cell.source) if cell.cell_type == "code" else cell.source
            assert got == expected, f"stage '{stage}', cell {number} changed"
            assert "parameters" not in cell.metadata.get("tags", []), f"stage '{stage}', cell {number} became a parameters cell"
            checked += 1
    spec = yaml.safe_load((folder / "nb2pipe.yaml").read_text(encoding="utf-8"))
    declared = {n for entry in spec["stages"].values() for n in entry.get("cells", [])}
    carried = {notebook_cell_number(c) for cells in stage_cells(folder).values() for c in cells}
    assert declared <= carried, f"cells {sorted(declared - carried)} are missing from the stage scripts"
    return checked


# --- 1. stage scripts are faithful ---------------------------------------------------------------


@pytest.mark.skipif(not CORPUS_NOTEBOOKS, reason=f"the shared corpus is not at {CORPUS}")
@pytest.mark.parametrize("path", CORPUS_NOTEBOOKS, ids=[p.name[:60] for p in CORPUS_NOTEBOOKS])
def test_every_corpus_notebook_survives_export_cell_for_cell(tmp_path, path):
    notebook = tmp_path / "nb.ipynb"
    shutil.copy(path, notebook)
    try:
        result = export_notebook(notebook)
    except Nb2PipeError as error:
        pytest.skip(f"export refuses it: {error}")
    assert assert_cells_survive(notebook, result.folder) > 0


TRICKY_CELLS = {
    "markdown %% line then shell": md("Notes\n%%\n!touch pwned\n%matplotlib inline\nrm -rf x"),
    "markdown %% with a space": md("%% \n%%bash\ntouch pwned"),
    "markdown latex %% comment": md("$$x^2$$\n%% a LaTeX comment\n  %%indented\n%%%"),
    "markdown In[] and codecell": md("In[3]:\n<codecell>\n# %% heading"),
    "markdown mermaid fence": md("```mermaid\n%% a mermaid comment\ngraph TD\n```\nafter"),
    "markdown unclosed fence": md("```python\n%% inside\nno close"),
    "markdown trailing newline": md("text\n"),
    "markdown blank lines": md("\n\nmiddle\n\n"),
    "markdown # and spaces": md("# title\n  indented\n#no space\n# %%x"),
    "code # %% [markdown] inside": code("x = 1\n# %% [markdown]\ny = x + 1"),
    "code # %% alone": code("# %%\nz = 1"),
    "code #%% and indented": code("#%%\n    # %% indented\nw = 1"),
    "code In[] comment": code("# In[3]:\nv = 1"),
    "code cell magic at top": code("%%time\nx = 1"),
    "code magics and shell": code("!ls\n%matplotlib inline\ny = 3\n%time y\nfiles = !ls"),
    "code comments that look like magics": code("# !touch pwned\n# %time\n# rm -rf x\n# cat x\nz = 1"),
    "code light-format escapes": code("## +\n# # +\n# +\n#+\nu = 1"),
    "code marker inside a docstring": code('def f():\n    """Doc\n# %% [markdown]\n    """\n    return 1'),
    "code unterminated string": code("s = '''\nstill a string"),
    "code form feed and U+2028": code("s = 'a\x0cb'\nt = 'c\u2028d'"),
    "code carriage return": code("s = 1\r\nt = 2"),
    "code leading blank lines": code("\n\nq = 1"),
    "code trailing blank lines": code("q = 2\n\n\n"),
    "code quotes and escapes": code("s = \"'\"\nt = '\\''\nu = '''a\n'b'\n'''\n# %%  not in a string"),
}


@pytest.mark.parametrize("cell", list(TRICKY_CELLS.values()), ids=list(TRICKY_CELLS))
def test_tricky_cells_survive_export_cell_for_cell(tmp_path, cli, cell):
    notebook = write_nb(tmp_path / "nb.ipynb", code("import os", "setup"), code("a = 1", "stage:first"), cell, code("b = 2"))
    status, _, err = cli("export", notebook)
    assert status == 0, err
    assert assert_cells_survive(notebook, tmp_path / "pipelines" / "nb") >= 3


def test_a_stage_a_percent_script_cannot_carry_is_written_as_a_notebook_with_a_warning(tmp_path, cli):
    notebook = write_nb(
        tmp_path / "nb.ipynb",
        code("x = 1", "stage:plain"),
        code("y = 1\n# %% [markdown]\ny = 2", "stage:tricky"),
    )
    status, _, err = cli("export", notebook)
    assert status == 0
    stages = tmp_path / "pipelines" / "nb" / "stages"
    assert sorted(p.name for p in stages.iterdir()) == ["plain.py", "tricky.ipynb"]
    assert "stage 'tricky'" in err and "cell 2" in err and "stages/tricky.ipynb" in err
    assert cli("export", notebook, "--check")[0] == 0
    write_nb(notebook, code("x = 1", "stage:plain"), code("y = 2", "stage:tricky"))  # fixed: a script again
    assert cli("export", notebook)[0] == 0
    assert sorted(p.name for p in stages.iterdir()) == ["plain.py", "tricky.py"]


def test_markdown_and_commented_magics_never_run_and_no_code_is_dropped(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("mine\n")
    write_nb(
        tmp_path / "nb.ipynb",
        code("x = 1", "stage:one"),
        md("Notes\n%%\n!touch pwned_bang\n%%bash\ntouch pwned_bash\nrm keep.txt"),
        md("Some LaTeX: $$a$$\n%% \n!touch pwned_latex"),
        code("# !touch pwned_comment\n# rm keep.txt\ny = 2"),
        code("z = 3\n# %% [markdown]\nopen('ran.txt', 'w').write('ran')"),
    )
    status, out, err = cli("run", "nb.ipynb")
    assert status == 0, out + err
    assert (tmp_path / "ran.txt").read_text() == "ran", "code after a '# %% [markdown]' line was dropped"
    assert (tmp_path / "keep.txt").read_text() == "mine\n", "a commented 'rm' ran"
    assert not list(tmp_path.glob("pwned*")), "markdown or a comment ran as code"


# --- 2. the code hash sees what jupytext sees ---------------------------------------------------


def _jupytext_code(text: str) -> list[str]:
    from nb2pipe.state import _strip_comments

    cells = jupytext.reads(text, fmt="py:percent").cells
    kept = [c.source for c in cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])]
    return [stripped for stripped in (_strip_comments(s) for s in kept) if stripped]


@pytest.mark.parametrize("cell", list(TRICKY_CELLS.values()), ids=list(TRICKY_CELLS))
def test_the_code_hash_reads_the_cells_jupytext_reads(tmp_path, cli, cell):
    from nb2pipe.state import normalized_code

    notebook = write_nb(tmp_path / "nb.ipynb", code("p = 1", "parameters"), code("a = p", "stage:first"), cell, md("# %% [markdown] x\n%%"))
    assert cli("export", notebook)[0] == 0
    for script in (tmp_path / "pipelines" / "nb" / "stages").glob("*.py"):
        text = script.read_text(encoding="utf-8")
        assert normalized_code(text) == "\n".join(_jupytext_code(text)), script.name


def test_code_after_a_marker_like_line_in_a_string_still_counts_for_staleness(tmp_path, cli):
    from nb2pipe.state import normalized_code

    source = 'doc = """\n# %% [markdown]\n"""\nvalue = {}'
    hashes = []
    for value in (1, 2):
        notebook = write_nb(tmp_path / f"v{value}" / "nb.ipynb", code(source.format(value), "stage:s"))
        assert cli("export", notebook)[0] == 0
        hashes.append(normalized_code((notebook.parent / "pipelines/nb/stages/s.py").read_text()))
    assert hashes[0] != hashes[1], "a code change went unnoticed"


# --- 3. names and text from the notebook are data ------------------------------------------------

NASTY_NAMES = [
    'a"""b',
    "it's",
    "{x}",
    "$(touch pwned)",
    "#",
    "ünï cödé 名前 🚀",
    'a tags=["parameters"]',
    "x [markdown] y",
    'x language="bash"',
    "nb2pipe-checksum: 0123456789abcdef",
    "@NB2PIPE_CHECKSUM@",
    "back\\slash",
    "a: b, {c}",
    "- dash",
    "1e3",
]


def _nasty_notebook(folder: Path, stem: str) -> Path:
    return write_nb(
        folder / f"{stem}.ipynb",
        code("import os", "setup"),
        code("alpha = 0.5\nlabel = 'x'", "parameters"),
        md("# A title"),
        code("# comment\nresult = alpha * 2\nwith open('out.txt', 'w') as f:\n    f.write(label)", "stage:make", "out:out.txt"),
        code("with open('out.txt') as f:\n    print(f.read(), result, alpha)", "stage:use", "in:out.txt", "metrics"),
    )


@pytest.mark.parametrize("stem", NASTY_NAMES)
def test_a_nasty_notebook_name_is_carried_as_data(tmp_path, cli, stem):
    notebook = _nasty_notebook(tmp_path, stem)
    status, _, err = cli("export", notebook)
    assert status == 0, err
    folder = tmp_path / "pipelines" / stem
    spec = yaml.safe_load((folder / "nb2pipe.yaml").read_text(encoding="utf-8"))
    assert spec["source"]["notebook"] == f"../../{stem}.ipynb"
    assert list(spec["stages"]) == ["make", "use"]
    assert yaml.safe_load((folder / "params.yaml").read_text(encoding="utf-8")) == {"alpha": 0.5, "label": "x"}
    assert_cells_survive(notebook, folder)
    for stage, cells in stage_cells(folder).items():
        tagged = [c.source for c in cells if "parameters" in c.metadata.get("tags", [])]
        assert tagged in (["alpha = 0.5"], ["alpha = 0.5\nlabel = 'x'"]), stage
        header = jupytext.reads((folder / "stages" / f"{stage}.py").read_text(encoding="utf-8"), fmt="py:percent").metadata
        assert header["nb2pipe"]["notebook"] == f"../../{stem}.ipynb"
        titles = [c.metadata["title"] for c in cells if notebook_cell_number(c)]
        assert titles and all(re.fullmatch(rf"(?:{re.escape(stem)}\.ipynb )?cell \d+(?: \(setup\))?", t) for t in titles), titles
    assert cli("export", notebook, "--check")[0] == 0, "a re-export must find the files pristine"
    assert cli("export", notebook)[1].rstrip().endswith("nothing changed")


@pytest.mark.parametrize("stem", NASTY_NAMES)
def test_a_nasty_pipeline_name_is_carried_as_data_by_every_exporter(tmp_path, stem):
    from nb2pipe.exporters import render

    notebook = _nasty_notebook(tmp_path, stem)
    result = export_notebook(notebook)
    _, files = render("dvc", result.folder)
    (dvc_text,) = files.values()
    dvc = yaml.safe_load(dvc_text)
    assert list(dvc["stages"]) == ["make", "use"]
    assert all(not line.strip() or line.startswith(("#", "stages:", " ")) for line in dvc_text.splitlines())
    assert shlex.split(dvc["stages"]["make"]["cmd"])[3] == f"pipelines/{stem}"

    _, files = render("airflow", result.folder)
    (dag_text,) = files.values()
    tree = ast.parse(dag_text)
    assert stem in ast.get_docstring(tree)
    assert [n for n in tree.body if isinstance(n, ast.Expr) and not isinstance(n.value, ast.Constant)] == []
    pipeline = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "PIPELINE")
    assert ast.literal_eval(pipeline.value.right) == f"../pipelines/{stem}"

    from nb2pipe.exporters.kubeflow import component_source
    from nb2pipe.spec import load_params, load_pipeline

    loaded = load_pipeline(result.folder)
    for stage in loaded.stages:
        source = component_source(stage, load_params(loaded))
        (function,) = ast.parse(source).body
        assert isinstance(function, ast.FunctionDef)
        assert [a.arg for a in function.args.args] == ["nb2pipe_pipeline", *stage.params]


CONTROL_CHARACTERS = ["\n", "\t", "\r", "\x1b", "\x7f", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("char", CONTROL_CHARACTERS, ids=[f"U+{ord(c):04X}" for c in CONTROL_CHARACTERS])
def test_a_control_character_in_a_notebook_name_is_refused(tmp_path, cli, char):
    notebook = _nasty_notebook(tmp_path, f"x{char}y")
    status, out, err = cli("export", notebook)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: notebook file name ")
    assert f"U+{ord(char):04X}" in err and "rename" in err
    assert not (tmp_path / "pipelines").exists()


@pytest.mark.parametrize("char", ["\n", "\x00", "\u2028"], ids=["newline", "NUL", "U+2028"])
@pytest.mark.parametrize("how", ["tag", "metadata"])
def test_a_control_character_in_a_tag_path_is_refused(tmp_path, cli, char, how):
    path = f"data/a{char}b.csv"
    cell = code("x = 1", "stage:s", f"out:{path}") if how == "tag" else code("x = 1", "stage:s", nb2pipe={"outs": [path]})
    notebook = write_nb(tmp_path / "nb.ipynb", code("y = 0", "stage:first"), cell)
    status, _, err = cli("export", notebook)
    assert status == 2 and err.count("\n") == 1
    assert "control character" in err and "cell 2 ('x = 1')" in err
    assert not (tmp_path / "pipelines").exists()


def test_the_ci_workflow_quotes_paths_for_yaml_and_for_the_shell(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nasty = "my dir/$(touch pwned) it's #1: {x}.ipynb"
    status, _, err = cli("ci", "github", nasty, "--metric", "r2:max", "--output", "wf.yml")
    assert status == 0, err
    workflow = yaml.safe_load((tmp_path / "wf.yml").read_text(encoding="utf-8"))
    steps = {s.get("name") or s["uses"]: s for s in workflow["jobs"]["pipeline"]["steps"]}
    assert shlex.split(steps["Run the pipeline"]["run"]) == ["nb2pipe", "run", nasty]
    state = "my dir/$(touch pwned) it's #1: {x}.ipynb"[: -len(".ipynb")].replace("my dir/", "my dir/pipelines/")
    gate = steps["Gate against the champion"]["run"]
    assert ["nb2pipe", "gate", state, "--metric", "r2:max", "--baseline", "champion"] == shlex.split(gate.splitlines()[1])
    assert steps["Keep the executed notebooks"]["with"]["path"] == f"{state}/runs/"


@pytest.mark.parametrize("path", ["a\nb.ipynb", "${{ secrets.TOKEN }}.ipynb"], ids=["newline", "expression"])
def test_the_ci_workflow_refuses_paths_it_cannot_quote(tmp_path, cli, monkeypatch, path):
    monkeypatch.chdir(tmp_path)
    status, _, err = cli("ci", "github", path, "--output", "wf.yml")
    assert status == 2 and err.count("\n") == 1 and err.startswith("error: ")
    assert not (tmp_path / "wf.yml").exists()


def test_kernelspec_text_stays_in_the_header(tmp_path, cli):
    notebook = tmp_path / "nb.ipynb"
    write_nb(notebook, code("x = 1", "stage:s"))
    data = json.loads(notebook.read_text())
    data["metadata"]["kernelspec"]["display_name"] = "Py\n# ---\n# %%\n%%"
    notebook.write_text(json.dumps(data))
    assert cli("export", notebook)[0] == 0
    script = jupytext.reads((tmp_path / "pipelines/nb/stages/s.py").read_text(), fmt="py:percent")
    assert script.metadata["kernelspec"]["display_name"] == "Py\n# ---\n# %%\n%%"
    assert [c.source for c in script.cells if c.cell_type == "code"] == ["x = 1"]


@pytest.mark.parametrize("fmt", ["py", "ipynb"])
def test_code_holding_checksum_text_is_kept_and_the_export_stays_pristine(tmp_path, cli, fmt):
    source = 'token = "@NB2PIPE_CHECKSUM@"\n# nb2pipe-checksum: 0123456789abcdef\nprint(token)'
    notebook = write_nb(tmp_path / "nb.ipynb", code(source, "stage:s"))
    assert cli("export", notebook, "--format", fmt)[0] == 0
    assert assert_cells_survive(notebook, tmp_path / "pipelines" / "nb") == 1
    assert cli("export", notebook, "--format", fmt, "--check")[0] == 0
    write_nb(notebook, code(source + "\nprint(2)", "stage:s"))
    status, _, err = cli("export", notebook, "--format", fmt)
    assert status == 0, err


# --- 4. parameters --------------------------------------------------------------------------------

UNREPRESENTABLE = {
    "a set": ("{1, 2}", "list"),
    "bytes": ("b'ab'", "string"),
    "an int key": ("{1: 'a'}", "string keys"),
    "a tuple key": ("{(1, 2): 3}", "string keys"),
    "a tuple": ("(1, 2)", "list"),
    "a complex number": ("1j", ""),
    "infinity": ("1e999", ""),
    "Ellipsis": ("...", ""),
    "a set in a list": ("[1, {2}]", "list"),
}


@pytest.mark.parametrize("literal, hint", list(UNREPRESENTABLE.values()), ids=list(UNREPRESENTABLE))
def test_a_parameter_default_that_cannot_round_trip_is_refused(tmp_path, cli, literal, hint):
    notebook = write_nb(tmp_path / "nb.ipynb", code(f"fine = 1\nodd = {literal}", "parameters"), code("print(odd, fine)", "stage:s"))
    status, out, err = cli("export", notebook)
    assert status == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("error: cell 1 (parameters) line 2: parameter 'odd' holds ") and hint in err
    assert not (tmp_path / "pipelines").exists()


AMBIGUOUS_STRINGS = [
    "1e3", "1E-3", "+1e3", "0o17", "0x1F", "0b101", "1_000", "1:20", ".5", "+.5", "-1", "007", "1.",
    ".inf", "-.Inf", ".NaN", "yes", "No", "on", "OFF", "y", "n", "true", "False", "null", "NULL", "~", "",
    "2001-12-14", "=", "<<", " padded ", "plain words",
]

_YAML12_NOT_STRING = re.compile(
    r"""^(?:~|null|Null|NULL|true|True|TRUE|false|False|FALSE
    |[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+
    |[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)
    |[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?)$""",
    re.X,
)


def _plain_scalars(text: str) -> list[str]:
    """The plain (unquoted) scalars of a YAML text: how a YAML 1.2 reader resolves them matters."""
    found = []

    def walk(node):
        if isinstance(node, yaml.ScalarNode):
            if node.style is None:
                found.append(node.value)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                walk(key)
                walk(value)

    walk(yaml.compose(text))
    return found


def test_params_yaml_strings_mean_the_same_in_yaml_1_1_and_1_2(tmp_path, cli):
    names = [f"s{i}" for i in range(len(AMBIGUOUS_STRINGS))] + ["on", "yes", "null", "y", "off"]
    values = [*AMBIGUOUS_STRINGS, "k1", "k2", "k3", "k4", "k5"]
    assignments = "\n".join(f"{n} = {v!r}" for n, v in zip(names, values, strict=True))
    notebook = write_nb(
        tmp_path / "nb.ipynb",
        code(assignments + "\nn = 3\nf = 0.5", "parameters"),
        code(f"print({', '.join(names)}, n, f)\nopen('1e3', 'w').write('x')", "stage:s", "out:1e3", "out:0o17"),
    )
    status, _, err = cli("export", notebook)
    assert status == 0, err
    folder = tmp_path / "pipelines" / "nb"
    params_text = (folder / "params.yaml").read_text(encoding="utf-8")
    assert yaml.safe_load(params_text) == {**dict(zip(names, values, strict=True)), "n": 3, "f": 0.5}
    plain = _plain_scalars(params_text)
    assert "3" in plain and "0.5" in plain  # numbers stay numbers
    ambiguous = [s for s in plain if s not in ("3", "0.5") and _YAML12_NOT_STRING.match(s)]
    assert ambiguous == [], f"a YAML 1.2 reader (DVC) would not read these as strings: {ambiguous}"

    from nb2pipe.exporters import render

    _, files = render("dvc", folder)
    (dvc_text,) = files.values()
    ambiguous = [s for s in _plain_scalars(dvc_text) if _YAML12_NOT_STRING.match(s)]
    assert ambiguous == [], f"dvc.yaml has scalars a YAML 1.2 reader would not read as strings: {ambiguous}"


# --- 5. file modes and folders -----------------------------------------------------------------------


def _modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_generated_files_follow_the_umask(tmp_path, cli, umask, expected):
    notebook = write_nb(tmp_path / "nb.ipynb", code("a = 1", "parameters"), code("print(a)", "stage:s"))
    old = os.umask(umask)
    try:
        assert cli("export", notebook)[0] == 0
    finally:
        os.umask(old)
    modes = _modes(tmp_path / "pipelines" / "nb")
    assert modes and set(modes.values()) == {expected}, modes


def test_a_rewritten_file_keeps_its_mode(tmp_path, cli):
    notebook = write_nb(tmp_path / "nb.ipynb", code("a = 1", "parameters"), code("print(a)", "stage:s"))
    assert cli("export", notebook)[0] == 0
    folder = tmp_path / "pipelines" / "nb"
    (folder / "stages" / "s.py").chmod(0o755)
    (folder / "nb2pipe.yaml").chmod(0o640)
    write_nb(notebook, code("a = 2", "parameters"), code("print(a, 1)", "stage:s"))
    assert cli("export", notebook)[0] == 0
    assert "print(a, 1)" in (folder / "stages" / "s.py").read_text()
    modes = _modes(folder)
    assert modes["stages/s.py"] == 0o755 and modes["nb2pipe.yaml"] == 0o640


def test_atomic_write_respects_the_umask_and_existing_modes(tmp_path):
    from nb2pipe.hashing import atomic_write

    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "new.txt", "x")
        existing = tmp_path / "old.txt"
        existing.write_text("old")
        existing.chmod(0o604)
        atomic_write(existing, "new")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE(existing.stat().st_mode) == 0o604 and existing.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.txt", "old.txt"]


@pytest.mark.parametrize("name", ["...ipynb", "..ipynb"])
def test_a_dot_named_notebook_never_exports_into_its_own_or_a_parent_folder(tmp_path, cli, name):
    notebook = write_nb(tmp_path / "work" / name, code("x = 1", "stage:s"))
    status, _out, err = cli("export", notebook)
    assert status == 2 and err.count("\n") == 1 and "-o" in err
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == [name]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]
    assert cli("export", notebook, "-o", tmp_path / "work" / "pipelines" / "dots")[0] == 0


def test_a_notebook_named_dot_ipynb_exports_into_a_child_of_pipelines(tmp_path, cli):
    notebook = write_nb(tmp_path / ".ipynb", code("x = 1", "stage:s"))
    status, _, err = cli("export", notebook)
    assert status == 0, err
    (folder,) = (tmp_path / "pipelines").iterdir()
    assert (folder / "nb2pipe.yaml").is_file() and folder.parent == tmp_path / "pipelines"


def test_a_notebook_name_that_is_not_utf8_is_refused(tmp_path, cli):
    notebook = _nasty_notebook(tmp_path, os.fsdecode(b"bad\xffname"))
    status, _, err = cli("export", notebook)
    assert status == 2 and err.count("\n") == 1 and "not valid UTF-8" in err and "rename" in err
    assert not (tmp_path / "pipelines").exists()


def test_a_cell_holding_a_lone_surrogate_is_refused(tmp_path, cli):
    notebook = tmp_path / "nb.ipynb"
    cell = {"cell_type": "code", "metadata": {"tags": ["stage:s"]}, "source": "x = '\\ud800'", "outputs": [], "execution_count": None}
    notebook.write_text(json.dumps({
        "cells": [cell],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
    }).replace("\\\\ud800", "\\ud800"))
    status, _, err = cli("export", notebook)
    assert status == 2 and err.count("\n") == 1 and "cell 1" in err and "U+D800" in err
    assert not (tmp_path / "pipelines").exists()


def test_a_kubeflow_component_runs_its_stage_whatever_the_stage_and_parameters_are_named(tmp_path, monkeypatch):
    """The component's source, as the step's container runs it (kfp itself is not needed for this)."""
    from nb2pipe.exporters.kubeflow import component_source
    from nb2pipe.spec import load_params, load_pipeline

    monkeypatch.chdir(tmp_path)
    notebook = write_nb(
        tmp_path / "nb.ipynb",
        code("sys = 2\njson = 'a\"b'\n_nb2pipe_inputs = 1", "parameters"),
        code("open('class.json', 'w').write(repr([sys, json, _nb2pipe_inputs]))", "stage:class"),
    )
    pipeline = load_pipeline(export_notebook(notebook).folder)
    (stage,) = pipeline.stages
    namespace: dict = {}
    exec(component_source(stage, load_params(pipeline)), namespace)  # what the container does
    (function,) = [v for k, v in namespace.items() if k != "__builtins__"]
    assert function.__name__ == "class_"
    function(nb2pipe_pipeline="pipelines/nb", sys=5, json="x'y", _nb2pipe_inputs=7)
    assert ast.literal_eval((tmp_path / "class.json").read_text()) == [5, "x'y", 7]


# --- 6. any cell, read back by jupytext ---------------------------------------------------------

_FRAGMENTS = [
    "x = 1", "# %%", "# %% [markdown]", "#%%", "  # %% x", "%%", "%% ", "%%time", "%%%", "# In[3]:", "# <codecell>",
    "In[ ]:", "<codecell>", "!ls", "%matplotlib inline", "# !touch pwned", "# rm -rf x", "## +", "# # +", "# +",
    "'''", '"""', "'", '"', "\\", "s = '''", "```", "```python", "~~~", "#", "# ---", "", " ", "\t", "`", "?x", "x?",
]


def _rendered_cells(files: dict[str, str], script: str) -> list:
    if script.endswith(".ipynb"):
        return nbformat.reads(files[script], as_version=4).cells
    return jupytext.reads(files[script], fmt="py:percent").cells


def test_any_cells_read_back_exactly_through_jupytext(tmp_path):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from nb2pipe.export import plan_export

    line = st.one_of(st.sampled_from(_FRAGMENTS), st.text(alphabet="#%! '\"`\\x\r\u2028[]", max_size=8))
    source = st.lists(line, max_size=6).map("\n".join)
    cell = st.tuples(st.sampled_from(["code", "markdown"]), source)

    @settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(cell, min_size=1, max_size=5))
    def check(cells):
        nb = {
            "cells": [code("first = 1", "stage:s")]
            + [code(src) if kind == "code" else md(src) for kind, src in cells],
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        rendered = plan_export(tmp_path / "nb.ipynb", tmp_path / "out", "py", 2, nb)
        (stage,) = rendered.pipeline.stages
        by_number = {notebook_cell_number(c): c for c in _rendered_cells(rendered.files, stage.script)}
        for number, (kind, src) in enumerate(cells, start=2):
            got = by_number[number]
            assert got.cell_type == kind
            assert (trimmed(got.source), got.source)[kind == "markdown"] == (trimmed(src), src)[kind == "markdown"]

    check()
