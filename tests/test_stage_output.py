"""What a running stage prints: whole lines, live, in the run's `output` events, in
`runs/<run-id>/<stage>.log` (also when the run is killed), through `redact`, folded into the
job's JSON; and where a stage is, in the notebook's words ("notebook cell 14, 2 of 5")."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import nbformat

from conftest import code, write_nb
from helpers import fetch_json, run_dirs, run_events, wait_job, wait_until
from nb2pipe.run import registry
from nb2pipe.run.cell_progress import cell_progress, own_cells, progress_label
from nb2pipe.run.events import kernel_memory, terminal_reporter
from nb2pipe.run.stage_output import OUTPUT_EVENT_LINES, Batches, StreamLines, event_text, rich_output_lines
from test_server import jp_server_config  # noqa: F401  (fixture)

# --- pure parts -----------------------------------------------------------------------------


def test_stream_lines_hand_on_whole_lines_once_per_write_and_the_rest_when_the_cell_ends():
    got: list[tuple[str, str, str]] = []
    lines = StreamLines("stdout", lambda title, stream, text: got.append((title, stream, text)), lambda: "nb cell 4")
    lines.write("one\ntw")
    lines.write("o\nthree\nfou")
    lines.write("r")
    lines.end_cell()
    lines.end_cell()  # nothing left: nothing more
    assert got == [("nb cell 4", "stdout", "one\n"), ("nb cell 4", "stdout", "two\nthree\n"), ("nb cell 4", "stdout", "four\n")]


def test_batches_hand_on_one_call_per_cell_and_stream_in_order_and_the_rest_on_close():
    got: list[tuple[str, str, str]] = []
    batches = Batches(lambda title, stream, text: got.append((title, stream, text)), interval=3600)  # only close() hands on
    for i in range(3):
        batches("cell 1", "stdout", f"{i}\n")
    batches("cell 1", "stderr", "warn\n")
    batches("cell 2", "stdout", "x\n")
    assert got == []
    batches.close()
    assert got == [("cell 1", "stdout", "0\n1\n2\n"), ("cell 1", "stderr", "warn\n"), ("cell 2", "stdout", "x\n")]
    timed = Batches(lambda title, stream, text: got.append((title, stream, text)), interval=0.01)
    timed("cell 3", "stdout", "later\n")
    wait_until(lambda: got[-1] == ("cell 3", "stdout", "later\n"), "the timer hands the batch on", timeout=30, seen=lambda: got)


def test_rich_outputs_become_placeholders_and_errors_their_exception_line():
    cell = nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("display_data", data={"image/png": "iVBO", "text/plain": "<Figure>"}),
        nbformat.v4.new_output("display_data", data={"text/html": "<b>hi</b>", "text/plain": "hi"}),
        nbformat.v4.new_output("execute_result", data={"text/plain": "42"}, execution_count=1),
        nbformat.v4.new_output("stream", name="stdout", text="already shown\n"),
        nbformat.v4.new_output("error", ename="ValueError", evalue="boom", traceback=[]),
    ])  # fmt: skip
    assert rich_output_lines(cell) == [
        ("display", "[image]\n"), ("display", "[html]\n"), ("display", "42\n"), ("error", "ValueError: boom\n"),
    ]  # fmt: skip


def test_an_output_event_carries_at_most_the_last_lines_of_a_big_write():
    text = "".join(f"{i}\n" for i in range(OUTPUT_EVENT_LINES + 50))
    assert event_text(text).splitlines() == [str(i) for i in range(50, OUTPUT_EVENT_LINES + 50)]
    assert event_text("a\nb\n") == "a\nb\n"


STAGE_CELLS = [
    ("analysis.ipynb cell 3 (setup)", "import os"),
    ("", "n = 1"),  # the parameters cell
    ("", "n = 2"),  # papermill's injected parameters
    ("nb2pipe: load variables", "x = 1"),
    ("analysis.ipynb cell 14", "print(1)"),
    ("analysis.ipynb cell 15", "print(2)"),
    ("nb2pipe: save variables", "pass"),
]


def test_progress_counts_the_stages_own_cells_as_the_notebook_numbers_them():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Stage", metadata={"title": "x cell 1"})] + [
        nbformat.v4.new_code_cell(source, metadata={"title": title} if title else {}) for title, source in STAGE_CELLS
    ])  # fmt: skip
    own = own_cells(nb)
    assert own == ("analysis.ipynb cell 14", "analysis.ipynb cell 15")
    labels, seen_own = [], False
    for index, (title, _) in enumerate(STAGE_CELLS, start=1):
        where = cell_progress(title, own, after_own=seen_own)
        seen_own = seen_own or where["position"] is not None
        labels.append(progress_label({"index": index, "count": len(STAGE_CELLS), **where}))
    assert labels == [
        "notebook cell 3 (setup)", "preparing", "preparing", "preparing",
        "notebook cell 14, 1 of 2", "notebook cell 15, 2 of 2", "finishing",
    ]  # fmt: skip
    assert progress_label({"index": 2, "count": 7}) == "cell 2/7"  # an older run's events


def test_the_terminal_line_uses_the_same_words():
    out = io.StringIO()
    report = terminal_reporter(out)
    report({"event": "stage_started", "stage": "train"})
    report({"event": "cell", "stage": "train", "index": 5, "count": 7, **cell_progress("nb cell 14", ("nb cell 2", "nb cell 14"))})
    assert out.getvalue().endswith("running: train [notebook cell 14, 2 of 2, 0 s]")


def test_the_progress_record_keeps_the_last_lines_of_each_stage_also_after_it_ends(tmp_path):
    progress = registry.Progress()
    progress.apply({"event": "stage_started", "stage": "a"})
    progress.apply({"event": "cell", "stage": "a", "index": 3, "count": 4, "title": "nb cell 9", "notebook_cell": 9,
                    "position": 1, "of": 2, "role": ""})
    for start in range(0, 300, 100):
        progress.apply({"event": "output", "stage": "a", "cell": 9, "stream": "stdout",
                        "text": "".join(f"line {i}\n" for i in range(start, start + 100))})
    progress.apply({"event": "output", "stage": "a", "cell": 9, "stream": "stdout", "text": "x" * 900 + "\n"})
    stage = progress.stages["a"]
    assert (stage["state"], stage["cell"], stage["cells"], stage["notebook_cell"], stage["position"], stage["of"]) == (
        "running", 3, 4, 9, 1, 2)
    assert len(stage["output"]) == registry.OUTPUT_LINES
    assert stage["output"][0] == "line 101" and stage["output"][-2] == "line 299"
    assert stage["output"][-1] == "x" * (registry.OUTPUT_LINE_CHARS - 1) + "…"
    progress.apply({"event": "stage_failed", "stage": "a", "error": "stage 'a' failed: ValueError: boom"})
    assert progress.stages["a"]["state"] == "failed" and progress.stages["a"]["output"][-2] == "line 299"


# --- a real run -----------------------------------------------------------------------------

PRINTS = (
    "import sys\nfrom IPython.display import HTML, display\n"
    "print('first line')\nprint('partial', end='')\nprint(' line', file=sys.stderr)\n"
    "display(HTML('<b>bold</b>'))"
)


def printing_project(root: Path) -> Path:
    return write_nb(
        root / "talk.ipynb",
        code("n = 2", "parameters"),
        code("x = n", "stage:talk"),
        code(PRINTS),
        code("for i in range(n):\n    print(f'count {i}')\n_ = open('t.txt', 'w').write('t')", "out:t.txt"),
    )


def stage_log(root: Path, pipeline: str, stage: str) -> str:
    (run,) = run_dirs(root / "pipelines" / pipeline)
    return (run / f"{stage}.log").read_text()


def test_a_run_reports_each_printed_line_as_an_output_event_and_in_the_stages_log(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    printing_project(tmp_path)
    exit_code, _, err = cli("run", "talk.ipynb")
    assert exit_code == 0, err
    (run,) = run_dirs(tmp_path / "pipelines" / "talk")
    events = run_events(run)
    outputs = [(e["stage"], e["cell"], e["stream"], e["text"]) for e in events if e["event"] == "output"]
    stdout = "".join(text for _, _, stream, text in outputs if stream == "stdout")
    # 'partial' had no newline: it counts as a line when its cell ends
    assert stdout == "first line\npartial\ncount 0\ncount 1\n", outputs
    assert ("talk", 3, "stderr", " line\n") in outputs and ("talk", 3, "display", "[html]\n") in outputs
    assert ("talk", 4, "stdout", "count 0\ncount 1\n") in outputs  # one event for the lines of one kernel message
    assert stage_log(tmp_path, "talk", "talk") == "".join(text for *_, text in outputs)
    cells = [progress_label(e) for e in events if e["event"] == "cell"]
    assert [c for c in cells if c.startswith("notebook cell")] == [
        "notebook cell 2, 1 of 3", "notebook cell 3, 2 of 3", "notebook cell 4, 3 of 3"], cells


def test_every_output_text_goes_through_redact(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("nb2pipe.run.redact.redact", str.upper)
    printing_project(tmp_path)
    exit_code, _, err = cli("run", "talk.ipynb")
    assert exit_code == 0, err
    log = stage_log(tmp_path, "talk", "talk")
    assert "FIRST LINE\n" in log and "COUNT 1\n" in log and "[HTML]\n" in log and log == log.upper()
    (run,) = run_dirs(tmp_path / "pipelines" / "talk")
    texts = [e["text"] for e in run_events(run) if e["event"] == "output"]
    assert texts and all(text == text.upper() for text in texts)


def test_a_stage_that_flushes_thousands_of_lines_runs_as_without_the_output_path(tmp_path, monkeypatch, cli):
    """Each flushed print is a message from the kernel. Handled one by one (an event and two file
    writes each, in papermill's thread) they made 5000 events, and with a reporter on stderr
    papermill fell behind until nbclient gave up: 'Timeout waiting for IOPub output'."""
    monkeypatch.chdir(tmp_path)
    write_nb(tmp_path / "chatty.ipynb", code("for i in range(5000):\n    print('line', i, flush=True)", "stage:chatty"))
    exit_code, _, err = cli("run", "chatty.ipynb")
    assert exit_code == 0, err
    log = stage_log(tmp_path, "chatty", "chatty").splitlines()
    assert log == [f"line {i}" for i in range(5000)]
    (run,) = run_dirs(tmp_path / "pipelines" / "chatty")
    assert sum(1 for e in run_events(run) if e["event"] == "output") < 500  # batched, not one per line


HELD = (
    "import os, time\nprint('before the gate', flush=True)\nprint('still before', flush=True)\n"
    "while not os.path.exists('go'):\n    time.sleep(0.1)\nprint('after the gate')\n_ = open('h.txt', 'w').write('h')"
)


def test_a_killed_run_keeps_the_lines_its_stage_printed_so_far(tmp_path, runs):
    write_nb(tmp_path / "held.ipynb", code(HELD, "stage:held", "out:h.txt"))
    proc = runs.start(tmp_path, "held.ipynb", "--jobs", "1")
    log_of = lambda: next(iter((tmp_path / "pipelines" / "held" / "runs").glob("*/held.log")), None)  # noqa: E731
    runs.wait_until(proc, lambda: log_of() and "still before" in log_of().read_text(), "the stage prints its first lines",
                    seen=lambda: log_of() and log_of().read_text())
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert log_of().read_text() == "before the gate\nstill before\n"


async def test_a_jobs_json_shows_the_lines_of_its_running_stage_and_keeps_them(jp_fetch, jp_root_dir):
    write_nb(jp_root_dir / "held.ipynb", code(HELD, "stage:held", "out:h.txt"))
    _, job = await fetch_json(jp_fetch, "runs", method="POST", body=json.dumps({"path": "held.ipynb"}))
    try:
        printed = lambda j: j["finished"] or "still before" in j["stages"].get("held", {}).get("output", [])  # noqa: E731
        job = await wait_job(jp_fetch, job["id"], printed)
        held = job["stages"]["held"]
        assert held["state"] == "running" and held["output"] == ["before the gate", "still before"], job
        assert (held["notebook_cell"], held["position"], held["of"]) == (1, 1, 1)
    finally:
        (jp_root_dir / "go").write_text("")
    job = await wait_job(jp_fetch, job["id"])
    assert job["status"] == "ok" and job["stages"]["held"]["output"] == ["before the gate", "still before", "after the gate"], job


def test_a_failed_stage_error_carries_its_traceback_as_plain_redacted_text(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("nb2pipe.run.redact.redact", lambda text: text.replace("secret", "***"))
    write_nb(tmp_path / "fails.ipynb", code("def check():\n    raise ValueError('boom secret')\ncheck()", "stage:fails"))
    exit_code, _, _ = cli("run", "fails.ipynb")
    assert exit_code != 0
    (run,) = run_dirs(tmp_path / "pipelines" / "fails")
    (failed,) = [e for e in run_events(run) if e["event"] == "stage_failed"]
    traceback = failed["stage_error"]["traceback"]
    assert "\x1b" not in traceback and "check()" in traceback and traceback.rstrip().endswith("ValueError: boom ***")
    assert failed["stage_error"]["exception"] == "ValueError: boom ***"  # the line the user sees first
    assert "ValueError: boom ***\n" in (run / "fails.log").read_text()


def read_lines_into(stream, seen: list[str]) -> threading.Thread:
    """Collect a child's output lines as they come, on a thread of their own."""
    reader = threading.Thread(target=lambda: seen.extend(iter(stream.readline, "")), daemon=True)
    reader.start()
    return reader


def test_run_log_streams_each_printed_line_with_its_stage_before_the_stage_ends(tmp_path, runs):
    """`nb2pipe run --log` without a terminal: the lines come while the stage is still held."""
    write_nb(tmp_path / "held.ipynb", code(HELD, "stage:held", "out:h.txt"))
    proc = runs.start(tmp_path, "held.ipynb", "--log")
    seen: list[str] = []
    reader = read_lines_into(proc.stderr, seen)
    runs.wait_until(proc, lambda: "held | still before\n" in seen, "the stage's lines reach the terminal while it runs", seen=lambda: seen)
    assert not (tmp_path / "h.txt").exists()  # the stage is still held at its gate
    (tmp_path / "go").write_text("")
    assert proc.wait(timeout=300) == 0
    reader.join(timeout=30)
    assert [line for line in seen if line.startswith("held | ")] == [
        "held | before the gate\n", "held | still before\n", "held | after the gate\n",
    ]  # fmt: skip


def test_run_without_log_prints_a_plain_line_per_cell_and_no_stage_output(tmp_path, runs):
    write_nb(tmp_path / "talk.ipynb", code("print('hello')", "stage:talk"), code("print('again')"))
    proc = runs.start(tmp_path, "talk.ipynb")
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "talk: notebook cell 1, 1 of 2\n" in err and "talk: notebook cell 2, 2 of 2\n" in err
    assert "hello" not in err


def test_the_status_line_shows_each_running_stage_for_how_long_and_its_kernels_memory():
    out = io.StringIO()
    report = terminal_reporter(out, tick=0.05)
    report({"event": "stage_started", "stage": "train", "time": time.time() - 42})
    report({"event": "cell", "stage": "train", "index": 1, "count": 1, "kernel_pid": os.getpid()})
    line = out.getvalue().rsplit("\r\033[K", 1)[-1]
    assert re.fullmatch(r"  running: train \[cell 1/1, 4[23] s, \d+ MiB\]", line), line
    assert kernel_memory(os.getpid()).endswith(" MiB") and kernel_memory(None) == ""
    report({"event": "stage_finished", "stage": "train", "outcome": "ran", "duration": 42.0})
    assert out.getvalue().endswith("       ran train (42.0s)\n\r\033[K")


def test_cell_events_name_the_stage_kernel_whose_memory_the_status_line_shows(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    write_nb(tmp_path / "nb.ipynb", code("import os\nprint(os.getpid())", "stage:a"))
    exit_code, out, _err = cli("run", "nb.ipynb", "--events", "jsonl")
    assert exit_code == 0
    events = [json.loads(line) for line in out.splitlines()]
    (cell,) = [e for e in events if e["event"] == "cell" and e.get("notebook_cell") == 1]
    (printed,) = [e for e in events if e["event"] == "output"]
    assert cell["kernel_pid"] == int(printed["text"].strip())
