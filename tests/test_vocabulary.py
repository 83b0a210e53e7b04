"""One vocabulary: the TypeScript words are generated from nb2pipe.vocabulary, and every Python
place that writes a state, outcome, status or event writes one of its words."""

from __future__ import annotations

import ast
import subprocess
import sys

from conftest import REPO
from nb2pipe import vocabulary as v

VOCABULARY_TS = REPO / "labextension" / "src" / "vocabulary.ts"


def test_the_committed_typescript_vocabulary_is_what_the_generator_writes():
    generated = subprocess.run(
        [sys.executable, "-m", "nb2pipe.vocabulary", "--typescript"], capture_output=True, text=True, check=True
    ).stdout
    assert VOCABULARY_TS.read_text(encoding="utf-8") == generated, (
        "labextension/src/vocabulary.ts is out of date; run: "
        "python -m nb2pipe.vocabulary --typescript > labextension/src/vocabulary.ts"
    )


def test_the_typescript_vocabulary_holds_every_word():
    text = VOCABULARY_TS.read_text(encoding="utf-8")
    for enum in v.ENUMS:
        assert f"export const {enum.__name__} = {{" in text
        for member in enum:
            assert f"  {member.name}: '{member.value}'" in text


def test_the_user_visible_words_stay_as_they_are():
    assert [s.value for s in v.StageState] == ["up-to-date", "stale", "never-run", "failed", "running", "cancelled"]
    assert [s.value for s in v.JobStatus] == ["starting", "running", "ok", "failed", "cancelled"]
    assert [o.value for o in v.Outcome] == ["ran", "up to date", "restored", "failed", "not run", "would run"]
    assert [s.value for s in v.RunStatus] == ["running", "ok", "failed", "interrupted"]
    assert v.JOB_STAGE_DONE == {"ran", "up to date", "restored", "failed", "not run", "cancelled"}


# modules that write or compare states, outcomes, statuses or events
SPEAKERS = [
    "nb2pipe/run/runner.py", "nb2pipe/run/events.py", "nb2pipe/run/registry.py", "nb2pipe/track.py",
    "nb2pipe/mlflow_bridge.py", "nb2pipe/server/jobs.py", "nb2pipe/server/handlers.py", "nb2pipe/widgets.py",
    "nb2pipe/api/tracked.py", "nb2pipe/api/reads.py", "nb2pipe/api/scratch.py", "nb2pipe/api/__main__.py",
]
# Runner._executor: the executor registry replaces its body
NOT_SCANNED = {("nb2pipe/run/runner.py", "_executor")}
# words that are text for people there, not a state
PROSE = {
    ("nb2pipe/run/events.py", "starting"): "the live line of a stage whose first cell has not begun",
    ("nb2pipe/api/__main__.py", "interrupted"): "what the worker prints on stderr, as `nb2pipe run` does",
}
WORDS = {w.value for enum in (v.StageState, v.Outcome, v.RunStatus, v.JobStatus, v.JobStageState, v.EventName) for w in enum}


def spelled_out(path: str) -> list[str]:
    """Vocabulary words written as string literals where a value is used (not as a dict key, a
    subscript, or the key given to .get/.pop/.setdefault)."""
    tree = ast.parse((REPO / path).read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (path, node.name) in NOT_SCANNED:
            skipped |= {id(n) for n in ast.walk(node)}
        elif isinstance(node, ast.Dict):
            skipped |= {id(k) for k in node.keys if k is not None}
        elif isinstance(node, ast.Subscript):
            skipped.add(id(node.slice))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get", "pop", "setdefault")
            and node.args
        ):
            skipped.add(id(node.args[0]))
    return [
        f"{path}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in WORDS and id(node) not in skipped
        and (path, node.value) not in PROSE
    ]


def test_every_state_outcome_status_and_event_is_spelled_by_the_vocabulary():
    found = [line for path in SPEAKERS for line in spelled_out(path)]
    assert not found, "use nb2pipe.vocabulary instead of these literals:\n" + "\n".join(found)


def test_the_state_module_names_are_the_vocabulary():
    from nb2pipe import state

    assert (state.UP_TO_DATE, state.STALE, state.NEVER_RUN_STATE, state.FAILED, state.RUNNING, state.CANCELLED) == tuple(v.StageState)
    assert all(isinstance(s, v.StageState) for s in (state.UP_TO_DATE, state.STALE, state.CANCELLED))


def test_the_generator_refuses_other_arguments():
    result = subprocess.run([sys.executable, "-m", "nb2pipe.vocabulary"], capture_output=True, text=True)
    assert result.returncode == 2 and "usage:" in result.stderr
