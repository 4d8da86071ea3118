"""Uploaded files -> validated float32 arrays, in bounded time and memory whatever the file claims.

`.npz`: the zip directory is sized before `zipfile` reads it, each array's dtype and shape come
from its `.npy` header (numpy.lib.format) and are checked against the limits before anything is
allocated, and the bytes inflated are counted, so a forged header or a compression bomb is
refused after reading a few bytes. CSV: read line by line (any line ending, quotes, a BOM, UTF-16
with a BOM, comment lines, `numpy.savetxt`'s space-separated form, blank lines), with a bounded
line length, converted in blocks; a bad cell is named by its row and column.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import struct
import zipfile
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
from numpy.lib import format as npformat

from app import functions
from app.data import bound_problem, first_bad
from app.errors import InvalidInput, TooLarge

ZIP_MAGIC = b"PK\x03\x04"
EOCD = struct.Struct("<4s4H2LH")  # the zip "end of central directory" record
MAX_ZIP_MEMBERS = 16  # an .npz needs two; a directory of millions would cost memory to index
MAX_ZIP_DIRECTORY = 64 * 1024  # bytes of central directory, likewise
READ_CHUNK = 1 << 20  # bytes inflated per read
NUMBER_CHARS = 80  # generous room per cell: '-1.234567890123456789e-308' plus quotes and spaces
BLOCK_VALUES = 1 << 20  # CSV cells converted to float per block: bounds the Python objects alive


@dataclass(frozen=True)
class Limits:
    """What one upload may hold."""

    max_bytes: int  # the file, and an .npz's arrays once inflated, and x and y as float32
    max_points: int
    max_features: int
    bound: float = functions.DATA_MAX


def parse(filename: str, file: IO[bytes] | bytes, limits: Limits) -> tuple[np.ndarray, np.ndarray]:
    """An `.npz` (arrays x, y) or a CSV (columns x..., y...; header optional) -> (x, y) float32 (n, F)."""
    f: IO[bytes] = io.BytesIO(file) if isinstance(file, bytes) else file
    f.seek(0)
    is_zip = f.read(4) == ZIP_MAGIC
    f.seek(0)
    if is_zip or filename.lower().endswith(".npz"):
        return read_npz(f, limits)
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
        raise _bad_npz(f"its zip directory lists {entries} members in {directory} bytes; "
                       "an .npz needs only x.npy and y.npy")
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
    if len(shape) not in (1, 2) or any(d < 1 for d in shape):
        raise _bad_npz(f"{name} has shape {shape}; arrays must be non-empty, 1-D (n) or 2-D (n, features)")
    if shape[0] > limits.max_points:
        raise TooLarge.at("file", f"{name} has {shape[0]} rows, more than the limit {limits.max_points}")
    if len(shape) == 2 and shape[1] > limits.max_features:
        raise TooLarge.at("file", f"{name} has {shape[1]} features, more than the limit {limits.max_features}")
    return _Member(name, member, tuple(shape), bool(fortran), dtype)


def _read_array(m: _Member) -> np.ndarray:
    """The member's data, exactly as many bytes as its header declares: more is a compression bomb."""
    out = np.empty(m.nbytes, dtype=np.uint8)
    view, got = out.data, 0
    while got < m.nbytes:
        chunk = m.file.read(min(READ_CHUNK, m.nbytes - got))
        if not chunk:
            raise _bad_npz(f"{m.name}.npy is truncated: its header declares {m.nbytes} bytes of data, it holds {got}")
        view[got:got + len(chunk)] = chunk
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
                raise TooLarge.at("file", f"arrays x {mx.shape} and y {my.shape} hold {size} bytes, more "
                                  f"than the upload limit of {limits.max_bytes} bytes")
            x, y = _read_array(mx), _read_array(my)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, RuntimeError, NotImplementedError,
            ValueError) as exc:
        raise _bad_npz(f"{type(exc).__name__}: {exc}") from None
    x2, y2 = (a.reshape(len(a), -1) for a in (x, y))
    if len(x2) != len(y2):
        raise InvalidInput.at("file", f"x has {len(x2)} rows but y has {len(y2)}")
    if x2.shape[1] != y2.shape[1]:
        raise InvalidInput.at("file", f"y rows have {y2.shape[1]} values but x rows have {x2.shape[1]}: "
                              "the layers are element-wise, so y must be shaped like x")
    return _checked(x2, "file: x", limits.bound), _checked(y2, "file: y", limits.bound)


