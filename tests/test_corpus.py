"""Real notebooks by other people: each exports, or fails with one clear line — never a crash."""

from __future__ import annotations

import shutil

import pytest

from conftest import CORPUS
from nb2pipe.errors import Nb2PipeError
from nb2pipe.export import export_notebook

NOTEBOOKS = sorted(CORPUS.glob("*.ipynb")) if CORPUS.is_dir() else []


@pytest.mark.skipif(not NOTEBOOKS, reason=f"the shared corpus is not at {CORPUS}")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name[:60] for p in NOTEBOOKS])
def test_corpus_notebook_exports_or_fails_with_one_line(tmp_path, path):
    notebook = tmp_path / path.name
    shutil.copy(path, notebook)
    try:
        result = export_notebook(notebook)
    except Nb2PipeError as error:
        message = str(error)
        assert message and "\n" not in message
        assert ("cell " in message or "stage" in message or "'" in message), message
        return
    assert result.pipeline.stages
    assert (result.folder / "nb2pipe.yaml").is_file()
    again = export_notebook(notebook, check=True)
    assert again.differing == [], "a second export must find nothing to change"


def test_corpus_is_never_written(tmp_path):
    if not NOTEBOOKS:
        pytest.skip(f"the shared corpus is not at {CORPUS}")
    assert not (CORPUS / "pipelines").exists()
