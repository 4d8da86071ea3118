"""Recurrent layers (`rnn`), the NumPy side: the cell's math, its gate, its weights' names and
sizes, the shapes a network of them takes (sequences in, rows out) and sequence instances.

The cell is Keras's `SimpleRNN`: h_t = activation(x_t W + h_{t-1} U + b), h_0 = 0. With a `gate`
(a threshold layer: pulse, bump or gaussian, one set of parameters per unit) it is seed 002's
`z = g * y`: g_t = scale * gate(x_t W_g + h_{t-1} U_g + b_g) and
h_t = g_t * activation(x_t W + h_{t-1} U + b) + (1 - g_t) * h_{t-1}, so where the gate is shut
the state is kept. `scale` makes each gate's peak 1 (e for a bump, whose peak is e^-1; 1 for the
others). The gate starts open: W_g and U_g start at 0 and b_g at the gate's `opening` (a pulse's
band middle, where it is exactly 1, so the cell starts as a plain SimpleRNN; a bump or gaussian
just off its peak, at 0.99, so that it can learn). The workers' Keras form (`workers.recurrent`) is the
same math on `keras.ops`, with the gate's exact forward and its surrogate's gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from app.errors import InvalidInput, TooLarge
from app.model import families

GATES = ("pulse", "bump", "gaussian")  # the threshold types a gate may be
GATE_SCALE = {"bump": math.e}  # each gate's factor to a peak of 1 (1 where not named)
CELL = ("kernel", "recurrent_kernel", "bias")  # the SimpleRNN's weights, in Keras's order
GATE = ("gate_kernel", "gate_recurrent_kernel", "gate_bias")  # the gate's own pre-activation
OFF_PEAK = 0.1  # a smooth gate starts this far off its peak, in its width's units (`opening`)


def opening(gate_type: str, params: dict[str, np.ndarray]) -> np.ndarray:
    """Where a gate starts: a pulse's band middle x_max - width / 2 (exactly 1); a bump's or a
    gaussian's point a tenth of its width off its peak (0.1 sqrt(sigma), c + 0.1 / sqrt(b)), where it
    is 0.99 of its peak and has a slope: at the peak itself its gradient, and so every gate
    parameter's, would be 0 for good."""
    if gate_type == "pulse":
        return params["x_max"] - 0.5 * params["width"]
    if gate_type == "gaussian":
        return params["c"] + OFF_PEAK / np.sqrt(np.maximum(params["b"], 1e-12))  # type: ignore[no-any-return]
    return OFF_PEAK * np.sqrt(params["sigma"])  # type: ignore[no-any-return]


def slots(layer: dict[str, Any]) -> list[str]:
    """The rnn layer's weights, in the order of its Keras layer's: the cell's, then the gate's."""
    gate = layer.get("gate")
    return [*CELL] if not gate else [*CELL, *GATE, *families.get(gate["type"]).params]


def parameter_count(layer: dict[str, Any], width: int) -> int:
    """Trainable numbers of an rnn layer over inputs of `width` features."""
    u = int(layer["units"])
    cell = width * u + u * u + u
    gate = layer.get("gate")
    return cell if not gate else 2 * cell + u * len(families.get(gate["type"]).params)


def check_shapes(layers: list[dict[str, Any]], sequences: bool) -> None:
    """Refuse layers that do not fit the data's shape, naming the layer and field: an rnn takes
    sequences (n, timesteps, features); a dense or threshold layer takes rows (an rnn without
    `return_sequences` makes them); the last layer gives rows, one per instance."""
    for i, layer in enumerate(layers):
        kind = layer["type"]
        if kind == "rnn":
            if not sequences:
                raise InvalidInput.at(
                    f"model.layers.{i}.type",
                    "rnn takes sequences: upload an .npz whose x is (n, timesteps, features)"
                    + ("" if i == 0 else ", and put no rnn after one without return_sequences"),
                )
            sequences = bool(layer.get("return_sequences"))
        elif sequences and kind != "activation":
            raise InvalidInput.at(
                f"model.layers.{i}.type",
                f"{kind} acts on rows of features, and its input here is 3-d (n, timesteps, features): "
                "put an rnn without return_sequences before it",
            )
    if sequences:
        last = len(layers) - 1
        field = "return_sequences" if layers[last]["type"] == "rnn" else "type"
        raise InvalidInput.at(
            f"model.layers.{last}.{field}",
            "the network ends on sequences; it must give one row per instance: end with an rnn "
            "without return_sequences (or layers after one)",
        )


