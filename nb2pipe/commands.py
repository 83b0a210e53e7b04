"""Commands of `nb2pipe` kept out of cli.py (its size): `verify`, the `-p name=value` parsing every command shares,
and the table printing of `runs` and `sweep`.

Light to import, as cli.py: what a command needs is imported when it runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

VERIFY_EPILOG = """examples:
  nb2pipe verify analysis.ipynb
  nb2pipe verify analysis.ipynb --jobs 2 -p alpha=0.1
  nb2pipe verify analysis.ipynb --json > verify.json    # in CI

exit status: 0 the pipeline prints and writes what the notebook does; 1 it does not (or nothing
could be compared); 2 bad input (a missing notebook, not a notebook, a bad -p, a notebook that
fails on its own or that nb2pipe refuses).
"""


def add_verify_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verify = commands.add_parser(
        "verify",
        help="run the notebook top to bottom and its pipeline, and compare what they print and write",
        description="Run the notebook top to bottom (skip cells left out) and its pipeline, each in a temporary copy of "
        "the notebook's folder, and compare every code cell's printed output and every file both wrote. "
        "The workspace, nb2pipe.lock and the run history are left untouched.",
        epilog=VERIFY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("notebook", type=str, help="the .ipynb file")
    verify.add_argument("--jobs", "-j", type=int, default=None, metavar="N", help="stages to run at once, as for run")
    verify.add_argument(
        "-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="a parameter for both runs (typed like papermill's -p)"
    )
    verify.add_argument("--kernel", help="the Jupyter kernel for both runs")
    verify.add_argument("--json", action="store_true", help="print the result as JSON (see docs/commands.md)")
    verify.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    import json

    from nb2pipe.api import verify

    def progress(text: str) -> None:  # on stderr, with --json too: the JSON is stdout's
        print(f"verify: {text}", file=sys.stderr, flush=True)

    report = verify(args.notebook, jobs=args.jobs, params=parse_params(args.param), kernel=args.kernel, progress=progress)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return report.exit_code
    for line in report.lines():
        print(line)
    print(report.summary)
    return report.exit_code


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """`-p name=value` pairs as a mapping of typed values."""
    from nb2pipe.errors import SpecError
    from nb2pipe.spec import parse_value

    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise SpecError(f"bad parameter '{pair}'; write it as -p name=value")
        try:
            values[name.strip()] = parse_value(value)
        except SpecError as e:
            raise SpecError(f"-p {pair}: {e}; pass another value, or a string in --params-file") from None
    return values




DEBUG_EPILOG = """examples:
  nb2pipe debug pipelines/analysis train                 # the stage's last failed (or last) run
  nb2pipe debug pipelines/analysis train --run 20261129-0812-ab3f
  papermill pipelines/analysis/debug/train.ipynb out.ipynb   # headless: stops at the same exception

  nb2pipe debug pipelines/analysis train --apply         # copy the cells you fixed there into the notebook

then resume: nb2pipe run pipelines/analysis --from train
"""


def add_debug_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    debug = commands.add_parser(
        "debug",
        help="write a notebook that replays a stage's failed run with its exact inputs, to run in JupyterLab",
        description="Write debug/STAGE.ipynb in the pipeline folder: the stage's cells as its failed (or last) run "
        "executed them, with that run's parameters, the variables it loaded (restored from the output cache when "
        "they changed since), a first cell that moves to the stage's working folder, and the failing cell marked. "
        "Inputs that changed since the run are reported. Nothing is executed.",
        epilog=DEBUG_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    debug.add_argument("pipeline", help="a pipeline folder")
    debug.add_argument("stage", help="the stage to debug")
    debug.add_argument("--run", metavar="RUN", help="a run id, tag or latest~N (default: the stage's last failed run, else its last run)")
    debug.add_argument("--force", action="store_true", help="overwrite a debug notebook that has edits")
    debug.add_argument(
        "--apply", action="store_true", help="copy the cells you edited in the debug notebook back into the notebook, then stop"
    )
    debug.set_defaults(func=cmd_debug)


def cmd_debug(args: argparse.Namespace) -> int:
    from nb2pipe.api import apply_debug_edits, debug_notebook

    if args.apply:
        changed = apply_debug_edits(args.pipeline, args.stage)
        cells = ", ".join(map(str, changed))
        print(f"copied into the notebook: cell {cells}" if changed else "nothing to copy: no cell of the debug notebook was edited")
        return 0

    written = debug_notebook(args.pipeline, args.stage, args.run, force=args.force)
    where = f", failed at cell {written.failed_cell} ({written.error})" if written.failed_cell else f" ({written.outcome})"
    print(f"wrote {written.path}: stage '{args.stage}' as run {written.run_id} ran it{where}")
    for path in written.restored:
        print(f"  {path}: changed since the run; the notebook loads the run's version (restored from the output cache)")
    for path in written.changed:
        print(f"warning: {path} changed since the run; the notebook reads it as it is now", file=sys.stderr)
    print(f"open it in JupyterLab and run it up to the marked cell, or: papermill '{written.path}' out.ipynb")
    return 0


def print_table(rows: Sequence[tuple[str, ...]]) -> None:
    """Rows of text as aligned columns (the first row is the header), as `runs` and `sweep` print them."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
