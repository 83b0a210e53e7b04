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

    def progress(text: str) -> None:
        if not args.json:
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




def print_table(rows: Sequence[tuple[str, ...]]) -> None:
    """Rows of text as aligned columns (the first row is the header), as `runs` and `sweep` print them."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
