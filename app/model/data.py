"""Training data as float32 arrays: synthetic draws, inline lists and stored datasets.

NumPy only, so the API validates data at submission and the workers build the same arrays.
Every refusal is an `InvalidInput` naming the field and the problem. Uploaded files are read by
`app.datasets.uploads`. `load` turns any job's data spec into arrays, for the workers and the dashboard alike.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.datasets.models import Dataset
from app.errors import InvalidInput, TooLarge
from app.model import families, functions
from app.settings import Settings

FLOAT32_MAX = float(np.finfo(np.float32).max)


def first_bad(arr: np.ndarray, bound: float) -> tuple[int, int] | None:
    """(row, column) of the first value of a 2-D array that is not finite or beyond +-bound."""
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(arr) <= bound)  # NaN compares False, so it is caught too
    if not bad.any():
        return None
    row, col = np.argwhere(bad)[0]
    return int(row), int(col)


def bound_problem(value: float, bound: float) -> str:
    """Why a value is refused, in words."""
    if not np.isfinite(value):
        return "NaN or infinite values are not allowed"
    return "values must fit in float32" if bound >= FLOAT32_MAX else f"values must lie within +-{bound:g}"


def check_cells(field: str, has: str, rows: int, columns: int, max_cells: int | None) -> None:
    """Refuse an array of rows x columns values over `max_cells` (None: no such limit), naming the
    field and the limit; `has` starts the message ("has", "x has", "has at least")."""
    if max_cells is not None and rows * columns > max_cells:
        raise TooLarge.at(
            field,
            f"{has} {rows} rows x {columns} columns = {rows * columns} values, "
            f"more than the limit max_cells = {max_cells}",
        )


def as_matrix(
    values: Any,
    field: str,
    max_points: int,
    max_features: int,
    bound: float = FLOAT32_MAX,
    *,
    max_cells: int | None = None,
) -> np.ndarray:
    """A list of numbers (n) or of equal-length lists (n, F) -> float32 array (n, F), every value
    finite and within +-bound, at most max_points rows, max_features columns and max_cells values."""
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
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput.at(field, "items must be numbers or lists of numbers") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise InvalidInput.at(field, "items must be numbers or non-empty lists of numbers")
    if arr.shape[1] > max_features:
        raise TooLarge.at(field, f"has {arr.shape[1]} features, more than the limit {max_features}")
    check_cells(field, "has", arr.shape[0], arr.shape[1], max_cells)
    bad = first_bad(arr, bound)
    if bad is not None:
        raise InvalidInput.at(f"{field}[{bad[0]}]", bound_problem(float(arr[bad]), bound))
    return arr.astype(np.float32)


def pair(
    x: Any,
    y: Any,
    field: str,
    max_points: int,
    max_features: int,
    bound: float = functions.DATA_MAX,
    *,
    max_cells: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate training data x and y together: same length, y shaped like x (the layers are
    element-wise), every value within +-bound, each array within the limits of `as_matrix`."""
    xa = as_matrix(x, f"{field}.x", max_points, max_features, bound, max_cells=max_cells)
    ya = as_matrix(y, f"{field}.y", max_points, max_features, bound, max_cells=max_cells)
    if len(xa) != len(ya):
        raise InvalidInput.at(field, f"x has {len(xa)} rows but y has {len(ya)}")
    if ya.shape[1] != xa.shape[1]:
        raise InvalidInput.at(
            f"{field}.y",
            f"rows have {ya.shape[1]} values but x rows have {xa.shape[1]}: "
            "the layers are element-wise, so y must be shaped like x",
        )
    return xa, ya


def synthetic(
    function: str, params: dict[str, float], n: int, x_range: tuple[float, float], noise_std: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """x uniform on x_range, y = function(x) + N(0, noise_std), both float32 of shape (n, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(x_range[0], x_range[1], size=(n, 1))
    y = families.evaluate(np, function, x, params)
    if noise_std > 0:
        y = y + rng.normal(0.0, noise_std, size=y.shape)
    return x.astype(np.float32), y.astype(np.float32)


def to_npz(x: np.ndarray, y: np.ndarray) -> bytes:
    """Arrays -> compact .npz bytes for storage."""
    buf = io.BytesIO()
    np.savez_compressed(buf, x=x, y=y)
    return buf.getvalue()


def from_npz(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Stored .npz bytes -> (x, y)."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return npz["x"], npz["y"]


def finite(value: Any) -> Any:
    """`value` with every NaN or infinity (a diverged epoch's loss or parameters) as None: JSON
    has no such numbers and PostgreSQL refuses them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def split(n: int, validation_split: float) -> tuple[int, int]:
    """(training rows, validation rows) of n: the last rows validate."""
    n_train = int(n * (1 - validation_split))
    return n_train, n - n_train


def load(
    session: Session, spec: dict[str, Any], settings: Settings, cache: dict[str, tuple[Any, Any]] | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """A job's data spec (synthetic, inline or a stored dataset) as arrays (x, y); None when its
    dataset no longer exists. A stored dataset is read once per `cache` (a worker's claim)."""
    if spec["kind"] == "synthetic":
        return synthetic(
            spec["function"], spec["params"], spec["n"], tuple(spec["x_range"]), spec["noise_std"], spec["seed"]
        )
    if spec["kind"] == "inline":  # jobs submitted before inline data was stored as a dataset
        return pair(spec["x"], spec["y"], "data", settings.max_inline_points, settings.max_features, FLOAT32_MAX)
    cache = {} if cache is None else cache
    if spec["id"] not in cache:
        blob = session.scalar(select(Dataset.data).where(Dataset.id == spec["id"]))
        if blob is None:
            return None
        cache[spec["id"]] = from_npz(blob)
    return cache[spec["id"]]
