"""`.keras` artifacts, of single layers and networks alike. Keras saves a model of each shape once
(the only `model.save` of the code base); a job's file is that archive with the job's weights
written over the template's, where HDF5 says each dataset's bytes lie
(tens of microseconds a job instead of 10 ms), deflated."""

from __future__ import annotations

import functools
import io
import json
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import keras
import numpy as np

from app.model import networks
from workers import network
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


def template_of(model: keras.Model, names: list[str]) -> Template:
    """The template of a built model whose weights (in `model.weights` order) the artifacts name
    `names`. Keras saves it once with weight i filled with the number i + 1, which tells where each
    weight's dataset lies in the weights file, whatever the file's layout."""
    for i, var in enumerate(model.weights):
        var.assign(np.full(var.shape, i + 1, var.dtype))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        with zipfile.ZipFile(path) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
    found: list[h5py.Dataset] = []
    with h5py.File(io.BytesIO(members[WEIGHTS]), "r") as f:
        f.visititems(lambda _, obj: found.append(obj) if isinstance(obj, h5py.Dataset) else None)
        where = {int(d[()].flat[0]) - 1: (d.id.get_offset(), d.size) for d in found if d.size and d.dtype == np.float32}
    if sorted(where) != list(range(len(names))) or any(offset is None for offset, _ in where.values()):
        raise RuntimeError(f"unexpected weights layout: {len(where)} float32 datasets for {len(names)} weights")
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
    datasets = {names[i]: where[i] for i in range(len(names))}
    return Template(
        data[:packed_at], info.header_offset, data[cd_offset:], central - cd_offset, members[WEIGHTS], datasets
    )


@functools.lru_cache(maxsize=32)
def _template(layer_type: str, features: int, per_feature: bool) -> Template:
    """A one-layer model's template: its weights are the family's parameters."""
    model = build_model(layer_type, features, {}, per_feature)
    return template_of(model, [w.name for w in model.layers[0].weights])


@functools.lru_cache(maxsize=32)
def _network_template(key: str) -> Template:
    """A network shape's template (`key`: its layers without starting values, its input width and
    the statistics it holds, and its timesteps where it takes sequences, as JSON)."""
    layers, features, stats, *steps = json.loads(key)
    model, names = network.plain_model(layers, features, stats, *steps)
    return template_of(model, names)


def network_artifact(
    layers: list[dict[str, Any]], features: int, weights: dict[str, np.ndarray], timesteps: int | None = None
) -> bytes:
    """The `.keras` file of a network (a plain Keras Sequential, `workers.network.plain_model`)
    holding one member's `weights`, from its shape's template; with `timesteps`, over sequences."""
    shape = [{k: v for k, v in lay.items() if not k.endswith("_init")} for lay in layers]
    stats = [name for name in network.STATISTICS if name in weights]
    weights = {**weights, **networks.weight_normed_kernels(layers, weights)}  # a plain Dense holds w = g v / ||v||
    key = [shape, features, stats] + ([timesteps] if timesteps else [])
    return patch(_network_template(json.dumps(key, sort_keys=True)), weights)


def artifact(layer_type: str, features: int, per_feature: bool, params: dict[str, Any]) -> bytes:
    """The `.keras` file of a one-layer model holding `params` (a number, or a list per feature)."""
    return patch(_template(layer_type, features, per_feature), params)


def patch(t: Template, values: dict[str, Any]) -> bytes:
    """The template's archive holding `values` (each weight's numbers in C order, or one number for
    all): its weights file deflated in place of the template's, and that member's CRC and
    compressed size (and so where the central directory starts) set to match. About 1.4 kB in some
    60 microseconds for a single layer, a third of zipfile's time to write the three members."""
    weights = bytearray(t.weights)
    for name, (offset, size) in t.datasets.items():
        raw = np.broadcast_to(np.asarray(values[name], "<f4").reshape(-1), (size,)).tobytes()
        weights[offset : offset + len(raw)] = raw
    packed = zlib.compress(weights, LEVEL, wbits=-15)  # raw deflate, as zipfile writes a member
    crc = zlib.crc32(weights)
    head, tail = bytearray(t.head), bytearray(t.tail)
    struct.pack_into("<II", head, t.local + 14, crc, len(packed))
    struct.pack_into("<II", tail, t.central + 16, crc, len(packed))
    struct.pack_into("<I", tail, len(tail) - 22 + 16, len(head) + len(packed))  # the central directory's offset
    return bytes(head) + packed + bytes(tail)
