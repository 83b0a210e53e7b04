"""The `nb2pipe` command: parse arguments, call the library, print, map errors to exit codes.

Heavy modules are imported inside the command that needs them, so `nb2pipe --help` stays fast.
Exit codes: 0 success, 1 a check failed (or a stage failed), 2 a usage or input error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2pipe.commands import add_debug_command, add_verify_command, parse_params, print_table
from nb2pipe.sweep_cli import add_sweep_command, add_sweep_options_to_runs

if TYPE_CHECKING:
    from nb2pipe.track import RunStore

EPILOG = """examples:
  nb2pipe export analysis.ipynb                 write pipelines/analysis/ next to the notebook
  nb2pipe export analysis.ipynb --check         exit 1 when the pipeline folder is out of date
  nb2pipe show pipelines/analysis               stages, deps, outs, params and edges
  nb2pipe show pipelines/analysis --mermaid     the DAG as a Mermaid graph
  nb2pipe explain analysis.ipynb                what each stage takes from and hands to the others
  nb2pipe run analysis.ipynb                    export if needed, then run what is stale
  nb2pipe run pipelines/analysis -p alpha=0.1 --jobs 2
  nb2pipe status pipelines/analysis             each stage: up to date or stale, and why
  nb2pipe checkout pipelines/analysis           restore the outputs recorded in nb2pipe.lock
  nb2pipe export analysis.ipynb --to dvc        also write dvc.yaml (or --to airflow, --to kubeflow)
  nb2pipe run pipelines/analysis --executor dask   run the stages on a Dask cluster
  nb2pipe verify analysis.ipynb                 does the pipeline print and write what the notebook does?
  nb2pipe debug pipelines/analysis train        replay the stage's failed run in a notebook, with its inputs
  nb2pipe sweep pipelines/analysis -p alpha=0.1,0.2 -p depth=3,5 --jobs 2    a grid of 4 trials
