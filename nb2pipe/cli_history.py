"""The history commands of `nb2pipe`: runs, show RUN, diff, tag and gate print and judge what
`.nb2pipe/runs.db` recorded (see track.py). Like cli.py: parse, call, print; heavy modules are
imported inside the command that needs them.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parsers(commands) -> None:
    """The subcommands runs, diff, tag and gate (`show RUN` is an argument of `show`)."""
    runs = commands.add_parser("runs", help="the run history: id, when, status, commit, changed params, metrics")
    runs.add_argument("pipeline", type=Path)
    runs.add_argument("--limit", type=int, default=20, metavar="N", help="show the N newest runs (default 20)")
    runs.add_argument("--json", action="store_true")
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
    gate.add_argument("--metric", action="append", required=True, metavar="NAME:max|min", help="a metric and which way is better (repeatable)")
    gate.add_argument("--margin", type=float, default=0.0, help="how much better the candidate must be (default 0)")
    gate.add_argument("--baseline", required=True, metavar="RUN", help="the run to beat: a tag (e.g. champion), an id or latest~1")
    gate.add_argument("--candidate", default="latest", metavar="RUN", help="the run judged (default: latest)")
    gate.add_argument("--json", action="store_true")
    gate.set_defaults(func=cmd_gate)


def _store(path: Path):
    """The pipeline's run history (of a pipeline folder, or of a notebook's), to use in a `with`
    block (so runs.db is closed at once)."""
    from nb2pipe.spec import load_pipeline
    from nb2pipe.track import RunStore

    if path.suffix == ".ipynb":
        from nb2pipe.export import default_folder

        path = default_folder(path)
    return RunStore(load_pipeline(path))


def _metrics_text(metrics: dict, limit: int = 3) -> str:
    short = {k: v for k, v in metrics.items() if "." not in k} or metrics
    items = list(short.items())[:limit]
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items)


def cmd_runs(args: argparse.Namespace) -> int:
    import json

    from nb2pipe.track import changed_params, when

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
        status = run["status"] + (" (no-op)" if _is_no_op(run) else "")
        rows.append((_run_label(run), when(run["started"]), status, commit, changed, _metrics_text(run["metrics"]) or "-", duration))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def _run_label(run: dict) -> str:
    """A run's id with its tags: `20261126-125410-3db1 (champion)`."""
    return run["id"] + (f" ({', '.join(run['tags'])})" if run["tags"] else "")


def _is_no_op(run: dict) -> bool:
    """A run that changed nothing: it succeeded and every stage was already up to date (a stage
    restored from the run cache changed its outputs, so such a run is not a no-op)."""
    from nb2pipe.run.runner import UP_TO_DATE

    return run["status"] == "ok" and bool(run["stages"]) and all(s["outcome"] == UP_TO_DATE for s in run["stages"])


def show_run(args: argparse.Namespace) -> int:
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
    print(f"  env       Python {env.get('python', '?')} on {env.get('platform', '?')}, {len(env.get('distributions', {}))} packages ({run['environment']})")
    print("  params    " + (", ".join(f"{k}={v!r}" for k, v in run["params"].items()) or "-"))
    print("  metrics   " + (_metrics_text(run["metrics"], limit=100) or "-"))
    print("  stages")
    for stage in run["stages"]:
        duration = f" {stage['duration']:.1f}s" if stage["duration"] else ""
        print(f"    {stage['name']:<20} {stage['outcome']}{duration}" + (f"  {stage['error']}" if stage["error"] else ""))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    import json

    from nb2pipe.track import diff

    with _store(args.pipeline) as store:
        run_a, run_b = store.get(args.run_a), store.get(args.run_b)
    result = diff(run_a, run_b)
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


def _each_metric_once(rows: list[dict]) -> list[dict]:
    """The history names a metric reported by one stage both `name` and `stage.name`: keep `name`.
    A name several stages report stays as `stage.name`, one row per stage."""
    plain = {row["name"] for row in rows if "." not in row["name"]}
    return [row for row in rows if row["name"].partition(".")[2] not in plain]


def _diff_value(value) -> str:
    return "-" if value is None else (f"{value:.6g}" if isinstance(value, float) else str(value))


def _diff_change(row: dict) -> str:
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
