"""A pipeline no slower than its notebook (issue 13): what a user can check without a stopwatch.

- `nb2pipe run` builds no JSON-schema grammars it does not need: nbformat validates notebooks
  with draft-4 schemas, which never check the `iri` format that rfc3987-syntax builds 38 Lark
  grammars for at import (seconds on a loaded machine). Proven with `python -X importtime`.
- Each stage kernel gets a thread budget: OMP/OPENBLAS/MKL/VECLIB/NUMEXPR threads = cores //
  stages that run at once, unless the user's environment sets them. Proven by what a real
  stage kernel finds in os.environ.
- A kernel readied without the 0.2 s iopub flush still delivers every output of the first cell.

No wall-clock assertion: benchmarks/bench_speed.py measures the times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import code, write_nb
from helpers import run_dirs, subprocess_env, summary

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads_stage(name: str) -> dict:
    """A stage that writes the thread variables its kernel sees to threads_<name>.json."""
    source = (
        f"with open('threads_{name}.json', 'w') as f:\n"
        f"    json.dump({{k: os.environ.get(k) for k in {THREAD_VARIABLES!r}}}, f)"
    )
    return code(source, f"stage:{name}", f"out:threads_{name}.json")


@pytest.fixture
def two_independent_stages(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for variable in THREAD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    write_nb(tmp_path / "threads.ipynb", code("import json, os", "setup"), threads_stage("p"), threads_stage("q"))
    return tmp_path


def seen(folder: Path, stage: str) -> dict[str, str | None]:
    return json.loads((folder / f"threads_{stage}.json").read_text())


@pytest.mark.parametrize("jobs", [1, 2])
def test_each_stage_kernel_gets_cores_divided_by_the_stages_running_at_once(two_independent_stages, cli, jobs):
    exit_code, out, err = cli("run", "threads.ipynb", "--jobs", str(jobs))
    assert exit_code == 0, err
    assert summary(out).startswith("2 ran"), out
    budget = str(max(1, cores() // jobs))
    for stage in ("p", "q"):
        assert seen(two_independent_stages, stage) == dict.fromkeys(THREAD_VARIABLES, budget)


def test_jobs_above_the_stage_count_do_not_shrink_the_budget(two_independent_stages, cli):
    """Two stages with --jobs 8 run two at a time, so each gets half the cores, not an eighth."""
    exit_code, _out, err = cli("run", "threads.ipynb", "--jobs", "8")
    assert exit_code == 0, err
    assert seen(two_independent_stages, "p")["OMP_NUM_THREADS"] == str(max(1, cores() // 2))


def test_a_stage_overrides_its_thread_budget_with_env(tmp_path, monkeypatch, cli):
    """`env:OMP_NUM_THREADS=N` on a stage (issue 13: the budget is overridable per stage) wins
    over the budget for that stage only; the other stage keeps cores // stages at once."""
    monkeypatch.chdir(tmp_path)
    for variable in THREAD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    own = threads_stage("p")
    own["metadata"]["tags"] += ["env:OMP_NUM_THREADS=7"]
    write_nb(tmp_path / "threads.ipynb", code("import json, os", "setup"), own, threads_stage("q"))
    exit_code, _out, err = cli("run", "threads.ipynb", "--jobs", "2")
    assert exit_code == 0, err
    budget = str(max(1, cores() // 2))
    assert seen(tmp_path, "p") == {**dict.fromkeys(THREAD_VARIABLES, budget), "OMP_NUM_THREADS": "7"}
    assert seen(tmp_path, "q") == dict.fromkeys(THREAD_VARIABLES, budget)


def test_thread_variables_the_user_set_are_left_alone(two_independent_stages, cli, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("MKL_NUM_THREADS", "7")
    exit_code, _out, err = cli("run", "threads.ipynb", "--jobs", "2")
    assert exit_code == 0, err
    got = seen(two_independent_stages, "q")
    assert (got["OMP_NUM_THREADS"], got["MKL_NUM_THREADS"]) == ("3", "7")
    assert got["OPENBLAS_NUM_THREADS"] == str(max(1, cores() // 2))


def test_run_builds_no_iri_grammars_and_executed_notebooks_stay_valid(tmp_path):
    pytest.importorskip("rfc3987_syntax", reason="without rfc3987-syntax there are no grammars to avoid")
    write_nb(
        tmp_path / "nb.ipynb",
        code("x = 1", "parameters"),
        code("print('first', x)\nwith open('a.txt', 'w') as f:\n    f.write(str(x))", "stage:a", "out:a.txt"),
        code("print(open('a.txt').read())", "stage:b", "in:a.txt"),
    )
    command = [sys.executable, "-X", "importtime", "-m", "nb2pipe", "run", "nb.ipynb", "-p", "x=2"]
    done = subprocess.run(
        command, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr[-3000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "jsonschema._format" in imported  # nbformat still validates what nb2pipe writes
    assert not {m for m in imported if m.split(".")[0] == "lark" or m.startswith("rfc3987_syntax.")}  # no grammar built
    (run_dir,) = run_dirs(tmp_path / "pipelines" / "nb")
    executed = run_dir / "a.ipynb"
    nb = nbformat.read(executed, as_version=4)
    nbformat.validate(nb)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    assert "first 2" in json.dumps([c.get("outputs") for c in nb.cells])


def test_every_output_of_a_stages_first_cell_arrives(tmp_path, monkeypatch, cli):
    """A kernel is readied without waiting out iopub: the first cell's output is still all there."""
    monkeypatch.chdir(tmp_path)
    names = ("s1", "s2", "s3", "s4")
    stages = [code(f"print('hello from {s}')\n_ = open('{s}.txt', 'w').write('{s}')", f"stage:{s}", f"out:{s}.txt") for s in names]
    write_nb(tmp_path / "hello.ipynb", *stages)
    exit_code, _out, err = cli("run", "hello.ipynb", "--jobs", "2")
    assert exit_code == 0, err
    (run_dir,) = run_dirs(tmp_path / "pipelines" / "hello")
    for s in names:
        nb = nbformat.read(run_dir / f"{s}.ipynb", as_version=4)
        first = next(c for c in nb.cells if c.cell_type == "code" and c.source.strip())
        assert [o.get("text") for o in first.outputs] == [f"hello from {s}\n"], s


# --- imports ahead of the stage ----------------------------------------------------------------

MARKING_MODULE = "import os\nopen(os.path.join({marks!r}, f'{name}-{{os.getpid()}}'), 'w').close()\n"
WAIT_FOR_IMPORT_AHEAD = """
import glob, os, time
deadline = time.time() + 60
def imported_elsewhere(name):
    return [p for p in glob.glob(os.path.join({marks!r}, name + '-*')) if not p.endswith(f'-{{os.getpid()}}')]
while not imported_elsewhere('warmmod') and time.time() < deadline:
    time.sleep(0.05)
with open('a.txt', 'w') as f:
    f.write('a')
"""


@pytest.fixture
def installed(tmp_path_factory, monkeypatch):
    """A folder on the kernels' PYTHONPATH, outside the project, with modules that mark in
    `marks` each process that imports them: (library folder, marks folder)."""
    lib, marks = tmp_path_factory.mktemp("lib"), tmp_path_factory.mktemp("marks")
    (lib / "warmmod.py").write_text(MARKING_MODULE.format(marks=str(marks), name="warmmod"))
    (lib / "brokenmod.py").write_text("raise RuntimeError('broken at import')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(lib), os.environ.get("PYTHONPATH", "")) if p))
    return lib, marks


def test_a_stage_finds_the_modules_earlier_stages_import_imported_ahead(tmp_path, monkeypatch, cli, installed):
    """While `a` runs, the kernel waiting for `b` imports what `a` imports; `a` waits to see it."""
    _lib, marks = installed
    monkeypatch.chdir(tmp_path)
    write_nb(
        tmp_path / "ahead.ipynb",
        code("import warmmod\n" + WAIT_FOR_IMPORT_AHEAD.format(marks=str(marks)), "stage:a", "out:a.txt"),
        code("import sys\nwarm = 'warmmod' in sys.modules\nwith open('b.txt', 'w') as f:\n    f.write(str(warm))", "stage:b", "in:a.txt"),
        code("import warmmod", "out:b.txt"),
    )
    exit_code, _out, err = cli("run", "ahead.ipynb", "--jobs", "1")
    assert exit_code == 0, err
    assert (tmp_path / "b.txt").read_text() == "True"
    (run_dir,) = run_dirs(tmp_path / "pipelines" / "ahead")
    executed = nbformat.read(run_dir / "b.ipynb", as_version=4)
    assert [c.source for c in executed.cells if c.cell_type == "code" and "warmmod" in c.source][-1].strip() == "import warmmod"


def test_modules_of_the_working_folder_are_not_imported_ahead(tmp_path, monkeypatch, cli, installed):
    """An upstream stage may still write them: only installed modules are imported ahead."""
    _lib, marks = installed
    monkeypatch.chdir(tmp_path)
    (tmp_path / "localmod.py").write_text(MARKING_MODULE.format(marks=str(marks), name="localmod"))
    write_nb(
        tmp_path / "local.ipynb",
        code("import localmod\nimport warmmod\n" + WAIT_FOR_IMPORT_AHEAD.format(marks=str(marks)), "stage:a", "out:a.txt"),
        code("print(open('a.txt').read())", "stage:b", "in:a.txt"),
    )
    exit_code, _out, err = cli("run", "local.ipynb", "--jobs", "1")
    assert exit_code == 0, err
    assert len(list(marks.glob("warmmod-*"))) == 2  # a itself, and b's kernel ahead of b
    assert len(list(marks.glob("localmod-*"))) == 1  # a only


def test_a_module_that_fails_to_import_ahead_fails_the_stage_at_its_cell(tmp_path, monkeypatch, cli, installed):
    monkeypatch.chdir(tmp_path)
    write_nb(
        tmp_path / "broken.ipynb",
        code("x = 1\nwith open('a.txt', 'w') as f:\n    f.write('a')", "stage:a", "out:a.txt"),
        code("import brokenmod", "stage:b", "in:a.txt"),
    )
    exit_code, out, err = cli("run", "broken.ipynb", "--jobs", "1")
    assert exit_code == 1, err
    assert summary(out).endswith("1 failed"), out
    (run_dir,) = run_dirs(tmp_path / "pipelines" / "broken")
    executed = nbformat.read(run_dir / "b.ipynb", as_version=4)
    failed = [c for c in executed.cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert [c.source.strip() for c in failed] == ["import brokenmod"]
    assert failed[0].outputs[-1]["evalue"] == "broken at import"


def environment_recording_module(lib: Path, marks: Path, wait: float) -> str:
    """Writes `envmod` into `lib`: importing it records, in `marks`, the STAGE_FLAG the importing
    process saw. Returns a cell that waits until two processes imported it (the stage's own, and
    a waiting kernel's import ahead, if any)."""
    (lib / "envmod.py").write_text(
        f"import os\nopen(os.path.join({str(marks)!r}, f'envmod-{{os.getpid()}}'), 'w').write(os.environ.get('STAGE_FLAG', 'unset'))\n"
    )
    return (
        f"import glob, time\ndeadline = time.time() + {wait}\n"
        f"while len(glob.glob({str(marks)!r} + '/envmod-*')) < 2 and time.time() < deadline:\n    time.sleep(0.05)"
    )


def test_stages_that_set_their_environment_first_get_no_imports_ahead(tmp_path, installed):
    """A stage's `env` is set by its first cell (run/local.py), so nothing may be imported in its
    kernel before that cell: the module below records the environment it was imported in."""
    from nbformat.v4 import new_code_cell, new_notebook

    from nb2pipe.run.executors import StageJob, executor

    first = new_notebook(cells=[new_code_cell("import envmod"), new_code_cell(environment_recording_module(*installed, wait=10))])
    notebooks = [first, new_notebook(cells=[new_code_cell("import envmod")])]
    runner = executor("local", "python3", tmp_path, 1, stages=2)
    try:
        flag = {"STAGE_FLAG": "set"}
        jobs = [StageJob(f"s{i}", nb, {}, tmp_path / f"s{i}.ipynb", lambda i, n: None, env=flag) for i, nb in enumerate(notebooks)]
        outcomes = [future.result(timeout=300) for future in [runner.submit(job) for job in jobs]]
    finally:
        runner.close()
    assert all(outcome.ok for outcome in outcomes), outcomes
    assert sorted(mark.read_text() for mark in installed[1].glob("envmod-*")) == ["set", "set"]


@pytest.mark.parametrize(
    "first_cell",
    [
        "import os\nos.environ['STAGE_FLAG'] = 'set'",
        "import os\nos.environ.update(STAGE_FLAG='set')",
        "%env STAGE_FLAG=set",
    ],
    ids=["environ-item", "environ-update", "env-magic"],
)
def test_a_stage_that_changes_what_imports_see_gets_a_kernel_with_nothing_imported_ahead(tmp_path, installed, first_cell):
    """A module that a stage imports after changing os.environ (or sys.path, or the working
    folder) must see that change, as it would in the notebook: such a stage never gets a kernel
    in which an earlier stage's imports ran ahead. The module records the environment it saw."""
    from nbformat.v4 import new_code_cell, new_notebook

    from nb2pipe.run.executors import StageJob, executor

    first = new_notebook(cells=[new_code_cell("import envmod"), new_code_cell(environment_recording_module(*installed, wait=30))])
    second = new_notebook(cells=[new_code_cell(first_cell), new_code_cell("import envmod\nimport os\nprint(os.environ['STAGE_FLAG'])")])
    runner = executor("local", "python3", tmp_path, 1, stages=2)
    try:
        one = runner.submit(StageJob("one", first, {}, tmp_path / "one.ipynb", lambda i, n: None))
        assert one.result(timeout=300).ok
        two = runner.submit(StageJob("two", second, {}, tmp_path / "two.ipynb", lambda i, n: None)).result(timeout=300)
    finally:
        runner.close()
    assert two.ok, two
    seen = {mark.name.split("-")[1]: mark.read_text() for mark in installed[1].glob("envmod-*")}
    assert "set" in seen.values(), f"stage two's own import of envmod did not see its environment: {seen}"
