"""Every word nb2pipe uses for a state, outcome, status or event, spelled once.

These are the words users and programs see (`status --json`, `runs --json`, the REST API, the
summary line), so the values never change; the names are what the code uses. StrEnum members
compare and serialize as their plain strings.

The JupyterLab extension gets the same words from `labextension/src/vocabulary.ts`, generated
from this module: `python -m nb2pipe.vocabulary --typescript > labextension/src/vocabulary.ts`
(tests/test_vocabulary.py fails when the committed file differs).
"""

from __future__ import annotations

import sys
from enum import StrEnum


class StageState(StrEnum):
    """A stage's state in `nb2pipe status` and `GET status`."""

    UP_TO_DATE = "up-to-date"
    STALE = "stale"
    NEVER_RUN = "never-run"
    FAILED = "failed"
    RUNNING = "running"
    CANCELLED = "cancelled"  # the last run of the stage was interrupted (Ctrl-C, SIGTERM, Cancel, kill -9)


class Outcome(StrEnum):
    """What a run did with a stage: the words of the summary line and of the run history."""

    RAN = "ran"
    UP_TO_DATE = "up to date"
    RESTORED = "restored"
    FAILED = "failed"
    NOT_RUN = "not run"
    WOULD_RUN = "would run"  # --dry-run


class RunStatus(StrEnum):
    """How a run ended (`run_finished` events, runs.db); `running` until it does."""

    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class JobStatus(StrEnum):
    """A run started through the server (`GET runs/{id}`)."""

    STARTING = "starting"
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobStageState(StrEnum):
    """A stage inside a job, besides the outcomes it ends with."""

    PENDING = "pending"
    RUNNING = "running"
    CANCELLED = "cancelled"


class EventName(StrEnum):
    """The runner's events (the `event` key of each line of runs/<id>/events.jsonl)."""

    RUN_STARTED = "run_started"
    STAGE_STARTED = "stage_started"
    CELL = "cell"
    OUTPUT = "output"
    STAGE_FINISHED = "stage_finished"
    STAGE_FAILED = "stage_failed"
    STAGE_RETRY = "stage_retry"  # a try of a stage with retries: failed, and the stage runs again
    RUN_FINISHED = "run_finished"
    MESSAGE = "message"


# the outcomes of a stage that finished with its outputs in place
SUCCEEDED = frozenset({Outcome.RAN, Outcome.UP_TO_DATE, Outcome.RESTORED})
# the states of a stage in a job after which it does not change in that job
JOB_STAGE_DONE = frozenset({*Outcome, JobStageState.CANCELLED} - {Outcome.WOULD_RUN})
# the job statuses after which a job does not change
JOB_FINISHED = frozenset({JobStatus.OK, JobStatus.FAILED, JobStatus.CANCELLED})

ENUMS = (StageState, Outcome, RunStatus, JobStatus, JobStageState, EventName)
SETS = {
    "SUCCEEDED": (SUCCEEDED, "The outcomes of a stage that finished with its outputs in place."),
    "JOB_STAGE_DONE": (JOB_STAGE_DONE, "The states of a stage in a job after which it does not change in that job."),
    "JOB_FINISHED": (JOB_FINISHED, "The job statuses after which a job does not change."),
}


def typescript() -> str:
    """labextension/src/vocabulary.ts: each enum as a const object and a union type, each set
    as a ReadonlySet."""
    lines = [
        "/**",
        " * The words nb2pipe uses for states, outcomes, statuses and events.",
        " *",
        " * GENERATED from nb2pipe/vocabulary.py; do not edit. Regenerate with",
        " * `python -m nb2pipe.vocabulary --typescript > labextension/src/vocabulary.ts`.",
        " */",
    ]
    for enum in ENUMS:
        lines += ["", f"/** {_first_line(enum.__doc__)} */", f"export const {enum.__name__} = {{"]
        lines += [f"  {member.name}: {_quoted(member.value)}," for member in enum]
        lines[-1] = lines[-1].rstrip(",")
        lines += ["} as const;", f"export type {enum.__name__} = (typeof {enum.__name__})[keyof typeof {enum.__name__}];"]
    for name, (values, doc) in SETS.items():
        lines += ["", f"/** {doc} */", f"export const {name}: ReadonlySet<string> = new Set(["]
        lines += [f"  {_quoted(v)}," for v in sorted(values)]
        lines[-1] = lines[-1].rstrip(",")
        lines += ["]);"]
    return "\n".join(lines) + "\n"


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0]


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["--typescript"]:
        print("usage: python -m nb2pipe.vocabulary --typescript > labextension/src/vocabulary.ts", file=sys.stderr)
        return 2
    sys.stdout.write(typescript())
    return 0


if __name__ == "__main__":
    sys.exit(main())
