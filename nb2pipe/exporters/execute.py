"""The stage command of engine files exported before it moved: it says how to update them.

A dvc.yaml, Airflow DAG or Kubeflow spec written by an earlier `nb2pipe export --to ENGINE` runs
each stage as `python -m nb2pipe.exporters.execute PIPELINE STAGE --engine ENGINE`. Stages now
run through `python -m nb2pipe.run.single` (run/single.py), beside the other executors; the
exporters only render text. This module runs nothing: it prints one line telling the user to
export again, which writes the new command, and exits with status 2.
"""

from __future__ import annotations

import sys

ENGINES = ("dvc", "airflow", "kubeflow")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    engine = args[args.index("--engine") + 1] if "--engine" in args[:-1] else ""
    target = engine if engine in ENGINES else "|".join(ENGINES)
    print(
        "error: this file was exported by an earlier nb2pipe, whose stage command "
        "'python -m nb2pipe.exporters.execute' is now 'python -m nb2pipe.run.single'; "
        f"export it again: nb2pipe export NOTEBOOK --to {target}",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
