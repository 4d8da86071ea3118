"""`.keras` artifacts. Keras saves a model of each shape once; a job's file is that archive with the
job's parameter values written over the template's, where HDF5 says each dataset's bytes lie
(tens of microseconds a job instead of 10 ms), deflated."""

from __future__ import annotations

import functools
import io
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

from workers.layers import build_model

WEIGHTS = "model.weights.h5"  # the weights member of a `.keras` archive
LEVEL = 1  # deflate's fast level: a tenth of the bytes to store (about 1.4 kB, not 11)
# Zip headers: a local one is 30 bytes (its CRC at byte 14, the compressed size at 18) before the
# member's name and extra field; a central directory entry 46 (CRC at 16, compressed size at 20, and
# the lengths of its name, extra field and comment at 28) before those three.
LOCAL_HEADER, CENTRAL_HEADER = 30, 46


class Template(NamedTuple):
    """A shape's archive as zipfile writes it (deflated, the weights member last), cut around the
    weights' deflated bytes: `head` ends with their local header (at `local`), `tail` is the central
    directory (the weights' entry, the last, at `central`) and the end record; `weights` is the
    uncompressed weights file and `datasets` each parameter's (byte offset, float32 count) in it."""

    head: bytes
    local: int
    tail: bytes
    central: int
    weights: bytes
    datasets: dict[str, tuple[int, int]]


@functools.lru_cache(maxsize=32)
def _template(layer_type: str, features: int, per_feature: bool) -> Template:
    """This shape's template: Keras saves a model of the shape once, and each parameter's dataset is
    found in its weights file (Keras stores a layer's variables in order as `.../vars/0`, `1`, ...)."""
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
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=LEVEL) as archive:
        for name in sorted(members, key=lambda name: name == WEIGHTS):
            archive.writestr(name, members[name])
    data = out.getvalue()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(WEIGHTS)
    end = len(data) - 22  # the end record (no comment): the central directory's size and offset at 12
    cd_size, cd_offset = struct.unpack_from("<II", data, end + 12)
    if data[end : end + 4] != b"PK\x05\x06" or cd_offset + cd_size != end or info.flag_bits & 0x08:
        raise RuntimeError("unexpected zip layout of a .keras template")
    packed_at = info.header_offset + LOCAL_HEADER + len(info.filename.encode()) + len(info.extra)
    if packed_at + info.compress_size != cd_offset:
        raise RuntimeError("the weights are not the last member of the .keras template")
    central = cd_offset
    for _ in range(len(members) - 1):  # past every entry but the weights', the last
        central += CENTRAL_HEADER + sum(struct.unpack_from("<3H", data, central + 28))
    if data[central + CENTRAL_HEADER : central + CENTRAL_HEADER + len(WEIGHTS)] != WEIGHTS.encode():
        raise RuntimeError("unexpected central directory in a .keras template")
    datasets_at = dict(zip(names, where, strict=True))
    return Template(
        data[:packed_at], info.header_offset, data[cd_offset:], central - cd_offset, members[WEIGHTS], datasets_at
    )


def artifact(layer_type: str, features: int, per_feature: bool, params: dict[str, Any]) -> bytes:
    """The `.keras` file of a one-layer model holding `params` (a number, or a list per feature):
    the template's archive with the job's weights file deflated in place of the template's, and
    that member's CRC and compressed size (and so where the central directory starts) set to match.
    About 1.4 kB in some 60 microseconds, a third of zipfile's time to write the three members."""
    t = _template(layer_type, features, per_feature)
    weights = bytearray(t.weights)
    for name, (offset, size) in t.datasets.items():
        values = np.broadcast_to(np.asarray(params[name], "<f4"), (size,)).tobytes()
        weights[offset : offset + len(values)] = values
    packed = zlib.compress(weights, LEVEL, wbits=-15)  # raw deflate, as zipfile writes a member
    crc = zlib.crc32(weights)
    head, tail = bytearray(t.head), bytearray(t.tail)
    struct.pack_into("<II", head, t.local + 14, crc, len(packed))
    struct.pack_into("<II", tail, t.central + 16, crc, len(packed))
    struct.pack_into("<I", tail, len(tail) - 22 + 16, len(head) + len(packed))  # the central directory's offset
    return bytes(head) + packed + bytes(tail)
