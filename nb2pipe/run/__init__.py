"""Running pipelines: the runner, its executors and the output cache. papermill is imported only here.

The names below load on first use, so `nb2pipe status` can use `nb2pipe.run.pidlock` without
importing the runner.
"""

from typing import Any

__all__ = ["RunOptions", "RunResult", "checkout", "run_pipeline"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from nb2pipe.run import runner

        return getattr(runner, name)
    raise AttributeError(name)
