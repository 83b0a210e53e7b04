"""`nb2pipe ci github`: a GitHub Actions workflow that runs the pipeline and gates the result."""

from __future__ import annotations

import posixpath


def github_workflow(pipeline: str, metrics: list[str]) -> str:
    """Install, run the pipeline, gate the run against the run tagged `champion`, keep the
    executed notebooks. The run history (.nb2pipe/) is carried between workflow runs by the
    cache action, so the champion of an earlier run is there to compare with."""
    if pipeline.endswith(".ipynb"):
        folder, name = posixpath.split(pipeline)
        state = posixpath.join(folder, "pipelines", name[: -len(".ipynb")])
    else:
        state = pipeline.rstrip("/")
    gate_args = " ".join(f"--metric {m}" for m in metrics) or "--metric METRIC:max"
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
          path: {state}/.nb2pipe
          key: nb2pipe-${{{{ github.ref_name }}}}-${{{{ github.sha }}}}
          restore-keys: |
            nb2pipe-${{{{ github.ref_name }}}}-
            nb2pipe-main-
      - name: Run the pipeline
        run: nb2pipe run {pipeline}
      - name: Gate against the champion
        run: |
          if nb2pipe show {state} champion > /dev/null 2>&1; then
            nb2pipe gate {state} {gate_args} --baseline champion
          else
            echo "no champion yet: this run becomes it"
          fi
      - name: Crown the new champion
        if: github.ref == 'refs/heads/main'
        run: nb2pipe tag {state} latest champion
      - name: Keep the executed notebooks
        if: always()
        uses: actions/upload-artifact@v4
        with:
          name: executed-notebooks
          path: {state}/runs/
"""
