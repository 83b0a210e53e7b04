"""`nb2pipe sweep`: parse its arguments, plan or run the sweep, print the trials' table.

Light to import, as cli.py: `--dry-run` reads the pipeline and plans; kernels start only for a run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from nb2pipe.commands import print_table
from nb2pipe.sweep_export import add_export_options, cmd_sweep_export

SWEEP_EPILOG = """examples:
  nb2pipe sweep pipelines/wine -p n_estimators=50,100,200 -p max_depth=3,5        # grid: 6 trials
  nb2pipe sweep wine.ipynb -p 'alpha=range(0.1, 1.0, 0.1)' --random 5 --seed 0     # 5 of the 9 values
  nb2pipe sweep pipelines/wine -p 'columns=[["a", "b"], ["a"]]'                    # values with commas: JSON
  nb2pipe sweep pipelines/wine --params-file sweep.yaml     # {grid: {name: [values]}} or {trials: [{name: value}]}
  nb2pipe sweep pipelines/wine -p max_depth=3,5 --dry-run   # the trials, and how many runs each stage needs
  nb2pipe sweep pipelines/wine -p max_depth=3,5 --jobs 4    # trials 4 at a time; the same command again resumes
  nb2pipe sweep pipelines/wine -p max_depth=3,5 --export airflow   # or kubeflow, dvc: write the engine's files, run nothing

Stages that read no swept parameter (nor follow one that does) run once, shared by every trial.
Each trial is a run in the history, in its own scratch copy of the working folder: the workspace
and nb2pipe.lock are not touched; bring a trial's outputs in with nb2pipe checkout PIPELINE --run ID.

exit status: 0 every trial ok; 1 a trial failed; 2 bad input; 130 interrupted (the same command resumes).
"""


def add_sweep_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="run a pipeline over many parameter values (grid or random search), sharing what the trials have in common",
        epilog=SWEEP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep.add_argument("target", type=Path, help="a pipeline folder, or a notebook (exported first when needed)")
    sweep.add_argument(
        "-p", "--param", action="append", default=[], metavar="NAME=VALUES",
        help="values to try: v1,v2,...  or 'range(start, stop, step)'  or '[json list]' (repeatable: the grid)",
    )  # fmt: skip
    sweep.add_argument("--params-file", type=Path, help="a YAML file: {grid: {name: [values]}} or {trials: [{name: value}, ...]}")
    sweep.add_argument("--random", type=int, metavar="N", help="sample N trials of the grid, without replacement")
    sweep.add_argument("--seed", type=int, default=0, metavar="S", help="the seed of --random (default 0)")
    sweep.add_argument("--resume", metavar="SWEEP", help="resume this sweep (its id): run the trials that did not finish")
    sweep.add_argument("--dry-run", action="store_true", help="print the trials and how many runs each stage needs; run nothing")
    sweep.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help="trials to run at once (default 1)")
    sweep.add_argument("--kernel", help="the Jupyter kernel to run stages on")
    sweep.add_argument("--executor", default="local", metavar="NAME", help="where stages run: local (default) or dask")
    sweep.add_argument("--scheduler", metavar="ADDRESS", help="--executor dask: the scheduler's address")
    add_plot_options(sweep)
    fmt = sweep.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the plan or the trials' table as JSON")
    fmt.add_argument("--md", action="store_true", help="print the trials' table as Markdown")
    add_export_options(sweep)
    sweep.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    from nb2pipe.errors import SpecError
    from nb2pipe.sweep import build_trials

    if args.jobs < 1:
        raise SpecError(f"--jobs {args.jobs} is not a number of trials; use 1 or more")
    resuming = args.resume and not (args.param or args.params_file)
    trials = None if resuming else build_trials(args.param, args.params_file, args.random, args.seed)
    if args.export:
        return cmd_sweep_export(args, trials)
    if args.plot and not args.dry_run:
        from nb2pipe.sweep_plot import require_matplotlib

        require_matplotlib()
    if args.dry_run:
        if trials is None:
            raise SpecError("--dry-run needs the -p values of the sweep; give them instead of --resume")
        plan = _plan(args.target, trials)
        if args.json:
            print(json.dumps(plan.to_json(), indent=2, default=str))
        else:
            print("\n".join(plan.lines()))
        return 0
    return _run(args, trials)


def _plan(target: Path, trials: list[dict[str, Any]]) -> Any:
    """The plan of a dry run, from the pipeline on disk (a notebook's as last exported)."""
    from nb2pipe.api.tracked import folder_of
    from nb2pipe.errors import SpecError
    from nb2pipe.spec import load_pipeline
    from nb2pipe.sweep import plan_sweep

    folder = folder_of(target)
    if target.suffix == ".ipynb" and not (folder / "nb2pipe.yaml").exists():
        raise SpecError(f"'{target}' has no pipeline folder yet; run nb2pipe export {target} first, or sweep without --dry-run")
    return plan_sweep(load_pipeline(folder), trials)


def _run(args: argparse.Namespace, trials: list[dict[str, Any]] | None) -> int:
    from nb2pipe.api import run_sweep
    from nb2pipe.run.events import plain_reporter

    report = run_sweep(
        args.target, trials, jobs=args.jobs, kernel=args.kernel, executor=args.executor, scheduler=args.scheduler,
        resume=args.resume, reporters=[plain_reporter(sys.stderr)], command=["nb2pipe", *getattr(args, "argv", ["sweep"])],
    )  # fmt: skip
    rows = trial_rows(report.trials, report.swept)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, default=str))
    elif args.md:
        print("| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]))
        for row in rows[1:]:
            print("| " + " | ".join(row) + " |")
    else:
        print_table(rows)
    print(report.summary, file=sys.stderr if args.json else sys.stdout)
    if args.plot:
        plot(args, report.trials, report.swept, report.sweep_id, report.pipeline)
    if report.interrupted:
        print(f"interrupted: the same command again (or --resume {report.sweep_id}) runs the trials that did not finish", file=sys.stderr)
        return 130
    return 0 if report.ok else 1


def trial_rows(trials: list[dict[str, Any]], swept: list[str]) -> list[tuple[str, ...]]:
    """The trials' table: run id, the swept parameters, the metrics, duration, status."""
    metrics = sorted({name for trial in trials for name in trial["metrics"] if "." not in name})
    rows: list[tuple[str, ...]] = [("RUN", *swept, *metrics, "TIME", "STATUS")]
    for trial in trials:
        values = ["-" if name not in trial["params"] else str(trial["params"][name]) for name in swept]
        numbers = [_cell(trial["metrics"].get(name)) for name in metrics]
        duration = f"{trial['duration']:.1f}s" if trial.get("duration") is not None else "-"
        rows.append((trial["id"], *values, *numbers, duration, trial["status"]))
    return rows


def _cell(value: object) -> str:
    return "-" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value))



