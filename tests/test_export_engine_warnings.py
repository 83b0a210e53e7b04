"""`nb2pipe export --to ENGINE` says in one warning line which stage settings (issue 17) the engine
cannot express, naming the stages; an engine that expresses them all says nothing. (Rendering
DVC and Airflow files needs neither tool; the files are checked with the tools in tests/exports/.)"""

from __future__ import annotations

from conftest import code, write_nb


def test_dvc_names_the_settings_it_cannot_express_and_the_stages(cli, tmp_path):
    nb = write_nb(
        tmp_path / "a.ipynb",
        code("x = 1\n", "stage:load", "allow-failure", "out:x.txt"),
        code("y = 2\n", "stage:train", "track-env", "env:HOME", "timeout:5m"),
    )
    status, _, err = cli("export", nb, "--to", "dvc")
    assert status == 0, err
    (line,) = [line for line in err.splitlines() if line.startswith("warning:")]
    assert line.startswith(
        "warning: --to dvc cannot express allow-failure (stage 'load'), track-env (stage 'train'), "
        "the caller's value of env:NAME (stage 'train'): dvc repro stops at a failed stage"
    )
    assert "timeout" not in line  # the stage command applies it


def test_airflow_names_memory_and_says_nothing_without_it(cli, tmp_path):
    nb = write_nb(tmp_path / "a.ipynb", code("x = 1\n", "stage:load", "memory:2GiB", "retries:1"))
    status, _, err = cli("export", nb, "--to", "airflow")
    assert status == 0 and err.count("warning:") == 1 and "cannot express memory (stage 'load')" in err
    nb = write_nb(tmp_path / "b.ipynb", code("x = 1\n", "stage:load", "retries:1", "timeout:1h"))
    status, _, err = cli("export", nb, "--to", "airflow")
    assert status == 0 and "warning" not in err
