"""The application API: what the CLI, the server and the widget call.

- `run(target, ...) -> RunReport`: a tracked run (export if needed, run lock, run history,
  MLflow, reporters), see `tracked`.
- `status`, `history`, `open_history`: what they read about a pipeline, see `reads`;
  `status_as_saved`: the status the saved notebook makes before it is exported again, see `saved`.
- `scratch_workspace(target)`: run a pipeline in an isolated copy of its working folder, see
  `scratch`.
- `run_sweep(target, trials, ...) -> SweepReport`: a sweep, each trial a tracked run in a scratch
  workspace, the stages they share run once, see `sweep` (the trials' grammar and plan:
  `nb2pipe.sweep`).
- `verify(notebook, ...) -> VerifyReport`: the notebook top to bottom against its pipeline, in
  copies of its folder, see `verify` (the comparison itself: `compare`).
- `python -m nb2pipe.api`: one tracked run in a child process, asked for in JSON on stdin (how
  the server runs a job), see `__main__`.

Importing it is light (no papermill, no Jupyter server): `nb2pipe status` uses it.
"""

from nb2pipe.api.reads import history, open_history, status
from nb2pipe.api.saved import SavedStatus, status_as_saved
from nb2pipe.api.scratch import Scratch, scratch_workspace
from nb2pipe.api.sweep import SweepReport, run_sweep
from nb2pipe.api.tracked import RunReport, equivalent_command, export_if_needed, folder_of, read_params_file, run
from nb2pipe.api.verify import VerifyReport, verify

__all__ = [
    "RunReport",
    "SavedStatus",
    "Scratch",
    "SweepReport",
    "VerifyReport",
    "equivalent_command",
    "export_if_needed",
    "folder_of",
    "history",
    "open_history",
    "read_params_file",
    "run",
    "run_sweep",
    "scratch_workspace",
    "status",
    "status_as_saved",
    "verify",
]
