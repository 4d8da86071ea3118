"""Uploaded files -> validated float32 arrays, in bounded time and memory whatever the file claims.

`.npz`: the zip directory is sized before `zipfile` reads it, each array's dtype and shape come
from its `.npy` header (numpy.lib.format) and are checked against the limits before anything is
allocated, and the bytes inflated are counted, so a forged header or a compression bomb is
refused after reading a few bytes. CSV files are read by `app.datasets.table`.
"""

from __future__ import annotations

import io
import math
import struct
import zipfile
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
from numpy.lib import format as npformat

from app.datasets.limits import Limits, checked
from app.datasets.table import read_csv
from app.errors import InvalidInput, TooLarge
from app.model.data import check_cells

ZIP_MAGIC = b"PK\x03\x04"
EOCD = struct.Struct("<4s4H2LH")  # the zip "end of central directory" record
MAX_ZIP_MEMBERS = 16  # an .npz needs two; a directory of millions would cost memory to index
MAX_ZIP_DIRECTORY = 64 * 1024  # bytes of central directory, likewise
READ_CHUNK = 1 << 20  # bytes inflated per read


def parse(filename: str, file: IO[bytes] | bytes, limits: Limits) -> tuple[np.ndarray, np.ndarray]:
    """An `.npz` (arrays x, y) or a CSV (columns x..., y...; header optional) -> (x, y) float32 (n, F), an
    `.npz` x also (n, timesteps, features)."""
    x, y, _ = read(filename, file, limits)
    return x, y


def read(filename: str, file: IO[bytes] | bytes, limits: Limits) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """As `parse`, with the CSV header's column names (x's, then y's), or None."""
    f: IO[bytes] = io.BytesIO(file) if isinstance(file, bytes) else file
    f.seek(0)
    is_zip = f.read(4) == ZIP_MAGIC
    f.seek(0)
    if is_zip or filename.lower().endswith(".npz"):
        return (*read_npz(f, limits), None)
    return read_csv(f, limits)


# -- .npz -------------------------------------------------------------------------------------


def _bad_npz(problem: str) -> InvalidInput:
    return InvalidInput.at("file", f"not a readable .npz file: {problem}")


def _check_directory(f: IO[bytes]) -> None:
    """Refuse a zip whose directory is large before zipfile indexes it (one object per entry)."""
    size = f.seek(0, io.SEEK_END)
    tail_len = min(size, EOCD.size + 65535)  # the record, then a comment of at most 64 KiB
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < EOCD.size:
        raise _bad_npz("no zip directory found (an .npz is a zip of .npy files, as numpy.savez writes)")
    entries, directory = EOCD.unpack_from(tail, at)[4:6]
    if entries > MAX_ZIP_MEMBERS or directory > MAX_ZIP_DIRECTORY:
        raise _bad_npz(
            f"its zip directory lists {entries} members in {directory} bytes; an .npz needs only x.npy and y.npy"
        )
    f.seek(0)


@dataclass
class _Member:
    """One array of an .npz: its open member file and what its .npy header declares."""

    name: str
    file: IO[bytes]
    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype[Any]

    @property
    def nbytes(self) -> int:
        """Bytes of data the header declares."""
        return math.prod(self.shape) * self.dtype.itemsize


def _header(zf: zipfile.ZipFile, name: str, limits: Limits) -> _Member:
    """Open member `name` and read its .npy header only; check dtype and shape against the limits."""
    if f"{name}.npy" not in zf.NameToInfo:
        raise _bad_npz(f"it needs arrays 'x' and 'y', has {sorted(n.removesuffix('.npy') for n in zf.namelist())}")
    member = zf.open(f"{name}.npy")
    try:
        version = npformat.read_magic(member)
        read = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
        shape, fortran, dtype = read(member)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise _bad_npz(f"{name}.npy has no valid .npy header ({exc})") from None
    if dtype.kind not in "fiu" or dtype.hasobject or dtype.fields is not None or dtype.shape != ():
        raise _bad_npz(f"{name} has dtype {dtype.str}; arrays must hold plain integers or floats")
    ranks = (1, 2, 3) if name == "x" else (1, 2)  # x may be sequences: (n, timesteps, features)
    if len(shape) not in ranks or any(d < 1 for d in shape):
        wanted = "1-D (n) or 2-D (n, features)" + (", or 3-D (n, timesteps, features)" if name == "x" else "")
        raise _bad_npz(f"{name} has shape {shape}; arrays must be non-empty, {wanted}")
    if shape[0] > limits.max_points:
        raise TooLarge.at("file", f"{name} has {shape[0]} rows, more than the limit {limits.max_points}")
    if len(shape) >= 2 and shape[-1] > limits.max_features:
        raise TooLarge.at("file", f"{name} has {shape[-1]} features, more than the limit {limits.max_features}")
    check_cells("file", f"{name} has", shape[0], math.prod(shape[1:]), limits.max_cells)
    return _Member(name, member, tuple(shape), bool(fortran), dtype)


def _read_array(m: _Member) -> np.ndarray:
    """The member's data, exactly as many bytes as its header declares: more is a compression bomb."""
    out = np.empty(m.nbytes, dtype=np.uint8)
    view, got = out.data, 0
    while got < m.nbytes:
        chunk = m.file.read(min(READ_CHUNK, m.nbytes - got))
        if not chunk:
            raise _bad_npz(f"{m.name}.npy is truncated: its header declares {m.nbytes} bytes of data, it holds {got}")
        view[got : got + len(chunk)] = chunk
        got += len(chunk)
    if m.file.read(1):
        raise _bad_npz(f"{m.name}.npy holds more data than its header declares ({m.nbytes} bytes)")
    return out.view(m.dtype).reshape(m.shape, order="F" if m.fortran else "C")


def read_npz(f: IO[bytes], limits: Limits) -> tuple[np.ndarray, np.ndarray]:
    """Arrays x and y of an .npz, checked from their headers before they are read."""
    _check_directory(f)
    try:
        with zipfile.ZipFile(f) as zf:
            mx, my = _header(zf, "x", limits), _header(zf, "y", limits)
            size = max(mx.nbytes + my.nbytes, 4 * (math.prod(mx.shape) + math.prod(my.shape)))  # or as float32
            if size > limits.max_bytes:
                raise TooLarge.at(
                    "file",
                    f"arrays x {mx.shape} and y {my.shape} hold {size} bytes, more "
                    f"than the upload limit of {limits.max_bytes} bytes",
                )
            x, y = _read_array(mx), _read_array(my)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        RuntimeError,
        NotImplementedError,
        ValueError,
    ) as exc:
        raise _bad_npz(f"{type(exc).__name__}: {exc}") from None
    x2, y2 = (a.reshape(len(a), -1) for a in (x, y))
    if len(x2) != len(y2):
        raise InvalidInput.at("file", f"x has {len(x2)} rows but y has {len(y2)}")
    # y may be narrower or wider than x: a network maps x (n, d) to y (n, m); single-layer jobs
    # check at submission that y is shaped like x. Sequences keep their shape (a bad value is named
    # by its row and its place in the row's timesteps x features).
    xs = checked(x2, "file: x", limits.bound)
    return (xs.reshape(x.shape) if x.ndim == 3 else xs), checked(y2, "file: y", limits.bound)
