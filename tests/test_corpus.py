"""Real notebooks by other people: each exports, or is refused as intended with one clear line.

The intended refusals are listed by notebook with the error each gets
(helpers.INTENDED_CORPUS_REFUSALS); any other refusal, and any crash, fails.
"""

from __future__ import annotations

import shutil

import pytest

from conftest import CORPUS
from helpers import INTENDED_CORPUS_REFUSALS
from nb2pipe.errors import Nb2PipeError
from nb2pipe.export import export_notebook

NOTEBOOKS = sorted(CORPUS.glob("*.ipynb")) if CORPUS.is_dir() else []


@pytest.mark.skipif(not NOTEBOOKS, reason=f"the shared corpus is not at {CORPUS}")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name[:60] for p in NOTEBOOKS])
def test_corpus_notebook_exports_or_is_refused_as_intended(tmp_path, path):
    notebook = tmp_path / path.name
    shutil.copy(path, notebook)
    intended = INTENDED_CORPUS_REFUSALS.get(path.name)
    try:
        result = export_notebook(notebook)
    except Nb2PipeError as error:
        message = str(error)
        assert intended, f"{path.name} is refused, and that is not one of the intended refusals: {message}"
        assert intended in message, f"{path.name} is refused for another reason than intended ({intended!r}): {message}"
        assert message and "\n" not in message
        return
    assert intended is None, f"{path.name} exported, but nb2pipe is meant to refuse it ({intended!r})"
    assert result.pipeline.stages
    assert (result.folder / "nb2pipe.yaml").is_file()
    again = export_notebook(notebook, check=True)
    assert again.differing == [], "a second export must find nothing to change"


@pytest.mark.skipif(not NOTEBOOKS, reason=f"the shared corpus is not at {CORPUS}")
def test_every_intended_refusal_names_a_corpus_notebook():
    assert set(INTENDED_CORPUS_REFUSALS) <= {p.name for p in NOTEBOOKS}


def test_corpus_is_never_written(tmp_path):
    if not NOTEBOOKS:
        pytest.skip(f"the shared corpus is not at {CORPUS}")
    assert not (CORPUS / "pipelines").exists()
