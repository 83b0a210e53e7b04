"""nb2pipe.widgets.PipelineView builds the same table the sidebar shows, and its buttons run."""

from __future__ import annotations

import pytest

from conftest import code, write_nb
from helpers import wait_until

widgets = pytest.importorskip("ipywidgets", reason="ipywidgets is an optional front end")


def test_pipeline_view_shows_states_and_runs_stale_stages(tmp_path, cli):
    from nb2pipe.widgets import PipelineView

    nb = write_nb(tmp_path / "w.ipynb", code("open('x.txt', 'w').write('1')", "stage:make", "out:x.txt"))
    cli("export", nb)
    view = PipelineView(nb)
    assert "make" in view.table.value and "never-run" in view.table.value
    view.run_stale.click()
    wait_until(
        lambda: view._process.poll() is not None and "up-to-date" in view.table.value,
        "the run ends and the table shows the stage up to date",
        seen=lambda: (view.message.value, view.table.value),
    )
    assert "1 ran" in view.message.value
    assert (tmp_path / "x.txt").read_text() == "1"