"""


COMMANDS = (
    "export", "show", "explain", "run", "status", "checkout", "runs", "diff", "tag", "gate", "ci", "verify", "debug", "sweep",
)  # fmt: skip


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with `command`, only that command's parser is built (the others'
    cost a few ms of argparse and gettext work at every start, for nothing)."""
    parser = argparse.ArgumentParser(
        prog="nb2pipe",
        description="Turn a Jupyter notebook into a reproducible pipeline, and run it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    commands: Any = parser.add_subparsers(dest="command", metavar="COMMAND")
    if command in COMMANDS:
        commands = _OnlyCommand(commands, command)
    _add_pipeline_commands(commands)
    _add_run_commands(commands)
    _add_history_commands(commands)
    add_verify_command(commands)
    add_debug_command(commands)
    add_sweep_command(commands)
    return parser


class _OnlyCommand:
    """Subcommands where only `name` gets a real parser; the others' are ignored as they are built."""

    def __init__(self, commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str):
        self.commands, self.name = commands, name

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        return self.commands.add_parser(name, **kwargs) if name == self.name else _Ignored()


class _Ignored:
    """Takes the calls a command's parser gets while it is built, and keeps nothing."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_defaults(self, **kwargs: Any) -> None:
        pass

    def add_mutually_exclusive_group(self, **kwargs: Any) -> _Ignored:
        return self


def _add_pipeline_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """export, show, explain: what a notebook's pipeline is."""
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
    export.add_argument(
        "--format",
        choices=("py", "ipynb"),
        help="stage scripts as percent-format .py (default) or .ipynb; recorded in nb2pipe.yaml, later exports keep it",
    )
    export.add_argument(
        "--split-level",
        type=int,
        metavar="N",
        help="untagged notebooks: split at markdown headings of this level (default 2); recorded like --format",
    )
    export.add_argument("--check", action="store_true", help="write nothing; exit 1 and list the files that differ")
    export.add_argument("--force", action="store_true", help="overwrite generated files that were edited by hand")
    export.add_argument(
        "--to", choices=("dvc", "airflow", "kubeflow"), help="also write the pipeline for another engine (see docs/integrations/)"
    )
    export.add_argument("--image", help="--to kubeflow: the default container image (default python:3.11-slim)")
    export.add_argument(
        "--package", action="append", metavar="REQ", help="--to kubeflow: a pip requirement installed in every step (repeatable)"
    )
    export.add_argument(
        "--pvc", metavar="CLAIM", help="--to kubeflow: a PersistentVolumeClaim holding the notebook's folder, mounted in every step"
    )
    export.set_defaults(func=cmd_export)

    show = commands.add_parser(
        "show",
        help="describe a pipeline: stages, files, params, edges",
        epilog="examples:\n  nb2pipe show pipelines/analysis\n  nb2pipe show pipelines/analysis --mermaid > dag.mmd",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("pipeline", type=Path, help="a pipeline folder (or its nb2pipe.yaml)")
    show.add_argument("run", nargs="?", help="a run id, tag or 'latest': show what was recorded for that run")
    fmt = show.add_mutually_exclusive_group()
    fmt.add_argument("--mermaid", action="store_true", help="print the DAG as a Mermaid flowchart")
    fmt.add_argument("--json", action="store_true", help="print the pipeline as JSON")
    show.set_defaults(func=cmd_show)

    explain = commands.add_parser(
        "explain",
        help="per stage: the variables and files it takes and hands on, and why",
        epilog="examples:\n  nb2pipe explain analysis.ipynb\n  nb2pipe explain analysis.ipynb --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explain.add_argument("notebook", type=Path, help="the .ipynb file")
    explain.add_argument(
        "--split-level", type=int, metavar="N", help="as for export (default: as the notebook's pipeline was exported, else 2)"
    )
    explain.add_argument("--json", action="store_true", help="print it as JSON")
    explain.set_defaults(func=cmd_explain)


def _add_run_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """run, status, checkout: running a pipeline and what it left."""
    run = commands.add_parser(
        "run",
        help="run the stale stages of a pipeline (exporting a notebook first if needed)",
        epilog="examples:\n  nb2pipe run pipelines/analysis\n  nb2pipe run analysis.ipynb -p alpha=0.1 --jobs 2\n"
        "  nb2pipe run pipelines/analysis --stage train --downstream\n  nb2pipe run pipelines/analysis --dry-run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("target", type=Path, help="a pipeline folder, or a notebook (exported first when needed)")
    run.add_argument(
        "-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="override a parameter (typed like papermill's -p)"
    )
    run.add_argument("--params-file", type=Path, help="a YAML file of parameter values")
    run.add_argument("--params-from", metavar="RUN", help="use the parameters of an earlier run (id, tag or 'latest')")
    run.add_argument("--stage", action="append", default=[], metavar="NAME", help="run only this stage (repeatable)")
    run.add_argument(
        "--from", dest="from_stage", metavar="NAME",
        help="resume: run this stage and everything after it; the stages before it are reused when up to date, else run first",
    )
    run.add_argument("--downstream", action="store_true", help="with --stage: also the stages that depend on it")
    run.add_argument("--force", action="store_true", help="run the selected stages even when up to date")
    run.add_argument("--keep-going", action="store_true", help="after a failure, still run the stages that do not depend on it")
    run.add_argument("--dry-run", action="store_true", help="show what would run, and why; run nothing")
    run.add_argument("--jobs", "-j", type=int, default=None, metavar="N", help="stages to run at once (default: number of cores)")
    run.add_argument("--kernel", help="the Jupyter kernel to run stages on")
    run.add_argument(
        "--executor", default="local", metavar="NAME", help="where stages run: local, this machine (default), or dask, a Dask cluster"
    )
    run.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="--executor dask: the scheduler, e.g. tcp://host:8786 (default: DASK_SCHEDULER_ADDRESS, else a local cluster)",
    )
    run.add_argument("--events", choices=("jsonl",), help="print machine-readable progress events on stdout")
    run.add_argument(
        "--log", "-v", action="store_true", help="show what the stages print as they print it, each line prefixed by its stage"
    )
    run.add_argument("--wait", action="store_true", help="wait for another run of the same pipeline to finish")
    run.set_defaults(func=cmd_run)

    status = commands.add_parser(
        "status",
        help="each stage: up to date, stale, never run or failed, with the reasons",
        epilog="examples:\n  nb2pipe status pipelines/analysis\n  nb2pipe status pipelines/analysis --json\n"
        "  nb2pipe status pipelines/analysis --quiet || echo stale",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument("pipeline", type=Path, help="a pipeline folder (or its notebook)")
    status.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="as if run with this parameter")
    out = status.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the status as JSON")
    out.add_argument("--quiet", "-q", action="store_true", help="print nothing; exit 1 when any stage is stale")
    status.set_defaults(func=cmd_status)

    checkout = commands.add_parser(
        "checkout", help="restore the outputs recorded in nb2pipe.lock (or of an earlier run) from the output cache"
    )
    checkout.add_argument("pipeline", type=Path, help="a pipeline folder")
    checkout.add_argument("--run", metavar="RUN", help="roll the outputs back to what this run produced")
    checkout.set_defaults(func=cmd_checkout)


def _add_history_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """runs, diff, tag, gate, ci: the run history and what is judged from it."""
    runs = commands.add_parser("runs", help="the run history: id, when, status, commit, changed params, metrics")
    runs.add_argument("pipeline", type=Path)
    runs.add_argument("--limit", type=int, default=20, metavar="N", help="show the N newest runs (default 20)")
    runs.add_argument("--json", action="store_true")
    add_sweep_options_to_runs(runs)
    runs.set_defaults(func=cmd_runs)

    diff = commands.add_parser(
        "diff", help="two runs' params and metrics side by side",
        epilog="examples:\n  nb2pipe diff pipelines/analysis latest~1 latest\n  nb2pipe diff pipelines/analysis champion latest --md",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    diff.add_argument("pipeline", type=Path)
    diff.add_argument("run_a", metavar="RUN_A")
    diff.add_argument("run_b", metavar="RUN_B")
    fmt = diff.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--md", action="store_true", help="a Markdown table (for a pull request comment)")
    diff.set_defaults(func=cmd_diff)

    tag = commands.add_parser("tag", help="name a run, e.g. champion")
    tag.add_argument("pipeline", type=Path)
    tag.add_argument("run")
    tag.add_argument("name")
    tag.set_defaults(func=cmd_tag)

    gate = commands.add_parser(
        "gate", help="exit 0 if the latest run beats a baseline on the chosen metrics, 1 if not, 2 if a metric is missing",
        epilog="examples:\n  nb2pipe gate pipelines/analysis --metric r2:max --metric mse:min --margin 0.01 --baseline champion",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gate.add_argument("pipeline", type=Path)
    gate.add_argument(
        "--metric", action="append", required=True, metavar="NAME:max|min", help="a metric and which way is better (repeatable)"
    )
    gate.add_argument("--margin", type=float, default=0.0, help="how much better the candidate must be (default 0)")
    gate.add_argument("--baseline", required=True, metavar="RUN", help="the run to beat: a tag (e.g. champion), an id or latest~1")
    gate.add_argument("--candidate", default="latest", metavar="RUN", help="the run judged (default: latest)")
    gate.add_argument("--json", action="store_true")
    gate.set_defaults(func=cmd_gate)

    ci = commands.add_parser("ci", help="write a CI workflow that runs the pipeline and gates it")
    ci.add_argument("provider", choices=("github",))
    ci.add_argument("pipeline", type=Path, help="the pipeline folder (or notebook) the workflow runs")
    ci.add_argument("--metric", action="append", default=[], metavar="NAME:max|min", help="metrics the gate checks")
    ci.add_argument("--output", type=Path, default=Path(".github/workflows/nb2pipe.yml"))
    ci.add_argument("--force", action="store_true", help="overwrite an existing workflow file")
    ci.set_defaults(func=cmd_ci)


def cmd_run(args: argparse.Namespace) -> int:
    from nb2pipe import api
    from nb2pipe.run.events import jsonl_reporter, plain_reporter, terminal_reporter

    if args.events == "jsonl":
        reporters = [jsonl_reporter(sys.stdout)]
    elif sys.stderr.isatty():
        reporters = [terminal_reporter(sys.stderr, log=args.log)]
    else:
        reporters = [plain_reporter(sys.stderr, log=args.log)]
    report = api.run(
        args.target, stages=args.stage, from_stage=args.from_stage, downstream=args.downstream, force=args.force,
        keep_going=args.keep_going, dry_run=args.dry_run, jobs=args.jobs, params=parse_params(args.param),
        params_file=args.params_file, params_from=args.params_from, kernel=args.kernel, wait=args.wait,
        executor=args.executor, scheduler=args.scheduler, reporters=reporters,
        command=["nb2pipe", *getattr(args, "argv", ["run", str(args.target)])],
    )
    for error in report.errors.values():
        print(f"error: {error.message}", file=sys.stderr)
    if report.errors:
        print(f"fix it, then resume with: nb2pipe run {args.target} --from {next(iter(report.errors))}", file=sys.stderr)
    if args.events != "jsonl":
        print(report.summary)
    return 0 if report.ok else 1


def cmd_status(args: argparse.Namespace) -> int:
    import json

    from nb2pipe import api

    report = api.status(args.pipeline, parse_params(args.param))
    stale = any(s.is_stale for s in report.stages)
    if args.quiet:
        return 1 if stale else 0
    if args.json:
        print(json.dumps(report.to_json(str(api.folder_of(args.pipeline))), indent=2))
        return 0
    pipeline = report.pipeline
    if report.source_in_sync is False and pipeline.source_notebook:
        notebook = os.path.relpath(Path(pipeline.root) / pipeline.source_notebook)
        print(f"source notebook changed since export: run nb2pipe export {notebook}")
    width = max(len(s.name) for s in report.stages)
    for s in report.stages:
        print(f"{s.name:<{width}}  {s.state}")
        for reason in s.reasons:
            print(f"{'':<{width}}    {reason}")
    return 0


def cmd_checkout(args: argparse.Namespace) -> int:
    from nb2pipe import api
    from nb2pipe.run import checkout

    if args.run:
        from nb2pipe.track import checkout_run

        with api.open_history(args.pipeline) as store:
            run = store.get(args.run)
        restored = checkout_run(store.pipeline, run)
        print(f"outputs rolled back to run {run['id']}: {len(restored)} restored")
        return 0
    restored = checkout(api.folder_of(args.pipeline))
    for path in restored:
        print(f"restored {path}")
    print(
        f"{len(restored)} output{'s' if len(restored) != 1 else ''} restored" if restored else "every output already matches nb2pipe.lock"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from nb2pipe.api.tracked import display_path
    from nb2pipe.export import export_notebook

    if (args.image or args.package or args.pvc) and args.to != "kubeflow":
        from nb2pipe.errors import SpecError

        raise SpecError("--image, --package and --pvc are options of --to kubeflow")
    if args.split_level is not None and not 1 <= args.split_level <= 6:
        from nb2pipe.errors import SpecError

        raise SpecError(f"--split-level {args.split_level} is not a heading level; use 1 to 6")
    result = export_notebook(
        args.notebook, args.output, fmt=args.format, split_level=args.split_level, force=args.force, check=args.check
    )
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    folder = display_path(result.folder)
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
    if args.to:
        from nb2pipe.exporters import export_to

        def warn(text: str) -> None:
            print(f"warning: {text}", file=sys.stderr)

        for path in export_to(
            args.to, result.folder, force=args.force, warn=warn, image=args.image, packages=args.package, pvc=args.pvc
        ):
            print(f"wrote {display_path(path)}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from nb2pipe import describe

    if args.run:
        return _show_run(args)

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


def cmd_explain(args: argparse.Namespace) -> int:
    from nb2pipe import describe

    info = describe.explain(args.notebook, args.split_level)
    if args.json:
        import json

        print(json.dumps(info, indent=2))
    else:
        print(describe.explain_text(info), end="")
    return 0


def _store(path: Path) -> RunStore:
    """The pipeline's run history, to use in a `with` block (so runs.db is closed at once)."""
    from nb2pipe import api

    return api.open_history(path)


def _metrics_text(metrics: dict[str, Any], limit: int = 3) -> str:
    short = {k: v for k, v in metrics.items() if "." not in k} or metrics
    items = list(short.items())[:limit]
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items)


def cmd_runs(args: argparse.Namespace) -> int:
    import json

    from nb2pipe.track import changed_params, is_no_op, when

    if args.sweep or args.sort or args.plot:
        from nb2pipe.sweep_cli import print_sweep_runs

        return print_sweep_runs(args)
    limit = args.limit if args.limit and args.limit > 0 else None
    # one run more than shown, so the oldest shown is compared with the run before it
    with _store(args.pipeline) as store:
        runs = store.runs(limit + 1 if limit else None)
    changes = changed_params(runs)
    runs = runs[:limit]
    if args.json:
        print(json.dumps(runs, indent=2, default=str))
        return 0
    if not runs:
        print(f"no runs yet; start one with: nb2pipe run {args.pipeline}")
        return 0
    rows = [("RUN", "WHEN", "STATUS", "COMMIT", "CHANGED PARAMS", "METRICS", "TIME")]
    for run in runs:
        commit = (run["git_commit"] or "-")[:8] + ("*" if run["git_dirty"] else "")
        changed = ", ".join(f"{k}={v}" for k, v in changes[run["id"]].items()) or "-"
        duration = f"{run['duration']:.1f}s" if run["duration"] is not None else "-"
        status = run["status"] + (" (no-op)" if is_no_op(run) else "")
        rows.append((_run_label(run), when(run["started"]), status, commit, changed, _metrics_text(run["metrics"]) or "-", duration))
    print_table(rows)
    return 0


def _run_label(run: dict[str, Any]) -> str:
    """A run's id with its tags: `20261126-125410-3db1 (champion)`."""
    return run["id"] + (f" ({', '.join(run['tags'])})" if run["tags"] else "")


def _show_run(args: argparse.Namespace) -> int:
    import json

    from nb2pipe.track import when

    with _store(args.pipeline) as store:
        run = store.get(args.run)
        env = store.environment_of(run["environment"])
    if args.json:
        print(json.dumps({**run, "environment": env}, indent=2, default=str))
        return 0
    print(f"run {run['id']}" + (f"  tags: {', '.join(run['tags'])}" if run["tags"] else ""))
    print(f"  status    {run['status']}" + (f": {run['error']}" if run["error"] else ""))
    print(f"  started   {when(run['started'])}" + (f"  ({run['duration']:.1f}s)" if run["duration"] is not None else ""))
    print(f"  command   {' '.join(run['command'])}")
    commit = run["git_commit"] or "(not in a git repository)"
    print(f"  commit    {commit}" + (" (with uncommitted changes)" if run["git_dirty"] else ""))
    packages = len(env.get("distributions", {}))
    print(f"  env       Python {env.get('python', '?')} on {env.get('platform', '?')}, {packages} packages ({run['environment']})")
    print("  params    " + (", ".join(f"{k}={v!r}" for k, v in run["params"].items()) or "-"))
    print("  metrics   " + (_metrics_text(run["metrics"], limit=100) or "-"))
    print("  stages")
    for stage in run["stages"]:
        duration = f" {stage['duration']:.1f}s" if stage["duration"] else ""
        print(f"    {stage['name']:<20} {stage['outcome']}{duration}" + (f"  {stage['error']}" if stage["error"] else ""))
        for tried in stage.get("tries", []):  # the failed tries before the last (retries:)
            print(f"      try {tried['try']} failed  {tried['error']}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    import json

    from nb2pipe import api

    result = api.diff_runs(args.pipeline, args.run_a, args.run_b)
    run_a, run_b = ({"id": result[side], "tags": result["tags"][side]} for side in ("a", "b"))
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    sections = {"params": result["params"], "metrics": _each_metric_once(result["metrics"])}
    if args.md:
        print(f"| | {result['a']} | {result['b']} | change |\n|---|---|---|---|")
        for section, rows in sections.items():
            for row in rows:
                print(f"| {section[:-1]} `{row['name']}` | {_diff_value(row['a'])} | {_diff_value(row['b'])} | {_diff_change(row)} |")
        return 0
    lines = [("", _run_label(run_a), _run_label(run_b), "change")]
    for section, rows in sections.items():
        lines.append((section, "", "", ""))
        lines.extend((f"  {r['name']}", _diff_value(r["a"]), _diff_value(r["b"]), _diff_change(r)) for r in rows)
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    for name, a, b, change in lines:
        print(f"{name:<{widths[0]}}  {a:>{widths[1]}}  {b:>{widths[2]}}  {change}".rstrip())
    return 0


def _each_metric_once(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history names a metric reported by one stage both `name` and `stage.name`: keep `name`.
    A name several stages report stays as `stage.name`, one row per stage."""
    plain = {row["name"] for row in rows if "." not in row["name"]}
    return [row for row in rows if row["name"].partition(".")[2] not in plain]


def _diff_value(value: object) -> str:
    return "-" if value is None else (f"{value:.6g}" if isinstance(value, float) else str(value))


def _diff_change(row: dict[str, Any]) -> str:
    """How B differs from A: the difference of two numbers, else 'changed' (blank when equal)."""
    if "change" in row:
        return f"{row['change']:+.6g}" if row["change"] else ""
    return "changed" if row["changed"] else ""


def cmd_tag(args: argparse.Namespace) -> int:
    with _store(args.pipeline) as store:
        run_id = store.tag(args.run, args.name)
    print(f"tagged run {run_id} as '{args.name}'")
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    import json

    from nb2pipe.track import gate, parse_metric_goal

    goals = [parse_metric_goal(text) for text in args.metric]
    with _store(args.pipeline) as store:
        candidate, baseline = store.get(args.candidate), store.get(args.baseline)
    code, checks = gate(candidate, baseline, goals, args.margin)
    if args.json:
        print(json.dumps({"candidate": candidate["id"], "baseline": baseline["id"], "exit": code,
                          "checks": [c.__dict__ for c in checks]}, indent=2))
    else:
        print(f"candidate {candidate['id']} vs baseline {baseline['id']} (margin {args.margin:g})")
        for check in checks:
            print("  " + check.line(args.margin))
        print({0: "better: deploy", 1: "not better: keep the baseline", 2: "cannot judge: a metric is missing"}[code])
    return code


def cmd_ci(args: argparse.Namespace) -> int:
    from nb2pipe.ci import github_workflow
    from nb2pipe.errors import OverwriteError

    if args.output.exists() and not args.force:
        raise OverwriteError(f"'{args.output}' exists; pass --force to overwrite it")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(github_workflow(str(args.pipeline), args.metric))
    print(f"wrote {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    typed = list(sys.argv[1:] if argv is None else argv)
    words = [word for word in typed if not word.startswith("-")]
    parser = build_parser(words[0] if words else None)
    args = parser.parse_args(typed)
    args.argv = typed  # what the user typed, for the run history
    if args.version:
        from nb2pipe import __version__

        print(f"nb2pipe {__version__}")
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from nb2pipe.errors import exit_status

    return exit_status(lambda: args.func(args), debug=args.debug)
