"""Running pipelines: the runner, its executors and the output cache. papermill is imported only here."""

from nb2pipe.run.runner import RunOptions, RunResult, checkout, run_pipeline

__all__ = ["RunOptions", "RunResult", "checkout", "run_pipeline"]
