"""The application API: what the CLI, the server and the widget call.

- `run(target, ...) -> RunReport`: a tracked run (export if needed, run lock, run history,
  MLflow, reporters), see `tracked`.
- `status`, `history`, `open_history`: what they read about a pipeline, see `reads`;
  `history_rows`, `sweep_trial_counts`, `diff_runs`, `parameters`: what the Lab history and parameters form show, see `runs`;
  `status_as_saved`: the status the saved notebook makes before it is exported again, see `saved`;
  `stage_flows`: what flows into and out of each stage (variables, files, after:), see `flows`.
- `debug_notebook(folder, stage, run)`: a stage's failed (or last) run as a notebook to run again
  with its exact inputs, see `debugging`.
- `scratch_workspace(target)`: run a pipeline in an isolated copy of its working folder, see
  `scratch`.
- `run_sweep(target, trials, ...) -> SweepReport`: a sweep, each trial a tracked run in a scratch
  workspace, the stages they share run once, see `sweep` (the trials' grammar and plan:
  `nb2pipe.sweep`).
- `verify(notebook, ...) -> VerifyReport`: the notebook top to bottom against its pipeline, in
  copies of its folder, see `verification` (the comparison itself: `compare`).
- `python -m nb2pipe.api`: one tracked run in a child process, asked for in JSON on stdin (how
  the server runs a job), see `__main__`.

Importing it is light (no papermill, no Jupyter server): `nb2pipe status` uses it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nb2pipe.api.debugging import DebugNotebook, apply_debug_edits, debug_notebook
    from nb2pipe.api.flows import stage_flows
    from nb2pipe.api.reads import history, open_history, status
    from nb2pipe.api.runs import diff_runs, history_rows, parameters, sweep_trial_counts
    from nb2pipe.api.saved import SavedStatus, status_as_saved
    from nb2pipe.api.scratch import Scratch, scratch_workspace
    from nb2pipe.api.sweep import SweepReport, run_sweep
    from nb2pipe.api.tracked import RunReport, equivalent_command, export_if_needed, folder_of, read_params_file, run
    from nb2pipe.api.verification import VerifyReport, verify

# each name and the module that defines it, imported on first use: `nb2pipe run` needs `tracked`
# only, and `nb2pipe status` `reads` only (PEP 562)
_MODULE_OF = {
    **dict.fromkeys(("DebugNotebook", "apply_debug_edits", "debug_notebook"), "debugging"),
    **dict.fromkeys(("stage_flows",), "flows"),
    **dict.fromkeys(("history", "open_history", "status"), "reads"),
    **dict.fromkeys(("diff_runs", "history_rows", "parameters", "sweep_trial_counts"), "runs"),
    **dict.fromkeys(("SavedStatus", "status_as_saved"), "saved"),
    **dict.fromkeys(("Scratch", "scratch_workspace"), "scratch"),
    **dict.fromkeys(("SweepReport", "run_sweep"), "sweep"),
    **dict.fromkeys(("RunReport", "equivalent_command", "export_if_needed", "folder_of", "read_params_file", "run"), "tracked"),
    **dict.fromkeys(("VerifyReport", "verify"), "verification"),
}


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'nb2pipe.api' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"nb2pipe.api.{_MODULE_OF[name]}"), name)
    globals()[name] = value  # found here from now on
    return value


__all__ = [
    "DebugNotebook",
    "RunReport",
    "SavedStatus",
    "Scratch",
    "SweepReport",
    "VerifyReport",
    "apply_debug_edits",
    "debug_notebook",
    "diff_runs",
    "equivalent_command",
    "export_if_needed",
    "folder_of",
    "history",
    "history_rows",
    "open_history",
    "parameters",
    "read_params_file",
    "run",
    "run_sweep",
    "scratch_workspace",
    "stage_flows",
    "status",
    "status_as_saved",
    "sweep_trial_counts",
    "verify",
]
