"""`nb2pipe ci github`: a GitHub Actions workflow that runs the pipeline and gates the result.

Paths and metric names reach the workflow as data: each command is shell words quoted with
`shlex`, each YAML value is quoted where YAML would read it otherwise, and a name that neither
quoting can carry (a control character, or `${{`, which Actions evaluates before the shell runs)
is refused.
"""

from __future__ import annotations

import shlex
from pathlib import PurePosixPath

from nb2pipe.errors import SpecError
from nb2pipe.export import default_folder
from nb2pipe.files import check_name
from nb2pipe.generated import portable_scalar

_EXPRESSION = "${{"


def _check(text: str, what: str) -> None:
    check_name(text, what, "rename it")
    if _EXPRESSION in text:
        raise SpecError(f"{what} '{text}' holds '{_EXPRESSION}', which GitHub Actions would evaluate; rename it")


def github_workflow(pipeline: str, metrics: list[str]) -> str:
    """Install, run the pipeline, gate the run against the run tagged `champion`, keep the
    executed notebooks. The run history (.nb2pipe/) is carried between workflow runs by the
    cache action, so the champion of an earlier run is there to compare with."""
    _check(pipeline, "pipeline path")
    for metric in metrics:
        _check(metric, "metric")
    state = str(default_folder(PurePosixPath(pipeline))) if pipeline.endswith(".ipynb") else pipeline.rstrip("/")
    metric_args = [word for metric in metrics for word in ("--metric", metric)] or ["--metric", "METRIC:max"]
    gate_command = shlex.join(["nb2pipe", "gate", state, *metric_args, "--baseline", "champion"])
    run_command = shlex.join(["nb2pipe", "run", pipeline])
    show_command = shlex.join(["nb2pipe", "show", state, "champion"])
    tag_command = shlex.join(["nb2pipe", "tag", state, "latest", "champion"])
    return f"""# Written by `nb2pipe ci github`. Runs the pipeline; deploys only if it beats the champion.
name: nb2pipe
on:
  push:
    branches: [main]
  pull_request:

jobs:
  pipeline:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install
        run: pip install -e . || pip install nb2pipe
      - name: Bring back the run history and output cache
        uses: actions/cache@v4
        with:
          path: {portable_scalar(state + "/.nb2pipe")}
          key: nb2pipe-${{{{ github.ref_name }}}}-${{{{ github.sha }}}}
          restore-keys: |
            nb2pipe-${{{{ github.ref_name }}}}-
            nb2pipe-main-
      - name: Run the pipeline
        run: {portable_scalar(run_command)}
      - name: Gate against the champion
        run: |
          if {show_command} > /dev/null 2>&1; then
            {gate_command}
          else
            echo "no champion yet: this run becomes it"
          fi
      - name: Crown the new champion
        if: github.ref == 'refs/heads/main'
        run: {portable_scalar(tag_command)}
      - name: Keep the executed notebooks
        if: always()
        uses: actions/upload-artifact@v4
        with:
          name: executed-notebooks
          path: {portable_scalar(state + "/runs/")}
"""
