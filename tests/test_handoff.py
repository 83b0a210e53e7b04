"""Variables handed between stages: big values load without a copy, and what a stage changes in a
loaded value never reaches the saved file (nb2pipe.handoff)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import code, md, write_nb
from helpers import stage_status, summary
from nb2pipe import handoff
from nb2pipe.hashing import hash_file

BIG = 300_000  # float64 values: 2.4 MB, above handoff.MAP_MIN_SIZE


def _saved(tmp_path: Path, value: object, name: str = "v") -> tuple[Path, object]:
    folder = tmp_path / name
    handoff.save(name, {name: value}, str(folder), stage="a", consumers=["b"])
    (file,) = folder.iterdir()
    return file, handoff.load(str(folder))


def _mapped(file: Path) -> bool:
    """Whether this process maps `file` (its data was not read into memory)."""
    return str(file.resolve()) in Path("/proc/self/maps").read_text()


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "x": rng.random(BIG),
            "n": np.arange(BIG, dtype=np.int64),
            "word": [f"w{i % 7}" for i in range(BIG)],
            "kind": pd.Categorical(["b", "a"] * (BIG // 2), categories=["b", "a"], ordered=True),
            "when": pd.date_range("2026-01-01", periods=BIG, freq="s"),
        },
        index=pd.RangeIndex(BIG, 2 * BIG, name="row"),
    )


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc/self/maps to see the mapping")
def test_a_big_dataframe_comes_back_equal_mapped_and_writable_without_touching_the_file(tmp_path):
    frame = _frame()
    file, loaded = _saved(tmp_path, frame)
    assert file.name == "v.pkl" and file.read_bytes().startswith(handoff.MAGIC)
    assert isinstance(loaded, pd.DataFrame)
    pd.testing.assert_frame_equal(loaded, frame)  # values, dtypes (ordered categorical, datetimes), index
    assert _mapped(file)
    before = hash_file(file)
    loaded.loc[BIG, "x"] = -1.0  # a change in place, as a stage may make
    loaded["n"] += 1
    assert loaded.loc[BIG, "x"] == -1.0 and loaded["n"].iloc[0] == 1
    assert hash_file(file) == before
    pd.testing.assert_frame_equal(handoff.load(str(file.parent)), frame)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc/self/maps to see the mapping")
@pytest.mark.parametrize("order", ["C", "F"])
def test_a_big_array_is_a_plain_writable_ndarray_on_the_file(tmp_path, order):
    array = np.asarray(np.random.default_rng(1).random((BIG // 10, 10)), order=order)
    file, loaded = _saved(tmp_path, array)
    assert file.name == "v.npy"
    assert type(loaded) is np.ndarray and loaded.flags.writeable
    assert np.array_equal(loaded, array) and loaded.flags.f_contiguous == array.flags.f_contiguous
    assert _mapped(file)
    before = hash_file(file)
    loaded *= 2
    assert hash_file(file) == before
    assert np.array_equal(handoff.load(str(file.parent)), array)


def test_several_big_buffers_in_one_value_and_views_that_are_not_contiguous(tmp_path):
    base = np.arange(4 * BIG, dtype=np.float64)
    value = {
        "a": base[: BIG * 2],
        "every_other": base[::2],  # not contiguous: pickled in the stream
        "f": np.asfortranarray(base.reshape(2, -1)),
        "frames": [pd.DataFrame({"x": base[:BIG]}), pd.Series(base[BIG : 2 * BIG])],
        "small": np.arange(3),
        "bytes": bytes(range(256)) * 5000,
    }
    file, loaded = _saved(tmp_path, value)
    assert file.read_bytes().startswith(handoff.MAGIC)
    assert isinstance(loaded, dict)
    for key in ("a", "every_other", "f", "small"):
        assert np.array_equal(loaded[key], value[key]), key
    assert loaded["f"].flags.f_contiguous
    pd.testing.assert_frame_equal(loaded["frames"][0], value["frames"][0])
    pd.testing.assert_series_equal(loaded["frames"][1], value["frames"][1])
    assert loaded["bytes"] == value["bytes"]


def test_small_values_are_plain_pickles(tmp_path):
    file, loaded = _saved(tmp_path, {"k": [1, 2.5, "x"], "a": np.arange(5)})
    assert not file.read_bytes().startswith(handoff.MAGIC)
    with file.open("rb") as f:
        assert pickle.load(f)["k"] == [1, 2.5, "x"]
    assert loaded["k"] == [1, 2.5, "x"]


def test_what_earlier_versions_saved_still_loads(tmp_path):
    """Cache entries from before out-of-band pickles: a plain pickle, a parquet DataFrame."""
    (tmp_path / "p").mkdir()
    with (tmp_path / "p" / "p.pkl").open("wb") as f:
        pickle.dump({"a": np.arange(BIG)}, f, protocol=4)
    assert np.array_equal(handoff.load(str(tmp_path / "p"))["a"], np.arange(BIG))
    pytest.importorskip("pyarrow", reason="parquet files need pyarrow")
    (tmp_path / "q").mkdir()
    frame = pd.DataFrame({"x": [1.5, 2.5], "y": ["a", "b"]})
    frame.to_parquet(tmp_path / "q" / "q.parquet")
    pd.testing.assert_frame_equal(handoff.load(str(tmp_path / "q")), frame)


def test_a_lambda_holding_a_big_array_goes_through_cloudpickle_out_of_band(tmp_path):
    pytest.importorskip("cloudpickle", reason="the cloudpickle format needs cloudpickle")
    weights = np.arange(BIG, dtype=np.float64)
    file, loaded = _saved(tmp_path, lambda i: weights[i] * 2)
    assert file.name == "v.cloudpickle" and file.read_bytes().startswith(handoff.MAGIC)
    assert loaded(BIG - 1) == 2 * (BIG - 1)


def test_a_stage_that_changes_a_big_loaded_value_hands_on_the_change_and_leaves_its_source_up_to_date(cli, tmp_path):
    """make -> change (changes the frame and the array in place) -> report: report sees the
    changes, as in the notebook; make's saved files are not written through the mapping, so a
    second run finds every stage up to date."""
    nb = write_nb(
        tmp_path / "big.ipynb",
        md("## Make"),
        code(f"import numpy as np\nimport pandas as pd\nframe = pd.DataFrame({{'x': np.zeros({BIG})}})\narray = np.zeros({BIG})"),
        md("## Change"),
        code("frame.loc[0, 'x'] = 5.0\narray[1] = 7.0\nprint('changed', frame['x'].sum(), array.sum())"),
        md("## Report"),
        code("print('report', frame['x'].sum(), array.sum())"),
    )
    exit_code, out, err = cli("run", nb)
    assert exit_code == 0, err
    assert summary(out) == "3 ran, 0 up to date, 0 restored from cache, 0 failed"
    executed = (tmp_path / "pipelines" / "big" / "runs").glob("*/report.ipynb")
    assert "report 5.0 7.0" in next(executed).read_text()
    assert {name: s["state"] for name, s in stage_status(cli, tmp_path / "pipelines" / "big").items()} == {
        "make": "up-to-date", "change": "up-to-date", "report": "up-to-date"
    }
    exit_code, out, err = cli("run", nb)
    assert exit_code == 0, err
    assert summary(out) == "0 ran, 3 up to date, 0 restored from cache, 0 failed"


def _cache_object(pipeline: Path, digest: str) -> Path:
    name = digest.split(":", 1)[1]
    return pipeline / ".nb2pipe" / "cache" / "objects" / name[:2] / name[2:]


def test_the_output_cache_links_hand_off_files_and_copies_the_users_files(cli, tmp_path):
    """A hand-off file is cached without a copy (the same file); a file the notebook writes is
    copied, so changing it in place afterwards leaves the cache able to put it back."""
    nb = write_nb(
        tmp_path / "keep.ipynb",
        md("## Make"),
        code(f"import numpy as np\narray = np.ones({BIG})\nwith open('notes.txt', 'w') as f:\n    f.write('first')"),
        md("## Use"),
        code("print(array.sum())"),
    )
    exit_code, _, err = cli("run", nb)
    assert exit_code == 0, err
    pipeline = tmp_path / "pipelines" / "keep"
    var = pipeline / ".nb2pipe" / "vars" / "make" / "array" / "array.npy"
    assert _cache_object(pipeline, hash_file(var)).samefile(var)
    notes = tmp_path / "notes.txt"
    notes_object = _cache_object(pipeline, hash_file(notes))
    assert notes_object.read_text() == "first" and not notes_object.samefile(notes)

    with notes.open("a") as f:
        f.write(" and more")  # in place
    var.unlink()
    exit_code, _, err = cli("checkout", pipeline)
    assert exit_code == 0, err
    assert notes.read_text() == "first"
    assert np.array_equal(np.load(var), np.ones(BIG)) and _cache_object(pipeline, hash_file(var)).samefile(var)
