"""`.keras` artifacts. Keras saves a model of each shape once; a job's file is that archive with the
job's parameter values written over the template's, where HDF5 says each dataset's bytes lie
(tens of microseconds a job instead of 10 ms), deflated."""

from __future__ import annotations

import functools
import io
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from workers.layers import build_model

WEIGHTS = "model.weights.h5"  # the weights member of a `.keras` archive


@functools.lru_cache(maxsize=32)
def _template(layer_type: str, features: int, per_feature: bool) -> tuple[dict[str, bytes], dict[str, tuple[int, int]]]:
    """The archive's members as Keras writes them for this shape, and for each parameter the byte
    offset and float32 count of its (contiguous) dataset in the weights file. Keras stores a layer's
    variables in order as `.../vars/0`, `1`, ..."""
    model = build_model(layer_type, features, {}, per_feature)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        with zipfile.ZipFile(path) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
    datasets: list[h5py.Dataset] = []
    with h5py.File(io.BytesIO(members[WEIGHTS]), "r") as f:
        f.visititems(lambda _, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
        datasets.sort(key=lambda d: int(d.name.rsplit("/", 1)[1]))
        where = [(d.id.get_offset(), d.size) for d in datasets if d.dtype == np.float32]
    names = [w.name for w in model.layers[0].weights]
    if len(where) != len(names) or any(offset is None for offset, _ in where):
        raise RuntimeError(f"unexpected weights layout for {layer_type}: {len(where)} float32 datasets")
    return members, dict(zip(names, where, strict=True))


def artifact(layer_type: str, features: int, per_feature: bool, params: dict[str, Any]) -> bytes:
    """The `.keras` file of a one-layer model holding `params` (a number, or a list per feature)."""
    members, datasets = _template(layer_type, features, per_feature)
    weights = bytearray(members[WEIGHTS])
    for name, (offset, size) in datasets.items():
        values = np.broadcast_to(np.asarray(params[name], "<f4"), (size,)).tobytes()
        weights[offset : offset + len(values)] = values
    out = io.BytesIO()
    # Deflated (fast level): a tenth of the bytes to store (about 1.4 kB, not 11), for 30 us a job.
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in members.items():
            archive.writestr(name, bytes(weights) if name == WEIGHTS else data)
    return out.getvalue()