def add_sweep_options_to_runs(runs: argparse.ArgumentParser) -> None:
    runs.add_argument("--sweep", metavar="REF", help="only this sweep's trials, all of them: a sweep id or 'latest'")
    runs.add_argument("--sort", metavar="METRIC:max|min", help="with --sweep: the best trial first by this metric")
    add_plot_options(runs)


def add_plot_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plot", metavar="METRIC",
        help="write a PNG of this metric against each swept parameter (needs matplotlib; default runs/sweep-<id>-<metric>.png)",
    )  # fmt: skip
    parser.add_argument("--plot-file", type=Path, metavar="FILE.png", help="with --plot: where to write the PNG")


def plot(args: argparse.Namespace, trials: list[dict[str, Any]], swept: list[str], sweep_id: str, folder: Path) -> None:
    """--plot METRIC [--plot-file F]: write the PNG and print its path."""
    from nb2pipe.sweep_plot import default_plot_path, write_plot

    path = write_plot(trials, swept, args.plot, sweep_id, args.plot_file or default_plot_path(folder, sweep_id, args.plot))
    print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)


def print_sweep_runs(args: argparse.Namespace) -> int:
    """`nb2pipe runs PIPELINE --sweep REF [--sort METRIC:max|min] [--json]`: the sweep's trials
    (the latest attempt of each), every one of them."""
    from nb2pipe import api
    from nb2pipe.errors import SpecError
    from nb2pipe.sweep import canonical

    if not args.sweep:
        option = f"--sort {args.sort}" if args.sort else f"--plot {args.plot}"
        raise SpecError(f"{option.split()[0]} works on a sweep's trials; add --sweep: nb2pipe runs {args.pipeline} --sweep latest {option}")
    with api.open_history(args.pipeline) as store:
        sweep_id = store.resolve_sweep(args.sweep)
        runs = store.sweep_runs(sweep_id)
    if args.sort:
        metric, _, goal = args.sort.rpartition(":")
        if not metric or goal not in ("max", "min"):
            raise SpecError(f"bad --sort '{args.sort}'; write METRIC:max or METRIC:min, e.g. --sort accuracy:max")
        present = [r for r in runs if isinstance(r["metrics"].get(metric), (int, float))]
        present.sort(key=lambda r: r["metrics"][metric], reverse=goal == "max")
        runs = present + [r for r in runs if r not in present]  # trials without the metric last
    asked = sorted({name for run in runs for name in (run["trial"] or {})})
    swept = [n for n in asked if len({canonical((run["trial"] or {}).get(n)) for run in runs}) > 1] or asked
    if args.plot:
        from nb2pipe.sweep_plot import check_metric

        check_metric(runs, args.plot, sweep_id)  # before the table: a wrong name is the one line printed
    if args.json:
        print(json.dumps(runs, indent=2, default=str))
    else:
        print(f"sweep {sweep_id}: {len(runs)} trial{'s' if len(runs) != 1 else ''}")
        if runs:
            print_table(trial_rows(runs, swept))
    if args.plot:
        plot(args, runs, swept, sweep_id, Path(args.pipeline))
    return 0
