"""Recurrent layers in Keras: `GatedRNN`, Keras's SimpleRNN with an optional threshold gate
(`app.model.recurrent` says the math), in its fused form (`members=K`: inputs (K, batch, T, F), weights
with a leading K) and its plain form (the artifact's layer, inputs (batch, T, F)). A network's rnn
without a gate is a plain `keras.layers.SimpleRNN` in its artifact.

The time loop is a scan over the static timesteps inside the compiled epoch (JAX's `lax.scan`; on
TensorFlow `tf.scan`, whose bounded loop XLA can differentiate: 4 s to compile a 20-step gated
network on a CPU where an unrolled loop took 19). The inputs' projections x W (and x W_g) are one
einsum over all steps; the weights are read once, outside the loop.
The gate is its family's Keras layer over the gate's pre-activation (a pulse: the exact 0/1
forward and its surrogate's gradient, `workers.hard`), times the gate's scale.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from app.model import families, recurrent
from workers.hard import options
from workers.layers import layer_for

UNROLL = 1  # time steps per iteration of JAX's loop over time


@keras.saving.register_keras_serializable(package="bumpfit")
class GatedRNN(keras.layers.Layer):  # type: ignore[misc]  # Keras has no type hints
    """h_t = g_t * activation(x_t W + h_{t-1} U + b) + (1 - g_t) * h_{t-1}, with
    g_t = scale * gate(x_t W_g + h_{t-1} U_g + b_g); without a gate, Keras's SimpleRNN. `gate` is
    the gate's spec (`{"type": "pulse", ...}`) or None; `members=K` makes it K layers at once over
    (K, batch, T, F), returning (h, the gate's last values) when gated (the engine's live share)."""

    def __init__(
        self,
        units: int,
        activation: str = "tanh",
        return_sequences: bool = False,
        gate: dict[str, Any] | None = None,
        members: int | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.units, self.return_sequences, self.members = units, return_sequences, members
        self.activation_name, self.activation = activation, keras.activations.get(activation)
        self.gate = dict(gate) if gate else None
        self.PARAMS = families.get(self.gate["type"]).params if self.gate else ()
        self.gate_layer = (
            layer_for(self.gate["type"])(per_feature=True, members=members, name="gate", **options(self.gate))
            if self.gate
            else None
        )

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        lead = () if self.members is None else (self.members,)
        f, u = int(input_shape[-1]), self.units  # type: ignore[arg-type]
        row = (u,) if self.members is None else (self.members, 1, u)
        self.kernel = self.add_weight(name="kernel", shape=(*lead, f, u), initializer="glorot_uniform")
        self.recurrent_kernel = self.add_weight(name="recurrent_kernel", shape=(*lead, u, u), initializer="orthogonal")
        self.bias = self.add_weight(name="bias", shape=row, initializer="zeros")
        if self.gate_layer is not None:  # shut kernels and the bias at the gate's opening: it starts open
            self.gate_kernel = self.add_weight(name="gate_kernel", shape=(*lead, f, u), initializer="zeros")
            self.gate_recurrent_kernel = self.add_weight(
                name="gate_recurrent_kernel", shape=(*lead, u, u), initializer="zeros"
            )
            start = initial_gate(self.gate or {}, u)
            self.gate_bias = self.add_weight(
                name="gate_bias", shape=row, initializer=keras.initializers.Constant(float(start["gate_bias"][0]))
            )
            self.gate_layer.build((*lead, None, u))

    def variable(self, slot: str) -> Any:
        """The weight `slot` names (`app.model.recurrent.slots`): the cell's, or its gate's parameters."""
        if slot in self.PARAMS:
            return getattr(self.gate_layer, slot)
        return getattr(self, slot, None)

    def call(self, inputs: Any) -> Any:
        x = inputs if self.members is not None else ops.expand_dims(inputs, 0)  # (K, batch, T, F)
        lead = self.members is None

        def stacked(w: Any) -> Any:  # read once, outside the loop over time (XLA's gradient of it reads no variable)
            w = ops.convert_to_tensor(w)
            return ops.expand_dims(w, 0) if lead else w

        kernel, recurrent_kernel = stacked(self.kernel), stacked(self.recurrent_kernel)
        bias = ops.reshape(self.bias, (1, 1, self.units)) if lead else ops.convert_to_tensor(self.bias)
        xw = ops.einsum("kbtf,kfu->kbtu", x, kernel) + ops.expand_dims(bias, 2)
        if self.gate_layer is not None:
            gate_kernel, gate_recurrent = stacked(self.gate_kernel), stacked(self.gate_recurrent_kernel)
            gate_bias = (
                ops.reshape(self.gate_bias, (1, 1, self.units)) if lead else ops.convert_to_tensor(self.gate_bias)
            )
            xg = ops.einsum("kbtf,kfu->kbtu", x, gate_kernel) + ops.expand_dims(gate_bias, 2)
            scale = recurrent.GATE_SCALE.get(self.gate["type"])  # type: ignore[index]
        gate_layer = self.gate_layer
        params = [ops.convert_to_tensor(getattr(gate_layer, p)) for p in self.PARAMS] if gate_layer else []

        def step(carry: Any, inputs: Any) -> tuple[Any, Any]:
            # the carry and each step's output are both (h, g): TensorFlow's scan wants them alike
            h, (xw_t, xg_t) = carry[0], inputs
            y = self.activation(xw_t + ops.einsum("kbu,kuv->kbv", h, recurrent_kernel))
            if gate_layer is None:
                return (y, y), (y, y)
            pre = xg_t + ops.einsum("kbu,kuv->kbv", h, gate_recurrent)
            g = gate_layer.apply(pre[0] if lead else pre, *params)
            g = ops.expand_dims(g, 0) if lead else g
            g = g if scale is None else g * scale
            y = g * y + (1.0 - g) * h
            return (y, g), (y, g)

        time_major = ops.transpose(xw, (2, 0, 1, 3))
        gates = ops.transpose(xg, (2, 0, 1, 3)) if gate_layer is not None else time_major
        zeros = ops.zeros_like(time_major[0])
        (h, last), (outs, _) = scan(step, (zeros, zeros), (time_major, gates))
        g = last if gate_layer is not None else None
        out = ops.transpose(outs, (1, 2, 0, 3)) if self.return_sequences else h
        if lead:
            return out[0]
        return (out, g) if g is not None else out

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        head = input_shape[:-1] if self.return_sequences else input_shape[:-2]
        return (*head, self.units)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        return {
            **config,
            "units": self.units,
            "activation": self.activation_name,
            "return_sequences": self.return_sequences,
            "gate": self.gate,
            "members": self.members,
        }


def scan(step: Any, init: tuple[Any, Any], xs: tuple[Any, Any]) -> tuple[Any, Any]:
    """`ops.scan(step, init, xs)` over the leading (time) axis; on TensorFlow `tf.scan`, whose loop
    has a maximum number of iterations, which XLA needs for the accumulators of the gradient
    (Keras's TensorFlow `scan` gives none). `step`'s output is its carry."""
    if keras.backend.backend() != "tensorflow":
        return ops.scan(step, init, xs, unroll=UNROLL)  # type: ignore[no-any-return]
    import tensorflow as tf

    hs, gs = tf.scan(lambda carry, inputs: step(carry, inputs)[0], xs, initializer=init)
    return (hs[-1], gs[-1]), (hs, gs)


def plain_layer(spec: dict[str, Any], name: str) -> keras.layers.Layer:
    """The artifact's layer of an rnn spec: Keras's SimpleRNN, or a `GatedRNN` with its gate."""
    if not spec.get("gate"):
        return keras.layers.SimpleRNN(
            spec["units"],
            activation=spec.get("activation", "tanh"),
            return_sequences=bool(spec.get("return_sequences")),
            name=name,
        )
    return GatedRNN(
        spec["units"], spec.get("activation", "tanh"), bool(spec.get("return_sequences")), spec["gate"], name=name
    )


def fused_layer(spec: dict[str, Any], name: str, k: int) -> keras.layers.Layer:
    """The fused layer of an rnn spec: K of them over (K, batch, T, F)."""
    return GatedRNN(
        spec["units"],
        spec.get("activation", "tanh"),
        bool(spec.get("return_sequences")),
        spec.get("gate"),
        k,
        name=name,
    )


def slots(layer: keras.layers.Layer) -> list[str]:
    """A recurrent layer's weights in the order of its variables (`app.model.recurrent.slots`)."""
    return recurrent.slots({"gate": getattr(layer, "gate", None)})


def weight(layer: keras.layers.Layer, slot: str) -> Any:
    """A recurrent layer's weight by its slot name (a SimpleRNN keeps them on its cell)."""
    if isinstance(layer, keras.layers.SimpleRNN):
        return getattr(layer.cell, slot)
    return layer.variable(slot)


def orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
    """An n x n orthogonal matrix as Keras's `Orthogonal` draws one (gain 1): Q of the QR of a
    standard normal matrix, its columns' signs set by R's diagonal."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    out: np.ndarray = q * np.sign(np.diag(r))
    return out


def initial_gate(gate: dict[str, Any], units: int, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """A gate's starting parameters (its family's, drawn from `rng` where its spec says so) and its
    bias at their opening (`app.model.recurrent.opening`), where the gate is open."""
    values = families.get(gate["type"]).initial_values(gate, units, rng or np.random.default_rng(0))
    params = {p: v.astype(np.float32) for p, v in values.items()}
    start = np.broadcast_to(recurrent.opening(gate["type"], params), (units,))
    return {**params, "gate_bias": start.astype(np.float32)}


def initial_weights(spec: dict[str, Any], name: str, width: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One member's starting rnn weights from its own generator, in order: the kernel Glorot-uniform
    and the recurrent kernel orthogonal (Keras's defaults), a zero bias; a gate's kernels zero, its
    parameters as its family says and its bias at their opening (the gate starts open)."""
    u = spec["units"]
    limit = np.sqrt(6.0 / (width + u))
    out = {
        f"{name}/kernel": rng.uniform(-limit, limit, size=(width, u)).astype(np.float32),
        f"{name}/recurrent_kernel": orthogonal(rng, u).astype(np.float32),
        f"{name}/bias": np.zeros(u, np.float32),
    }
    if spec.get("gate"):
        out[f"{name}/gate_kernel"] = np.zeros((width, u), np.float32)
        out[f"{name}/gate_recurrent_kernel"] = np.zeros((u, u), np.float32)
        out.update({f"{name}/{key}": value for key, value in initial_gate(spec["gate"], u, rng).items()})
    return out
