"""A served model as a list of float64 operations that the bounds can pass through: affine maps (the
features' standardisation, dense layers, the target's destandardisation) and element-wise ones.

Each layer type reaches the list through its entry in `LAYERS`, the registry of relaxations: a type
without one (or an activation without its extremes) is refused with a 422 that names the layer,
never bounded by a guess. Threshold families enter by their `extremes` (app.model.families).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.bounds.relax import ACTIVATION_EXTREMES, U32, Array, Elementwise, Softmax
from app.errors import InvalidInput
from app.model import families, networks


@dataclass(frozen=True)
class Affine:
    """y = W x + b, W of shape (out, in) or (n,) for a per-unit scale; float32's rounding of it is at
    most `margin` away (the summed products, the bias and `extra` roundings of its own)."""

    label: str
    w: Array
    b: Array
    extra: int = 1

    def forward(self, x: Array) -> Array:
        """W x + b in float64 for rows x."""
        return (x * self.w if self.w.ndim == 1 else x @ self.w.T) + self.b  # type: ignore[no-any-return]

    def back(self, lam: Array) -> Array:
        """Coefficients on y (..., out) as coefficients on x (..., in)."""
        return lam * self.w if self.w.ndim == 1 else lam @ self.w  # type: ignore[no-any-return]

    def margin(self, lo: Array, hi: Array) -> Array:
        """How far float32's y can be from W x + b for x in [lo, hi]: (n + extra) u sum |w x| + |b|."""
        size = np.maximum(np.abs(lo), np.abs(hi))
        terms = 1 if self.w.ndim == 1 else self.w.shape[1]
        scaled = size * np.abs(self.w) if self.w.ndim == 1 else size @ np.abs(self.w).T
        return 1.01 * (terms + self.extra + 1) * U32 * (scaled + np.abs(self.b))  # type: ignore[no-any-return]

    def interval(self, lo: Array, hi: Array) -> tuple[Array, Array]:
        """Bounds on float32's y for x in [lo, hi]."""
        centre, radius = (lo + hi) / 2, (hi - lo) / 2
        if self.w.ndim == 1:
            mid, spread = centre * self.w + self.b, radius * np.abs(self.w)
        else:
            mid, spread = centre @ self.w.T + self.b, radius @ np.abs(self.w).T
        slack = spread + self.margin(lo, hi)
        return mid - slack, mid + slack


Op = Affine | Elementwise | Softmax
Builder = Callable[[int, dict[str, Any], str, dict[str, Array]], list[Op]]


def _activation(index: int, kind: str, name: str) -> list[Op]:
    label = f"layer {index} ({kind})"
    if name == "linear":
        return []
    if name in ("softmax", "log_softmax"):
        return [Softmax(f"{label}: {name}", log=name == "log_softmax")]
    if name not in ACTIVATION_EXTREMES:
        raise InvalidInput.at(f"model.layers.{index}.activation", f"{name} has no relaxation yet: no guaranteed bounds")
    f = networks.ACTIVATIONS[name]
    return [Elementwise(f"{label}: {name}", f, ACTIVATION_EXTREMES[name], relu=name == "relu")]


def _dense(index: int, layer: dict[str, Any], name: str, weights: dict[str, Array]) -> list[Op]:
    kernel = networks.dense_kernel(layer, name, weights).astype(np.float64)  # weight_norm's g v / ||v|| too
    bias = weights.get(f"{name}/bias")
    b = np.zeros(kernel.shape[1]) if bias is None else bias.astype(np.float64)
    ops: list[Op] = [Affine(f"layer {index} (dense)", kernel.T.copy(), b)]
    return ops + _activation(index, "dense", layer.get("activation", "linear"))


def _activation_layer(index: int, layer: dict[str, Any], name: str, weights: dict[str, Array]) -> list[Op]:
    return _activation(index, "activation", layer["activation"])


def family_op(label: str, kind: str, params: dict[str, Array]) -> Elementwise:
    """A threshold family's layer with its parameters (one per unit, or one for all)."""
    family = families.get(kind)
    p = [np.asarray(params[name], dtype=np.float64) for name in family.params]
    extremes = family.extremes
    assert extremes is not None
    return Elementwise(label, lambda x: family.math(np, x, *p), lambda lo, hi: extremes(np, lo, hi, *p))


def _family(index: int, layer: dict[str, Any], name: str, weights: dict[str, Array]) -> list[Op]:
    params = {p: weights[f"{name}/{p}"] for p in families.get(layer["type"]).params}
    return [family_op(f"layer {index} ({layer['type']})", layer["type"], params)]


# The registry of relaxations, by layer type: how a layer enters the bounds. A family enters with its
# `extremes` (app.model.families); a type missing here is refused by name.
LAYERS: dict[str, Builder] = {"dense": _dense, "activation": _activation_layer}


def builder(kind: str) -> Builder | None:
    """The layer type's entry: its own, or a threshold family's that knows its extremes."""
    if kind in LAYERS:
        return LAYERS[kind]
    if kind in families.FAMILIES and families.get(kind).extremes is not None:
        return _family
    return None


def standardisation(mean: Array, variance: Array, invert: bool) -> Affine:
    """Keras's Normalization (or its inverse) as an affine map, as `app.model.networks.standardize` computes it."""
    scale = np.maximum(np.sqrt(variance.astype(np.float64)), networks.EPSILON)
    if invert:
        return Affine("the target's destandardisation", scale, mean.astype(np.float64), extra=3)
    return Affine("the features' standardisation", 1 / scale, -mean.astype(np.float64) / scale, extra=3)


def network_ops(layers: list[dict[str, Any]], weights: dict[str, Array]) -> list[Op]:
    """A network's operations in order; a 422 naming the first layer the bounds cannot pass through."""
    ops: list[Op] = []
    if "mean" in weights:
        ops.append(standardisation(weights["mean"], weights["variance"], invert=False))
    for index, (name, layer) in enumerate(zip(networks.names(layers), layers, strict=True)):
        build = builder(layer["type"])
        if build is None:
            raise InvalidInput.at(
                f"model.layers.{index}",
                f"layer {index} ({layer['type']}) has no relaxation yet: this model cannot be bounded",
            )
        ops.extend(build(index, layer, name, weights))
    if "target_mean" in weights:
        ops.append(standardisation(weights["target_mean"], weights["target_variance"], invert=True))
    for op in ops[:-1]:
        if isinstance(op, Softmax):
            raise InvalidInput.at("model.layers", f"{op.label} is bounded only as the model's last operation")
    return ops


def forward(ops: list[Op], x: Array) -> Array:
    """The operations on rows x in float64 (the model's real-number form, for the search)."""
    out = x.astype(np.float64)
    for op in ops:
        out = op.forward(out)
    return out


def relu_only(ops: list[Op]) -> bool:
    """Affine maps and ReLUs only: a network the exact (MILP) mode can encode."""
    return all(isinstance(op, Affine) or (isinstance(op, Elementwise) and op.relu) for op in ops)
