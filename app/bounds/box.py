"""The box of an analysis: the one asked for, checked field by field, or each feature's min and max on
the model's training split; inputs held fixed; and float32's view of it."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.bounds.relax import Array
from app.bounds.schemas import Box
from app.datasets.models import Dataset
from app.errors import InvalidInput
from app.jobs.models import Job
from app.model import data as datalib
from app.model import networks, plan
from app.settings import Settings


def training_box(session: Session, job: Job, settings: Settings) -> tuple[Array, Array]:
    """Each feature's min and max over the rows the model trained on (its validation rows left out)."""
    d = job.spec["data"]
    arrays = datalib.load(session, d, settings)
    if arrays is None:
        raise InvalidInput.at("box", f"the training data of {job.model_name} v{job.model_version} is gone: give a box")
    x, y = arrays
    if plan.is_network(job.spec):  # the table's feature columns, by name, as the worker reads them
        columns = session.scalar(select(Dataset.columns).where(Dataset.id == d["id"]))
        x, _, _, _ = networks.table(x, y, columns, {"target": d["target"], "features": d["columns"]})
    n_train, _ = datalib.split(len(x), job.spec["training"].get("validation_split", 0.0))
    rows = x[: max(n_train, 1)].astype(np.float64)
    return rows.min(axis=0), rows.max(axis=0)


def parse(box: Box, features: int) -> tuple[Array, Array]:
    """The asked box as arrays; a 422 naming the field for a wrong width or a lower end above its upper."""
    for field in ("lower", "upper"):
        given = len(getattr(box, field))
        if given != features:
            raise InvalidInput.at(f"box.{field}", f"has {given} values; the model takes {features} features")
    lo, hi = np.asarray(box.lower, dtype=np.float64), np.asarray(box.upper, dtype=np.float64)
    bad = np.flatnonzero(lo > hi)
    if bad.size:
        i = int(bad[0])
        raise InvalidInput.at(f"box.lower[{i}]", f"{lo[i]:g} is above box.upper[{i}] = {hi[i]:g}")
    return lo, hi


def fix(fixed: dict[str, Any], names: list[str], lo: Array, hi: Array) -> tuple[Array, Array]:
    """The box with the `fixed` inputs (by feature name, or index) held at their values, which must lie
    in it; a 422 naming `fixed.<key>` otherwise."""
    lo, hi = lo.copy(), hi.copy()
    for key, value in fixed.items():
        if key in names:
            i = names.index(key)
        elif key.isdigit() and int(key) < len(names):
            i = int(key)
        else:
            raise InvalidInput.at(
                f"fixed.{key}", f"no such feature; the features are {names[:20]} (or 0..{len(names) - 1})"
            )
        if not lo[i] <= value <= hi[i]:
            raise InvalidInput.at(f"fixed.{key}", f"{value:g} is outside the box's [{lo[i]:g}, {hi[i]:g}]")
        lo[i] = hi[i] = value
    return lo, hi


def as_float32(lo: Array, hi: Array) -> tuple[Array, Array]:
    """The box widened to the float32 values that inputs in it round to, as predictions read them."""
    lo32, hi32 = lo.astype(np.float32), hi.astype(np.float32)
    lo32 = np.where(lo32.astype(np.float64) > lo, np.nextafter(lo32, np.float32(-np.inf)), lo32)
    hi32 = np.where(hi32.astype(np.float64) < hi, np.nextafter(hi32, np.float32(np.inf)), hi32)
    return lo32.astype(np.float64), hi32.astype(np.float64)


def snap(x: Array, lo: Array, hi: Array) -> Array:
    """x as float32 values inside [lo, hi] where there is one (what a prediction of x reads), else x."""
    x32 = x.astype(np.float32)
    x32 = np.where(x32.astype(np.float64) < lo, np.nextafter(x32, np.float32(np.inf)), x32)
    x32 = np.where(x32.astype(np.float64) > hi, np.nextafter(x32, np.float32(-np.inf)), x32)
    back = x32.astype(np.float64)
    return np.where((back >= lo) & (back <= hi), back, x)
