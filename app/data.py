"""Training data as float32 arrays: synthetic draws, inline lists and uploaded files.

NumPy only, so the API validates data at submission and the workers build the same arrays.
Every refusal is an `InvalidInput` naming the field and the problem.
"""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any

import numpy as np

from app import functions
from app.errors import InvalidInput, TooLarge


def as_matrix(values: Any, field: str, max_points: int, max_features: int) -> np.ndarray:
    """A list of numbers (n) or of equal-length lists (n, F) -> float32 array (n, F)."""
    if not isinstance(values, list | np.ndarray) or len(values) == 0:
        raise InvalidInput.at(field, "must be a non-empty list")
    if len(values) > max_points:
        raise TooLarge.at(field, f"has {len(values)} items, more than the limit {max_points}")
    if isinstance(values, list):
        widths = {len(v) if isinstance(v, list) else None for v in values}
        if len(widths) > 1:
            raise InvalidInput.at(field, "ragged rows: mix numbers and lists of one length")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput.at(field, "items must be numbers or lists of numbers") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise InvalidInput.at(field, "items must be numbers or non-empty lists of numbers")
    if arr.shape[1] > max_features:
        raise TooLarge.at(field, f"has {arr.shape[1]} features, more than the limit {max_features}")
    bad = ~np.isfinite(arr)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise InvalidInput.at(f"{field}[{row}]", "NaN or infinite values are not allowed")
    if np.abs(arr).max() > np.finfo(np.float32).max:
        raise InvalidInput.at(field, "values must fit in float32")
    return arr.astype(np.float32)


def pair(x: Any, y: Any, field: str, max_points: int, max_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate x and y together: same length, and y shaped like x (the layers are element-wise)."""
    xa = as_matrix(x, f"{field}.x", max_points, max_features)
    ya = as_matrix(y, f"{field}.y", max_points, max_features)
    if len(xa) != len(ya):
        raise InvalidInput.at(field, f"x has {len(xa)} rows but y has {len(ya)}")
    if ya.shape[1] != xa.shape[1]:
        raise InvalidInput.at(
            f"{field}.y", f"rows have {ya.shape[1]} values but x rows have {xa.shape[1]}: "
            "the layers are element-wise, so y must be shaped like x"
        )
    return xa, ya


def synthetic(function: str, params: dict[str, float], n: int, x_range: tuple[float, float],
              noise_std: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x uniform on x_range, y = function(x) + N(0, noise_std), both float32 of shape (n, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(x_range[0], x_range[1], size=(n, 1))
    y = functions.evaluate(np, function, x, params)
    if noise_std > 0:
        y = y + rng.normal(0.0, noise_std, size=y.shape)
    return x.astype(np.float32), y.astype(np.float32)


def parse_upload(filename: str, content: bytes, max_points: int, max_features: int) -> tuple[np.ndarray, np.ndarray]:
    """A CSV (columns x..., y; header optional) or .npz (arrays x, y) -> validated arrays."""
    if filename.lower().endswith(".npz"):
        try:
            with np.load(io.BytesIO(content), allow_pickle=False) as npz:
                if "x" not in npz or "y" not in npz:
                    raise InvalidInput.at("file", f".npz needs arrays 'x' and 'y', has {sorted(npz.files)}")
                x, y = npz["x"], npz["y"]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise InvalidInput.at("file", f"not a readable .npz file ({exc})") from None
        if x.ndim > 2 or y.ndim > 2:
            raise InvalidInput.at("file", "arrays x and y must be 1-D or 2-D")
        return pair(x.tolist(), y.tolist(), "file", max_points, max_features)
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput.at("file", "CSV must be UTF-8 text") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    header = rows.pop(0) if rows and not _numeric(rows[0]) else None
    if not rows:
        raise InvalidInput.at("file", "no data rows")
    if len({len(r) for r in rows}) > 1:
        raise InvalidInput.at("file", "rows have different numbers of columns")
    width = len(rows[0])
    if header is not None:
        names = [h.strip().lower() for h in header]
        xcols = [i for i, h in enumerate(names) if h.startswith("x")]
        ycols = [i for i, h in enumerate(names) if h.startswith("y")]
    else:  # no header: the first half of the columns are x, the second half y
        xcols, ycols = list(range(width // 2)), list(range(width // 2, width))
    if not xcols or len(xcols) != len(ycols) or len(xcols) + len(ycols) != width:
        raise InvalidInput.at("file", "CSV needs columns x..., y... with as many y as x columns "
                              "(x, y for one feature; header names starting with x and y)")
    for i, r in enumerate(rows):
        if not _numeric(r):
            raise InvalidInput.at(f"file row {i + 1}", "every value must be a number")
    arr = np.asarray(rows, dtype=np.float64)
    return pair(arr[:, xcols].tolist(), arr[:, ycols].tolist(), "file", max_points, max_features)


def _numeric(row: list[str]) -> bool:
    try:
        [float(c) for c in row]
    except ValueError:
        return False
    return True


def to_npz(x: np.ndarray, y: np.ndarray) -> bytes:
    """Arrays -> compact .npz bytes for storage."""
    buf = io.BytesIO()
    np.savez_compressed(buf, x=x, y=y)
    return buf.getvalue()


def from_npz(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Stored .npz bytes -> (x, y)."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return npz["x"], npz["y"]