def gate_values(xp: Any, gate: dict[str, Any], pre: Any, params: dict[str, Any]) -> Any:
    """The gate's exact value on its pre-activation: its family's function times its scale."""
    value = families.get(gate["type"]).evaluate(xp, pre, params)
    scale = GATE_SCALE.get(gate["type"])
    return value if scale is None else value * scale


def forward(
    layer: dict[str, Any],
    name: str,
    weights: dict[str, np.ndarray],
    x: np.ndarray,
    activation: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """The rnn layer on x (n, timesteps, features) in float32: (n, units), or (n, timesteps, units)
    with `return_sequences`. `weights` hold `<name>/kernel` ... as `slots` names them (flat or shaped)."""
    u = layer["units"]
    f32 = {s: np.asarray(weights[f"{name}/{s}"], np.float32) for s in slots(layer)}
    kernel, recurrent = f32["kernel"].reshape(-1, u), f32["recurrent_kernel"].reshape(u, u)
    bias = f32["bias"].reshape(u)
    gate = layer.get("gate")
    if gate:
        gate_kernel, gate_recurrent = f32["gate_kernel"].reshape(-1, u), f32["gate_recurrent_kernel"].reshape(u, u)
        gate_bias = f32["gate_bias"].reshape(u)
        params = {p: f32[p].reshape(u) for p in families.get(gate["type"]).params}
    h = np.zeros((x.shape[0], u), np.float32)
    outs = []
    for t in range(x.shape[1]):
        xt = x[:, t, :]
        y = activation(xt @ kernel + bias + h @ recurrent).astype(np.float32)
        if gate:
            pre = (xt @ gate_kernel + gate_bias + h @ gate_recurrent).astype(np.float32)
            g = gate_values(np, gate, pre, params).astype(np.float32)
            y = (g * y + (1 - g) * h).astype(np.float32)
        h = y
        outs.append(h)
    return np.stack(outs, axis=1) if layer.get("return_sequences") else h


def as_sequences(values: Any, field: str, shape: tuple[int, int], max_points: int, bound: float) -> np.ndarray:
    """Instances of shape (timesteps, features) -> float32 (n, timesteps, features), every value
    finite and within +-bound, at most max_points instances; InvalidInput naming `field` if not."""
    if not isinstance(values, list | np.ndarray) or len(values) == 0:
        raise InvalidInput.at(field, "must be a non-empty list")
    if len(values) > max_points:
        raise TooLarge.at(field, f"has {len(values)} instances, more than the limit {max_points}")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput.at(field, f"each instance is a list of {shape[0]} timesteps of {shape[1]} numbers") from None
    if arr.ndim == 2 and shape[1] == 1:  # one feature: each instance may be its timesteps' numbers
        arr = arr[:, :, None]
    if arr.shape[1:] != shape:
        raise InvalidInput.at(
            field, f"instances are (timesteps, features) = {list(shape)}, got {list(arr.shape[1:])} each"
        )
    with np.errstate(invalid="ignore"):
        bad = np.argwhere(~(np.abs(arr) <= bound))
    if bad.size:
        raise InvalidInput.at(f"{field}[{int(bad[0][0])}]", "values must be finite numbers within float32's range")
    return arr.astype(np.float32)
