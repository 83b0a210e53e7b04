"""Hand variables from one stage's kernel to another's: a registry of serializers.

Generated cells call `save` at the end of a stage that provides variables and `load` at the
start of a stage that needs them. Each variable lives in its own folder,
`.nb2pipe/vars/<stage>/<name>/`, holding one file `<name>.<ext>`; the folder is what the
pipeline declares, so staleness, caching and early cut-off treat it like any output.

Serializers are tried in order; the first whose `accepts` says yes and whose `save` succeeds
wins: numpy arrays as `.npy`, anything else with pickle (`.pkl`), and what pickle cannot carry
with cloudpickle (`.cloudpickle`). `register` adds one in front.

Big values cost no copy to load: an `.npy` is memory-mapped, and a pickle is written with
protocol 5 and its big buffers (the data of numpy arrays, DataFrame blocks...) out of band, each
aligned in the file after the pickle stream, so the load maps the file and the arrays are built
on the mapping. Mappings are copy-on-write: the loaded values are writable, and what a stage
changes in them stays in its memory, never in the file. nb2pipe never changes a saved file in
place (a stage that saves again writes a new file), so the mapping always sees what was saved.
Pickles written without buffers (and by older versions) load as plain pickles.

Classes of the notebook (`__main__`) are saved by reference: the consumer stage re-creates
them before it loads (infer/flow.py), so a loaded instance is an instance of the stage's class.
Functions of the notebook, lambdas and closures are saved by value with cloudpickle: pickle would
save a notebook function by a name the consumer may not have.

Hidden state (infer/state_kinds.py) travels the same way: `save_state` at the end of a stage that
leaves it, `restore_state` at the start of one that uses it, each kind in its own folder
(carry.state_folder_name). After `note_working_folder`, every folder is found from the folder the
stage started in, so a stage that changes its working folder still saves where it should.
"""

from __future__ import annotations

import io
import mmap
import os
import pickle
import shutil
import struct
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAGIC = b"nb2pipe-pickle5\n"  # a pickle with out-of-band buffers (see `_dump`)
ALIGN = 64  # bytes: where each out-of-band buffer starts, as numpy aligns its own arrays
MAP_MIN_SIZE = 1 << 20  # bytes: smaller arrays and buffers are read into memory, not mapped


@dataclass(frozen=True)
class Serializer:
    ext: str
    accepts: Callable[[Any], bool]
    save: Callable[[Any, str], None]
    load: Callable[[str], Any]


class VariableNotSaved(Exception):
    """A value that cannot travel between stages (a generator, an open file, a lambda...)."""


