"""The package keeps its shape: import direction (import-linter) and a light `--help`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO, code, write_nb

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


# --- every module under nb2pipe/ is named in an import-linter contract --------------------------

PACKAGE = REPO / "nb2pipe"
CONTRACT_FIELDS = ("modules", "source_modules", "forbidden_modules")


def package_modules() -> set[str]:
    """Every module and package under nb2pipe/ (the root package itself aside), by dotted name."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) > 1:
            found.add(".".join(parts))
    return found


def named_in_contracts() -> set[str]:
    """The module names the contracts in pyproject.toml mention: layers (with their containers),
    source, forbidden and independent modules."""
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    named = set()
    for contract in config["contracts"]:
        for field in CONTRACT_FIELDS:
            named.update(contract.get(field, []))
        containers = contract.get("containers") or [""]
        for layer in contract.get("layers", []):
            for tail in layer.replace("|", ":").split(":"):
                tail = tail.strip().strip("()")
                named.update(f"{container}.{tail}" if container else tail for container in containers)
    return named


def test_every_module_is_named_in_an_import_linter_contract():
    modules = package_modules()
    assert {"nb2pipe.run.local", "nb2pipe.exporters", "nb2pipe.server.handlers"} <= modules  # the scan sees subpackages
    unnamed = sorted(modules - named_in_contracts())
    assert not unnamed, (
        f"named in no import-linter contract: {', '.join(unnamed)}; add each to a contract in pyproject.toml "
        "[tool.importlinter] (a layer of its package, or a forbidden contract's source_modules)"
    )


def test_exporting_to_another_engine_imports_nothing_that_runs_stages(tmp_path):
    """`nb2pipe export --to dvc|airflow` renders text: no kernel machinery is loaded."""
    write_nb(tmp_path / "nb.ipynb", code("import os", "setup"), code("x = 1", "stage:a"), code("y = x + 1", "stage:b"))
    probe = (
        "import sys, json\n"
        "from nb2pipe.cli import main\n"
        "codes = [main(['export', 'nb.ipynb', '--to', target]) for target in ('dvc', 'airflow')]\n"
        "print(json.dumps([codes, sorted(m for m in sys.modules)]))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    codes, loaded = json.loads(result.stdout.splitlines()[-1])
    assert codes == [0, 0], result.stderr
    assert (tmp_path / "pipelines/nb/dvc.yaml").is_file() and (tmp_path / "dags/nb.py").is_file()
    assert not {m for m in loaded if m.split(".")[0] in HEAVY + ("jupyter_client",)}
    runs_stages = ("nb2pipe.run.runner", "nb2pipe.run.local", "nb2pipe.run.kernels", "nb2pipe.run.dask_executor", "nb2pipe.run.single")
    assert not {m for m in loaded if m in runs_stages}
