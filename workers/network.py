"""Networks in Keras: the fused form (a members axis K through every layer, one compiled model for
a group) and the plain form (a Keras Sequential, saved as a job's `.keras` artifact).

Every layer type carries the members axis the same way: its weights have a leading K and its call
maps (K, batch, in) to (K, batch, out). Dense is one einsum, `"kbi,kio->kbo"` (as EinsumDense);
the threshold families are their `workers.layers` layer with `members=K` and one parameter per
unit; an activation is element-wise. Adding a layer type is one entry in `FUSED` and `PLAIN`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from app.model import families, networks
from workers import recurrent
from workers.hard import options
from workers.layers import Standardize, layer_for


def members_constraint(name: str | None) -> Any:
    """Keras's kernel constraint `name` acting on each member's kernel of a (K, in, units) stack:
    the norms of Keras's (axis 0 of one kernel: each unit's column) are taken over axis 1."""
    if name is None:
        return None
    constraint = keras.constraints.get(name)
    config = constraint.get_config()
    return type(constraint)(**{**config, "axis": 1}) if "axis" in config else constraint


class MembersDense(keras.layers.Layer):  # type: ignore[misc]  # Keras has no type hints
    """K independent Dense layers at once: activation(einsum("kbi,kio->kbo", x, kernel) + bias).

    With `weight_norm` the kernel is g * v / ||v|| per member and unit (Salimans and Kingma), g
    (K, 1, units) and v (K, in, units) trained; `kernel_constraint` (a Keras name) holds each
    member's kernel (with weight_norm, non_neg holds v and g) after every optimizer step."""

    def __init__(
        self,
        units: int,
        members: int,
        activation: str = "linear",
        use_bias: bool = True,
        weight_norm: bool = False,
        kernel_constraint: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.units, self.members, self.use_bias, self.weight_norm = units, members, use_bias, weight_norm
        self.activation = keras.activations.get(activation)
        self.kernel_constraint = members_constraint(kernel_constraint)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        k, i, con = self.members, int(input_shape[-1]), self.kernel_constraint  # type: ignore[arg-type]
        if self.weight_norm:
            self.g = self.add_weight(name="g", shape=(k, 1, self.units), initializer="ones", constraint=con)
            self.v = self.add_weight(name="v", shape=(k, i, self.units), initializer="ones", constraint=con)
        else:
            self.kernel = self.add_weight(name="kernel", shape=(k, i, self.units), initializer="zeros", constraint=con)
        self.bias = (
            self.add_weight(name="bias", shape=(k, 1, self.units), initializer="zeros") if self.use_bias else None
        )

    def effective_kernel(self) -> Any:
        """The kernel the layer multiplies by: its own, or g * v / ||v|| (`app.model.networks.dense_kernel`)."""
        if not self.weight_norm:
            return self.kernel
        v = ops.convert_to_tensor(self.v)
        norm2 = ops.maximum(ops.sum(v * v, axis=1, keepdims=True), networks.NORM_FLOOR)
        return v * (ops.convert_to_tensor(self.g) / ops.sqrt(norm2))

    def call(self, x: Any) -> Any:
        out = ops.einsum("kbi,kio->kbo", x, self.effective_kernel())
        return self.activation(out + self.bias if self.bias is not None else out)


def _dense(spec: dict[str, Any], name: str, k: int) -> keras.layers.Layer:
    return MembersDense(
        spec["units"],
        k,
        spec.get("activation", "linear"),
        spec.get("use_bias", True),
        bool(spec.get("weight_norm")),
        spec.get("kernel_constraint"),
        name=name,
    )


def _threshold(spec: dict[str, Any], name: str, k: int) -> keras.layers.Layer:
    # One parameter per unit in a network; a single layer's may be shared (`layer.per_feature`).
    return layer_for(spec["type"])(per_feature=spec.get("per_feature", True), members=k, name=name, **options(spec))


def _activation(spec: dict[str, Any], name: str, k: int) -> keras.layers.Layer:
    return keras.layers.Activation(spec["activation"], name=name)


TARGET_LAYER = "target_normalization"  # the artifact's last layer with data.normalize_target: y's units again
Builder = Callable[[dict[str, Any], str, int], keras.layers.Layer]
# The fused layer of each type: (its spec, its name, K) -> a layer over (K, batch, in).
FUSED: dict[str, Builder] = {
    "dense": _dense,
    "rnn": recurrent.fused_layer,
    "activation": _activation,
    **{f: _threshold for f in networks.THRESHOLDS},
}
# The plain Keras layer of each type, for the artifact.
PLAIN: dict[str, Callable[[dict[str, Any], str], keras.layers.Layer]] = {
    "dense": lambda s, n: keras.layers.Dense(
        s["units"],
        activation=s.get("activation", "linear"),
        use_bias=s.get("use_bias", True),
        kernel_constraint=s.get("kernel_constraint"),  # the artifact's kernel is w, weight-normed or not
        name=n,
    ),
    "rnn": recurrent.plain_layer,
    "activation": lambda s, n: keras.layers.Activation(s["activation"], name=n),
    **{f: (lambda s, n: layer_for(s["type"])(per_feature=True, name=n, **options(s))) for f in networks.THRESHOLDS},
}


def slots(layer: keras.layers.Layer) -> list[str]:
    """A layer's weights in the order of its variables, as `app.model.networks.forward` names them."""
    if isinstance(layer, MembersDense | keras.layers.Dense):
        kernel = ["g", "v"] if getattr(layer, "weight_norm", False) else ["kernel"]
        return [*kernel, "bias"] if layer.use_bias else kernel
    if isinstance(layer, recurrent.GatedRNN | keras.layers.SimpleRNN):
        return recurrent.slots(layer)
    return list(getattr(layer, "PARAMS", ()))


def weight_of(layer: keras.layers.Layer, slot: str) -> Any:
    """A layer's weight by its slot name (an rnn's through `workers.recurrent.weight`), or None."""
    if isinstance(layer, recurrent.GatedRNN | keras.layers.SimpleRNN):
        return recurrent.weight(layer, slot)
    return getattr(layer, slot, None)


class Stack(keras.layers.Layer):  # type: ignore[misc]  # Keras has no type hints
    """A network with a members axis: its layers in order over (K, batch, features)."""

    def __init__(self, layers: list[dict[str, Any]], members: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.specs = layers
        self.parts = [
            # a registered family's layer for any other type (CONTRIBUTING.md, "Adding a layer family")
            FUSED.get(s["type"], _threshold)(s, name, members)
            for s, name in zip(layers, networks.names(layers), strict=True)
        ]

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        shape = input_shape
        self.tap_widths: list[int] = []  # each threshold layer's output width
        for part in self.parts:
            part.build(shape)
            if isinstance(part, recurrent.GatedRNN):  # (K, batch, T, units), or (K, batch, units)
                shape = part.compute_output_shape(shape)
            shape = (*shape[:-1], part.units) if isinstance(part, MembersDense) else shape
            if getattr(part, "PARAMS", ()):
                self.tap_widths.append(int(shape[-1]))  # type: ignore[arg-type]

    def call(self, x: Any) -> tuple[Any, list[Any]]:
        """The output (K, batch, out), and each threshold layer's output (its share of live outputs)."""
        taps = []
        for part in self.parts:
            if isinstance(part, recurrent.GatedRNN) and part.gate:  # a gated rnn's tap: its gate's last values
                x, gate = part(x)
                taps.append(gate)
                continue
            x = part(x)
            if getattr(part, "PARAMS", ()):
                taps.append(x)
        return x, taps

    def named(self) -> dict[str, Any]:
        """Every variable by its weight name (`dense_1/kernel`, `bump_1/sigma`), in layer order."""
        return {
            f"{part.name}/{slot}": weight_of(part, slot)
            for part in self.parts
            for slot in slots(part)
            if weight_of(part, slot) is not None
        }

    def thresholds(self) -> dict[str, tuple[str, ...]]:
        """The threshold layers' names and their parameters."""
        return {p.name: tuple(p.PARAMS) for p in self.parts if getattr(p, "PARAMS", ())}


def initial_weights(layers: list[dict[str, Any]], features: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One member's starting weights, drawn in layer order from its own generator: dense kernels
    Glorot-uniform (Keras's default) and zero biases; threshold units as `app.model.families` says; an
    rnn's as `workers.recurrent.initial_weights` says."""
    out: dict[str, np.ndarray] = {}
    width = features
    for spec, name in zip(layers, networks.names(layers), strict=True):
        if spec["type"] == "dense":
            limit = np.sqrt(6.0 / (width + spec["units"]))
            kernel = rng.uniform(-limit, limit, size=(width, spec["units"])).astype(np.float32)
            if spec.get("weight_norm"):  # v is the kernel drawn as usual and g its norms: w starts as it
                out[f"{name}/v"] = kernel
                out[f"{name}/g"] = np.sqrt(np.sum(kernel.astype(np.float64) ** 2, axis=0)).astype(np.float32)
            else:
                out[f"{name}/kernel"] = kernel
            if spec.get("use_bias", True):
                out[f"{name}/bias"] = np.zeros(spec["units"], np.float32)
            width = spec["units"]
        elif spec["type"] == "rnn":
            out.update(recurrent.initial_weights(spec, name, width, rng))
            width = spec["units"]
        elif spec["type"] in families.FAMILIES:
            size = width if spec.get("per_feature", True) else 1
            values = families.get(spec["type"]).initial_values(spec, size, rng)
            out.update({f"{name}/{p}": v.astype(np.float32) for p, v in values.items()})
    return out


# The statistics a network's weights may hold, each a `Standardize` layer of the plain model:
# the features' (first, `data.normalize`) and the target's (last, inverted: outputs back in y's
# units, `data.normalize_target`).
STATISTICS: dict[str, tuple[str, bool]] = {"mean": ("normalization", False), "target_mean": (TARGET_LAYER, True)}


def plain_model(
    layers: list[dict[str, Any]], features: int, stats: list[str], timesteps: int | None = None
) -> tuple[keras.Model, list[str]]:
    """The network as a plain Keras Sequential (what `keras.saving.load_model` opens), unset, and
    the name in a member's weights of each of its weights, in `model.weights` order: a
    `Standardize` layer first for each of `stats` (`STATISTICS`) that is not inverted, then the
    layers, then the inverted ones. With `timesteps` its input is sequences (timesteps, features)."""

    def standardize(key: str) -> tuple[keras.layers.Layer, list[str]]:
        name, invert = STATISTICS[key]
        prefix = key.removesuffix("mean")
        return Standardize(invert=invert, name=name), [f"{prefix}mean", f"{prefix}variance"]

    first = [standardize(key) for key in stats if not STATISTICS[key][1]]
    last = [standardize(key) for key in stats if STATISTICS[key][1]]
    body = [PLAIN[s["type"]](s, name) for s, name in zip(layers, networks.names(layers), strict=True)]
    model = keras.Sequential(
        [
            keras.Input(shape=(features,) if timesteps is None else (timesteps, features)),
            *(lay for lay, _ in first),
            *body,
            *(lay for lay, _ in last),
        ]
    )
    names = [n for _, ns in first for n in ns]
    names += [f"{layer.name}/{slot}" for layer in body for slot in slots(layer) if weight_of(layer, slot) is not None]
    names += [n for _, ns in last for n in ns]
    if len(names) != len(model.weights):
        raise RuntimeError(f"{len(model.weights)} weights in the plain network, {len(names)} named")
    return model, names


def plain(
    layers: list[dict[str, Any]], features: int, weights: dict[str, np.ndarray], timesteps: int | None = None
) -> keras.Model:
    """The network as a plain Keras Sequential holding one member's `weights` (with, when they hold
    statistics such as `mean` and `variance`, a `Standardize` layer)."""
    model, names = plain_model(layers, features, [key for key in STATISTICS if key in weights], timesteps)
    weights = {**weights, **networks.weight_normed_kernels(layers, weights)}
    for var, name in zip(model.weights, names, strict=True):
        var.assign(np.reshape(weights[name], var.shape))
    return model