def _checked(arr: np.ndarray, what: str, bound: float) -> np.ndarray:
    """float32, every value finite and within +-bound (named by row and column if not)."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(np.float32)
    bad = first_bad(out, bound)
    if bad is not None:
        row, col = bad
        value = float(arr[row, col])
        field, _, name = what.partition(": ")
        raise InvalidInput.at(f"{field} {name}[{row}][{col}]", bound_problem(value, bound))
    return out


# -- CSV --------------------------------------------------------------------------------------


def _text(f: IO[bytes]) -> io.TextIOWrapper:
    """The file as text: UTF-16 when it starts with a UTF-16 byte-order mark, else UTF-8 (BOM or not).
    newline="" keeps \\r, \\n and \\r\\n for the csv module, which accepts all three."""
    start = f.read(2)
    f.seek(0)
    encoding = "utf-16" if start in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf-8-sig"
    return io.TextIOWrapper(f, encoding=encoding, newline="")


class _Lines:
    """Lines of the text, each at most `max_chars` long, counting them for error messages."""

    def __init__(self, text: io.TextIOWrapper, max_chars: int) -> None:
        self.text, self.max_chars, self.number = text, max_chars, 0

    def __iter__(self) -> Iterator[str]:
        while True:
            try:
                line = self.text.readline(self.max_chars + 1)
            except UnicodeDecodeError:
                raise InvalidInput.at(f"file row {self.number + 1}", "is not UTF-8 text (save the CSV as "
                                      "UTF-8, or UTF-16 with a byte-order mark)") from None
            if not line:
                return
            self.number += 1
            if len(line) > self.max_chars and not line.endswith(("\n", "\r")):
                raise InvalidInput.at(f"file row {self.number}", f"is longer than {self.max_chars} characters; "
                                      "a row holds at most 2 x max_features numbers")
            yield line


def _delimiter(line: str) -> str | None:
    """The first row's separator: comma, semicolon or tab; None for numpy.savetxt's spaces."""
    return next((d for d in (",", ";", "\t") if d in line), None)


def _rows(lines: _Lines) -> Iterator[list[str]]:
    """Cells of each row that holds any. Comment lines (`#`) are skipped; the last one before the
    first row comes through as the header when it names x and y columns (numpy.savetxt's header)."""
    it = iter(lines)
    comment: list[str] | None = None
    for line in it:
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            comment = _split(line.lstrip()[1:], _delimiter(line))
            continue
        if comment and all(c.strip().lower()[:1] in ("x", "y") for c in comment):
            yield comment
        delim = _delimiter(line)
        if delim is None:  # whitespace-separated, as numpy.savetxt writes by default: no quoting
            yield line.split()
            yield from (r.split() for r in it if r.strip() and not r.lstrip().startswith("#"))
            return
        try:
            yield from (row for row in csv.reader(_chain(line, it), delimiter=delim) if any(c.strip() for c in row))
        except csv.Error as exc:
            raise InvalidInput.at(f"file row {lines.number}", f"is not valid CSV ({exc})") from None
        return


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from (line for line in rest if not line.lstrip().startswith("#"))


def _split(line: str, delim: str | None) -> list[str]:
    return next(csv.reader([line], delimiter=delim)) if delim else line.split()


def _numbers(row: list[str]) -> bool:
    try:
        [float(c) for c in row]
    except ValueError:
        return False
    return True


def read_csv(f: IO[bytes], limits: Limits) -> tuple[np.ndarray, np.ndarray]:
    """Columns x..., y... (header names starting with x and y, or without header the first half x)."""
    max_cells = 2 * limits.max_features
    lines = _Lines(_text(f), max_cells * NUMBER_CHARS)
    rows = _rows(lines)
    header: list[str] | None = None
    first = next(rows, None)
    while first is not None and not _numbers(first):
        if header is not None:  # a second line of words: not a header, a bad row
            _convert([first], [lines.number], header)
        header = first
        first = next(rows, None)
    if first is None:
        raise InvalidInput.at("file", "no data rows")
    width = len(first)
    xcols, ycols = _columns(header, width, limits)
    names = header or [f"x{i + 1}" if i < width // 2 else f"y{i + 1 - width // 2}" for i in range(width)]
    blocks: list[np.ndarray] = []
    block, where = [first], array("L", [lines.number])  # the file row of each row of the block
    n = 0
    for row in rows:
        if len(row) != width:
            raise InvalidInput.at(f"file row {lines.number}", f"has {len(row)} columns but the first data row "
                                  f"has {width}: rows have different numbers of columns")
        block.append(row)
        where.append(lines.number)
        if len(block) * width >= BLOCK_VALUES:
            n += len(block)
            _too_many(n, limits)
            blocks.append(_convert(block, where, names, limits.bound))
            block, where = [], array("L")
    if block:
        n += len(block)
        _too_many(n, limits)
        blocks.append(_convert(block, where, names, limits.bound))
    data = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    return data[:, xcols], data[:, ycols]


def _too_many(n: int, limits: Limits) -> None:
    if n > limits.max_points:
        raise TooLarge.at("file", f"has more than {limits.max_points} data rows, the limit")


def _columns(header: list[str] | None, width: int, limits: Limits) -> tuple[list[int], list[int]]:
    """Which columns are x and which y."""
    if header is not None:
        if len(header) != width:
            raise InvalidInput.at("file", f"the header names {len(header)} columns but the first data row has "
                                  f"{width}")
        names = [h.strip().lower() for h in header]
        xcols = [i for i, h in enumerate(names) if h.startswith("x")]
        ycols = [i for i, h in enumerate(names) if h.startswith("y")]
    else:  # no header: the first half of the columns are x, the second half y
        xcols, ycols = list(range(width // 2)), list(range(width // 2, width))
    if not xcols or len(xcols) != len(ycols) or len(xcols) + len(ycols) != width:
        raise InvalidInput.at("file", "CSV needs columns x..., y... with as many y as x columns "
                              "(x, y for one feature; header names starting with x and y)")
    if len(xcols) > limits.max_features:
        raise TooLarge.at("file", f"has {len(xcols)} features, more than the limit {limits.max_features}")
    return xcols, ycols


def _convert(block: list[list[str]], where: Any, names: list[str],
             bound: float = functions.DATA_MAX) -> np.ndarray:
    """Cells -> float32 rows; the first bad cell is named by its row in the file and its column."""
    try:
        with np.errstate(over="ignore"):
            values = np.array(block, dtype=np.float64)
    except ValueError:
        values = None
    if values is not None:
        bad = first_bad(values, bound)
        if bad is None:
            return values.astype(np.float32)
        row, col = bad
        problem = bound_problem(float(values[row, col]), bound)
    else:
        row, col, problem = next((r, c, f"must be a number, not {cell.strip()[:40]!r}") for r, cells in enumerate(block)
                                 for c, cell in enumerate(cells) if not _numbers([cell]))
    name = names[col].strip()[:40] if col < len(names) else f"column {col + 1}"
    raise InvalidInput.at(f"file row {where[row]}, column {col + 1} ({name})", problem)