def _is_ndarray(value: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and type(value) is numpy.ndarray and value.dtype != object


def _save_npy(value: Any, path: str) -> None:
    import numpy

    numpy.save(path, value, allow_pickle=False)


def _load_npy(path: str) -> Any:
    import numpy

    if os.path.getsize(path) < MAP_MIN_SIZE:
        return numpy.load(path, allow_pickle=False)
    # a plain ndarray (not numpy.memmap) on a copy-on-write mapping of the file
    return numpy.load(path, mmap_mode="c", allow_pickle=False).view(numpy.ndarray)


def _load_parquet(path: str) -> Any:  # DataFrames saved by earlier versions: still in their output caches
    import pandas

    return pandas.read_parquet(path)


class _PicklerOfImportables(pickle.Pickler):
    """pickle, refusing the notebook's own functions (saved by a name the consumer may not have)."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.FunctionType) and obj.__module__ == "__main__":
            raise pickle.PicklingError(f"{obj.__qualname__} is a function of the notebook")
        return NotImplemented


def _save_pickle(value: Any, path: str) -> None:
    _dump(_PicklerOfImportables, value, path)


def _dump(pickler: type[pickle.Pickler], value: Any, path: str) -> None:
    """Pickle `value` into `path`, its big buffers out of band (see the module's docstring):
    MAGIC, the number of parts, each part's offset and size (8-byte little-endian integers),
    then the parts: the pickle stream and each buffer, each at an ALIGN-byte boundary."""
    stream, buffers = io.BytesIO(), []

    def in_band(buffer: pickle.PickleBuffer) -> bool:
        try:
            raw = buffer.raw()
        except BufferError:  # not contiguous: pickle writes it in the stream (or says why it cannot)
            return True
        if raw.nbytes < MAP_MIN_SIZE:
            return True
        buffers.append(raw)
        return False

    pickler(stream, protocol=5, buffer_callback=in_band).dump(value)
    with open(path, "wb") as f:
        if not buffers:  # a plain pickle
            f.write(stream.getbuffer())
            return
        parts = [stream.getbuffer(), *buffers]
        places, offset = [], _aligned(len(MAGIC) + 8 + 16 * len(parts))
        for part in parts:
            places.append((offset, part.nbytes))
            offset = _aligned(offset + part.nbytes)
        f.write(MAGIC + struct.pack(f"<{1 + 2 * len(parts)}Q", len(parts), *(n for place in places for n in place)))
        for (place, _), part in zip(places, parts, strict=True):
            f.seek(place)
            f.write(part)


def _aligned(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN


def _load_pickle(path: str) -> Any:
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            f.seek(0)
            return pickle.load(f)
        (count,) = struct.unpack("<Q", f.read(8))
        numbers = struct.unpack(f"<{2 * count}Q", f.read(16 * count))
        mapped = memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY))
    (start, size), *buffers = zip(numbers[::2], numbers[1::2], strict=True)
    return pickle.loads(mapped[start : start + size], buffers=[mapped[o : o + n] for o, n in buffers])


def _is_importable_class(obj: Any) -> bool:
    """A class the consumer finds by its name: a class of the notebook is re-created there."""
    if not isinstance(obj, type):
        return False
    module = sys.modules.get(obj.__module__)
    return module is not None and getattr(module, obj.__qualname__, None) is obj


def _save_cloudpickle(value: Any, path: str) -> None:
    import cloudpickle

    class ClassesByReference(cloudpickle.Pickler):  # type: ignore[misc]  # cloudpickle ships no annotations
        def reducer_override(self, obj: Any) -> Any:
            if _is_importable_class(obj):
                return NotImplemented  # by name, as pickle does
            return super().reducer_override(obj)

    _dump(ClassesByReference, value, path)


SERIALIZERS: list[Serializer] = [
    Serializer("npy", _is_ndarray, _save_npy, _load_npy),
    Serializer("pkl", lambda value: True, _save_pickle, _load_pickle),
    Serializer("cloudpickle", lambda value: True, _save_cloudpickle, _load_pickle),
]
OLDER_FORMATS = {"parquet": _load_parquet}  # what earlier versions saved: still loaded from their caches


def register(serializer: Serializer) -> None:
    """Try `serializer` before the built-in ones."""
    SERIALIZERS.insert(0, serializer)


def save(name: str, namespace: dict[str, Any], folder: str, stage: str, consumers: list[str]) -> None:
    """Save variable `name` of `namespace` into `folder` for the stages `consumers`."""
    folder = _from_working_folder(folder)
    needed_by = ", ".join(repr(c) for c in consumers)
    if name not in namespace:
        raise VariableNotSaved(
            f"variable '{name}' is not defined at the end of stage '{stage}', but stage {needed_by} "
            f"reads it; define it in every branch of stage '{stage}', or compute it in stage {needed_by}"
        )
    value = namespace[name]
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    errors = []
    for serializer in SERIALIZERS:
        if not serializer.accepts(value):
            continue
        path = os.path.join(folder, f"{name}.{serializer.ext}")
        try:
            serializer.save(value, path)
            return
        except Exception as error:  # try the next serializer; report the last failure
            errors.append(f"{type(error).__name__}: {error}")
            if os.path.exists(path):
                os.remove(path)
    raise VariableNotSaved(
        f"variable '{name}' ({type(value).__name__}) of stage '{stage}', needed by stage {needed_by}, "
        f"cannot be saved ({errors[-1] if errors else 'no serializer'}); tag the cell that makes it "
        f"'setup', or recompute it in stage {needed_by}"
    )


def load(folder: str) -> Any:
    """The value saved in `folder` by `save`."""
    folder = _from_working_folder(folder)
    try:
        files = sorted(os.listdir(folder))
    except FileNotFoundError:
        raise FileNotFoundError(f"'{folder}' is missing; run the stage that provides it first") from None
    for file in files:
        ext = file.rsplit(".", 1)[-1]
        for serializer in SERIALIZERS:
            if serializer.ext == ext:
                return serializer.load(os.path.join(folder, file))
        if ext in OLDER_FORMATS:
            return OLDER_FORMATS[ext](os.path.join(folder, file))
    raise FileNotFoundError(f"'{folder}' holds no saved variable; rerun the stage that provides it")


# --- hidden state: global random generators, os.environ, sys.path, the working folder ----------

_STARTED_IN: list[str] = []  # the folder the stage started in, once noted


def note_working_folder() -> None:
    """Remember the folder the stage started in: relative folders are found from there."""
    if not _STARTED_IN:
        _STARTED_IN.append(os.getcwd())


def _from_working_folder(folder: str) -> str:
    return os.path.join(_STARTED_IN[0], folder) if _STARTED_IN else folder


def _capture(kind: str, keys: list[str]) -> Any:
    if kind == "random":
        import random

        return random.getstate()
    if kind == "numpy.random":
        import numpy

        return numpy.random.get_state()
    if kind == "torch":
        import torch  # type: ignore[import-not-found]

        return torch.get_rng_state()
    if kind == "os.environ":
        return {key: os.environ.get(key) for key in keys}
    if kind == "sys.path":
        return list(sys.path)
    if kind == "working folder":
        return os.path.relpath(os.getcwd(), _STARTED_IN[0] if _STARTED_IN else os.getcwd())
    raise ValueError(f"unknown kind of state {kind!r}")


def _restore(kind: str, state: Any) -> None:
    if kind == "random":
        import random

        random.setstate(state)
    elif kind == "numpy.random":
        import numpy

        numpy.random.set_state(state)
    elif kind == "torch":
        import torch

        torch.set_rng_state(state)
    elif kind == "os.environ":
        for key, value in state.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    elif kind == "sys.path":
        sys.path[:] = state
    elif kind == "working folder":
        os.chdir(_from_working_folder(state))
    else:
        raise ValueError(f"unknown kind of state {kind!r}")


def save_state(kind: str, folder: str, keys: list[str] | None = None) -> None:
    """Save the hidden state `kind` (os.environ: only `keys`) into `folder`."""
    state = _capture(kind, keys or [])
    folder = _from_working_folder(folder)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    _save_pickle(state, os.path.join(folder, "state.pkl"))


def restore_state(kind: str, folder: str) -> None:
    """Set the hidden state `kind` to what `save_state` saved in `folder`."""
    _restore(kind, load(folder))
