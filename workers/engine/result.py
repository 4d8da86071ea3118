"""What a group trains and what it gives back: its members (a job's id, spec and arrays), each
epoch's report and each member's result."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Member:
    """One job of a group: its id, filled-in spec and data arrays (n, features)."""

    id: str
    spec: dict[str, Any]
    x: np.ndarray
    y: np.ndarray


@dataclass
class EpochReport:
    """What one epoch produced, one entry per member still training."""

    epoch: int
    rows: dict[int, dict[str, Any]]  # member index -> history row
    errors: dict[int, dict[str, str]]  # members that failed in this epoch


@dataclass
class Result:
    """The outcome of one member."""

    params: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float | None] = field(default_factory=dict)
    warnings: list[dict[str, str]] = field(default_factory=list)
    error: dict[str, str] | None = None
    stopped: bool = False  # dropped by `on_epoch` or handed to `on_done`: settled by the caller
    stopped_epoch: int | None = None  # early stopping ended it after this epoch, before the last
    device: str = "CPU:0"
    artifact: bytes | None = None
    weights: dict[str, np.ndarray] | None = None  # a network's: every weight and its normalisation
    weights_blob: bytes | None = None  # `weights` as .npz, stored for the API's predictions


OnEpoch = Callable[[EpochReport], Iterable[int] | None]
OnDone = Callable[[dict[int, Result]], None]  # members that finished before the group: index -> result
