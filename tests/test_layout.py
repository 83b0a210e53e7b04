"""The package keeps its shape: import direction (import-linter) and a light `--help`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

HEAVY = ("papermill", "nbclient", "jupyter_server", "tornado", "jupytext", "nbconvert", "nbformat")


def test_import_direction_contracts_hold():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    result = subprocess.run([exe or "lint-imports"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_help_and_export_import_nothing_heavy():
    probe = (
        "import sys, json\n"
        "from nb2pipe.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(m for m in sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(json.loads(result.stdout.splitlines()[-1]))
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}
