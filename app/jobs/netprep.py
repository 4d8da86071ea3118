"""Submitting a network job: its table read and checked (target columns, labels, widths), its
limits, the spec it is stored with and the key of the jobs it trains fused with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.datasets.models import Dataset
from app.errors import InvalidInput, TooLarge
from app.jobs.network import MAX_PARAMETERS
from app.jobs.schemas import JobRequest
from app.model import data as datalib
from app.model import networks, recurrent
from app.settings import Settings


@dataclass
class Table:
    """A network's x and y as the worker will train on them, with their columns' names."""

    x: np.ndarray
    y: np.ndarray
    columns: list[str]
    target: list[str]

    @property
    def features(self) -> int:
        """Columns of x: its last axis (a sequence's x is (n, timesteps, features))."""
        return int(self.x.shape[-1])

    @property
    def timesteps(self) -> int | None:
        """Steps of each sequence, or None for rows."""
        return int(self.x.shape[1]) if self.x.ndim == 3 else None


def inline_arrays(x: Any, y: Any, field: str, settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """Inline x and y checked as a network takes them (`field` names them in errors): as many rows,
    each within the limits; y as wide as the target, not necessarily as x."""
    n, cells, bound = settings.max_inline_points, settings.max_cells, datalib.FLOAT32_MAX
    xa = datalib.as_matrix(x, f"{field}.x", n, settings.max_features, bound, max_cells=cells)
    ya = datalib.as_matrix(y, f"{field}.y", n, 4096, bound, max_cells=cells)
    if len(xa) != len(ya):
        raise InvalidInput.at(field, f"x has {len(xa)} rows but y has {len(ya)}")
    return xa, ya


def table(session: Session, req: JobRequest, settings: Settings) -> tuple[Table, tuple[np.ndarray, np.ndarray] | None]:
    """The request's data as a network's table, and the inline arrays to store (None for a dataset).
    A dataset is read once per session (a sweep's jobs share it)."""
    d = req.data
    if d.kind == "synthetic":
        raise InvalidInput.at("data.kind", "a network trains on a table: upload one, or send x and y inline")
    if d.kind == "inline":
        x, y = inline_arrays(d.x, d.y, "data", settings)
        cols = networks.default_columns(x.shape[1], y.shape[1])
        return Table(x, y, cols[: x.shape[1]], cols[x.shape[1] :]), (x, y)
    cache: dict[str, Any] = session.info.setdefault("network_tables", {})
    if d.id not in cache:
        row = session.execute(select(Dataset.data, Dataset.columns).where(Dataset.id == d.id)).first()
        if row is None:
            raise InvalidInput.at("data.id", f"no dataset with id {d.id!r}; upload one with POST /v1/datasets")
        cache[d.id] = (*datalib.from_npz(row.data), row.columns)
    x, y, columns = cache[d.id]
    x, y, xnames, ynames = networks.table(x, y, columns, d.model_dump())
    if x.shape[-1] > settings.max_features:
        raise TooLarge.at(
            "data.features", f"{x.shape[-1]} feature columns, more than the limit {settings.max_features}"
        )
    return Table(x, y, xnames, ynames), None


def check(req: JobRequest, tab: Table, n: int, settings: Settings) -> int:
    """Check the network against its table and the limits; returns its output width."""
    assert req.model is not None
    layers = [lay.model_dump() for lay in req.model.layers]
    features = tab.features
    check_layers(layers, req.training.loss)
    recurrent.check_shapes(layers, tab.timesteps is not None)
    count = networks.parameter_count(layers, features)
    if count == 0:
        raise InvalidInput.at("model.layers", "has nothing to train: add a dense or threshold layer")
    if count > MAX_PARAMETERS:
        raise TooLarge.at("model.layers", f"has {count} parameters, more than the limit {MAX_PARAMETERS}")
    width = networks.widths(layers, features)[-1]
    loss = req.training.loss
    if getattr(req.data, "normalize_target", None) and loss in networks.CLASSIFICATION:
        raise InvalidInput.at(
            "data.normalize_target",
            f"standardises a regression target; training.loss {loss} takes labels or probabilities as they are",
        )
    networks.check_targets(tab.y, loss, width, tab.target, len(layers) - 1)
    compute = n * req.training.epochs * max(count, 1) * (tab.timesteps or 1)
    if compute > settings.max_compute:
        raise TooLarge.at(
            "training.epochs",
            f"n x epochs x parameters = {compute} is more than the compute limit {settings.max_compute} per job",
        )
    return width


# Constraints that set each unit's norm, which weight_norm's g sets: the two cannot both hold it.
NORM_CONSTRAINTS = {"unit_norm", "max_norm", "min_max_norm"}


def check_layers(layers: list[dict[str, Any]], loss: str) -> None:
    """Options that contradict each other or the loss, named by layer and field: weight_norm with a
    constraint on the norm its g sets, and a classification loss after an exact 0/1 output (Keras's
    cross-entropies clip outputs of 0 and 1, so the surrogate's gradient would be cut)."""
    for i, layer in enumerate(layers):
        if layer["type"] == "dense" and layer.get("weight_norm") and layer.get("kernel_constraint") in NORM_CONSTRAINTS:
            raise InvalidInput.at(
                f"model.layers.{i}.kernel_constraint",
                f"{layer['kernel_constraint']} sets each unit's norm, which weight_norm's g sets; "
                "use one of them (non_neg goes with weight_norm)",
            )
    last = len(layers) - 1
    if layers[last]["type"] in networks.HARD and loss in networks.CLASSIFICATION:
        raise InvalidInput.at(
            "training.loss",
            f"{loss} clips the outputs 0 and 1 of the last layer ({layers[last]['type']}, model.layers.{last}), "
            "which then gets no gradient; use mse, or end with a dense sigmoid",
        )


def spec_of(spec: dict[str, Any], tab: Table, width: int) -> dict[str, Any]:
    """The stored spec of a network job: no `layer`; the table's column names and widths."""
    spec.pop("layer", None)
    for layer in spec["model"]["layers"]:  # a dense layer's options are stored where they are used
        if layer["type"] == "dense":
            for key, default in (("weight_norm", False), ("kernel_constraint", None)):
                if layer.get(key, default) == default:
                    layer.pop(key, None)
    spec["model"]["outputs"] = width
    data = spec["data"]
    data["columns"], data["target"] = tab.columns, tab.target
    data["features"], data["outputs"] = len(tab.columns), len(tab.target)
    if tab.timesteps is not None:
        data["timesteps"] = tab.timesteps
    return spec


def fuse_key(
    req: JobRequest, n_train: int, n_val: int, features: int, outputs: int, timesteps: int | None = None
) -> list[Any]:
    """What fused network jobs share: architecture, data shape and training settings."""
    assert req.model is not None
    t = req.training
    # normalize_target only when set: the keys of jobs without it are those they had before it came
    target = getattr(req.data, "normalize_target", None)
    return [
        "network",
        networks.architecture([lay.model_dump() for lay in req.model.layers]),
        n_train,
        n_val,
        features,
        outputs,
        getattr(req.data, "normalize", None),
        t.batch_size,
        t.epochs,
        t.optimizer,
        t.learning_rate,
        t.loss,
        sorted(t.metrics),
        t.shuffle,
        req.device,
        *([target] if target else []),
        *([["timesteps", timesteps]] if timesteps else []),
    ]
