"""What an upload may hold, and the check every array read from one passes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.errors import InvalidInput
from app.model import functions
from app.model.data import bound_problem, first_bad
from app.settings import DEFAULT_MAX_CELLS


@dataclass(frozen=True)
class Limits:
    """What one upload may hold."""

    max_bytes: int  # the file, and an .npz's arrays once inflated, and x and y as float32
    max_points: int
    max_features: int  # columns of x (a table: every column)
    max_cells: int = DEFAULT_MAX_CELLS  # values in x, and in y: rows x columns
    bound: float = functions.DATA_MAX


def checked(arr: np.ndarray, what: str, bound: float) -> np.ndarray:
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
