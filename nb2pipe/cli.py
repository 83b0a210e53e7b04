"""The `nb2pipe` command: parse arguments, call the library, print, map errors to exit codes.

Heavy modules are imported inside the command that needs them, so `nb2pipe --help` stays fast.
Exit codes: 0 success, 1 a check failed (or a stage failed), 2 a usage or input error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """examples:
  nb2pipe export analysis.ipynb                 write pipelines/analysis/ next to the notebook
  nb2pipe export analysis.ipynb --check         exit 1 when the pipeline folder is out of date
  nb2pipe show pipelines/analysis               stages, deps, outs, params and edges
  nb2pipe show pipelines/analysis --mermaid     the DAG as a Mermaid graph
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nb2pipe",
        description="Turn a Jupyter notebook into a reproducible pipeline, and run it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    export = commands.add_parser(
        "export",
        help="write a notebook's pipeline folder",
        description="Write the pipeline folder of a notebook: nb2pipe.yaml, params.yaml, stages/.",
        epilog="examples:\n  nb2pipe export analysis.ipynb\n  nb2pipe export analysis.ipynb -o build/pipe --format ipynb\n"
        "  nb2pipe export analysis.ipynb --check    # in CI: is the pipeline up to date?",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("notebook", type=Path, help="the .ipynb file")
    export.add_argument("-o", "--output", type=Path, help="the pipeline folder (default: pipelines/<name>/ next to the notebook)")
    export.add_argument("--format", choices=("py", "ipynb"), default="py", help="stage scripts as percent-format .py (default) or .ipynb")
    export.add_argument("--split-level", type=int, default=2, metavar="N", help="untagged notebooks: split at markdown headings of this level (default 2)")
    export.add_argument("--check", action="store_true", help="write nothing; exit 1 and list the files that differ")
    export.add_argument("--force", action="store_true", help="overwrite generated files that were edited by hand")
    export.set_defaults(func=cmd_export)

    show = commands.add_parser(
        "show",
        help="describe a pipeline: stages, files, params, edges",
        epilog="examples:\n  nb2pipe show pipelines/analysis\n  nb2pipe show pipelines/analysis --mermaid > dag.mmd",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("pipeline", type=Path, help="a pipeline folder (or its nb2pipe.yaml)")
    fmt = show.add_mutually_exclusive_group()
    fmt.add_argument("--mermaid", action="store_true", help="print the DAG as a Mermaid flowchart")
    fmt.add_argument("--json", action="store_true", help="print the pipeline as JSON")
    show.set_defaults(func=cmd_show)
    return parser


def cmd_export(args: argparse.Namespace) -> int:
    from nb2pipe.export import export_notebook

    if args.split_level < 1 or args.split_level > 6:
        from nb2pipe.errors import SpecError

        raise SpecError(f"--split-level {args.split_level} is not a heading level; use 1 to 6")
    result = export_notebook(
        args.notebook, args.output, fmt=args.format, split_level=args.split_level, force=args.force, check=args.check
    )
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    folder = _display(result.folder)
    if args.check:
        if result.differing:
            print(f"pipeline '{folder}' is out of date with '{args.notebook}'; run: nb2pipe export {args.notebook}")
            for rel in result.differing:
                print(f"  differs: {rel}")
            return 1
        print(f"pipeline '{folder}' is up to date with '{args.notebook}'")
        return 0
    names = ", ".join(s.name for s in result.pipeline.stages)
    changed = len(result.written) + len(result.removed)
    what = f"wrote {changed} file{'s' if changed != 1 else ''}" if changed else "nothing changed"
    count = len(result.pipeline.stages)
    print(f"exported '{args.notebook}' -> {folder}/ ({count} stage{'s' if count != 1 else ''}: {names}); {what}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from nb2pipe import describe

    if args.mermaid:
        from nb2pipe.graph import mermaid
        from nb2pipe.spec import load_pipeline

        print(mermaid(load_pipeline(args.pipeline)), end="")
    elif args.json:
        import json

        print(json.dumps(describe.describe(args.pipeline), indent=2))
    else:
        print(describe.as_text(describe.describe(args.pipeline)), end="")
    return 0


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from nb2pipe import __version__

        print(f"nb2pipe {__version__}")
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from nb2pipe.errors import Nb2PipeError

    try:
        return args.func(args)
    except Nb2PipeError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
