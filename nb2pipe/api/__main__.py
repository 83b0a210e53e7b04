"""`python -m nb2pipe.api`: one tracked run in a child process, as the server runs its jobs.

1. Reads one JSON object on stdin: the keyword arguments of `api.run` that JSON can carry
   (`target` required; `params` keep their JSON types), e.g.
   {"target": "analysis.ipynb", "stages": ["train"], "force": true, "params": {"alpha": 0.5}}.
2. SIGINT and SIGTERM interrupt it from the start, whatever dispositions it inherited (a server
   started without a terminal ignores SIGINT, and its children would too): the run puts back
   the outputs of its running stages and exits 130.
3. Prints the run's events as JSON lines on stdout; exits like `nb2pipe run`: 0 ok, 1 a stage
   failed, 2 a bad request or input (one `error: ...` line on stderr), 130 interrupted.
"""

from __future__ import annotations

import json
import signal
import sys
from types import FrameType
from typing import Any, NoReturn

REQUEST_KEYS = {
    "target": str, "stages": list, "from_stage": str, "downstream": bool, "force": bool, "keep_going": bool,
    "dry_run": bool, "jobs": int, "params": dict, "kernel": str, "wait": bool, "executor": str, "scheduler": str,
    "command": list,
}


def read_request(text: str) -> dict[str, Any]:
    """The keyword arguments of `api.run` in a JSON request, each of the right type."""
    from nb2pipe.errors import SpecError

    try:
        data = json.loads(text)
    except ValueError:
        raise SpecError("the run request is not valid JSON; send one JSON object on stdin") from None
    if not isinstance(data, dict) or not isinstance(data.get("target"), str):
        raise SpecError("the run request must be a JSON object with a 'target' (a notebook or pipeline folder)")
    for key, value in data.items():
        kind = REQUEST_KEYS.get(key)
        if kind is None:
            raise SpecError(f"the run request has an unknown key '{key}'; known: {', '.join(sorted(REQUEST_KEYS))}")
        if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            raise SpecError(f"'{key}' in the run request must be a {kind.__name__}")
    return data


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def main() -> int:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    from nb2pipe.errors import exit_status

    return exit_status(_run_request)


def _run_request() -> int:
    from nb2pipe.api.tracked import run
    from nb2pipe.run.events import jsonl_reporter

    report = run(**read_request(sys.stdin.read()), reporters=[jsonl_reporter(sys.stdout)])
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
