"""Networks of layers (`model.layers`), the NumPy side: names, widths, parameter counts, the user's
table as x and y, normalisation statistics and the forward pass the API serves predictions with.

The workers train the same networks with Keras (`workers.network`); the activations here are the
NumPy forms of Keras's, the threshold families are `app.model.families`' math, and the normalisation is
Keras's `Normalization` layer's formula, so API predictions and the `.keras` artifact agree.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np

from app.errors import InvalidInput
from app.model import families, recurrent

EPSILON = 1e-7  # keras.backend.epsilon(): the least standard deviation Normalization divides by


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)  # type: ignore[no-any-return]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))  # type: ignore[no-any-return]


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(np.zeros_like(x), x)  # type: ignore[no-any-return]


SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805
# Keras's activations by name (keras.activations.get), in NumPy.
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.clip(x, 0, 6),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "sigmoid": _sigmoid,
    "hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "tanh": np.tanh,
    "softmax": _softmax,
    "log_softmax": lambda x: np.log(_softmax(x)),
    "softplus": _softplus,
    "softsign": lambda x: x / (1 + np.abs(x)),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0))),
    "exponential": np.exp,
    "silu": lambda x: x * _sigmoid(x),
    "swish": lambda x: x * _sigmoid(x),
    "mish": lambda x: x * np.tanh(_softplus(x)),
}
THRESHOLDS = ("bump", "gaussian", "pulse", "step")  # the element-wise families a network may hold
HARD = ("pulse", "step")  # exact 0/1 outputs, trained through surrogate gradients (workers.hard)
# The layer options the compiled network depends on besides type, units, activation and use_bias;
# a fuse key names one only when it is set, so the keys of networks without them stay as they were.
OPTIONS = ("weight_norm", "kernel_constraint", "surrogate", "surrogate_width", "surrogate_slope")
RECURRENT = ("return_sequences", "gate")  # an rnn's options, likewise named only when set
COMPILED_KEYS = ("type", "units", "activation", "use_bias", *OPTIONS, *RECURRENT)  # what a compiled network depends on
NORM_FLOOR = 1e-12  # the least squared norm weight normalisation divides by (tf.math.l2_normalize's)
CLASSIFICATION = {"binary_crossentropy", "sparse_categorical_crossentropy", "categorical_crossentropy"}


def names(layers: list[dict[str, Any]]) -> list[str]:
    """Each layer's name: `dense_1`, `bump_1`, `activation_1`, ... numbered per type from 1."""
    seen: dict[str, int] = {}
    out = []
    for layer in layers:
        seen[layer["type"]] = seen.get(layer["type"], 0) + 1
        out.append(f"{layer['type']}_{seen[layer['type']]}")
    return out


def widths(layers: list[dict[str, Any]], features: int) -> list[int]:
    """Each layer's output width for inputs of `features` columns (only dense and rnn change it)."""
    out, width = [], features
    for layer in layers:
        width = layer["units"] if layer["type"] in ("dense", "rnn") else width
        out.append(width)
    return out


def parameter_count(layers: list[dict[str, Any]], features: int) -> int:
    """Trainable numbers in the network: dense kernels and biases, and each threshold unit's parameters."""
    total, width = 0, features
    for layer in layers:
        if layer["type"] == "dense":
            total += width * layer["units"] + (layer["units"] if layer.get("use_bias", True) else 0)
            total += layer["units"] if layer.get("weight_norm") else 0  # each unit's g
            width = layer["units"]
        elif layer["type"] == "rnn":
            total += recurrent.parameter_count(layer, width)
            width = layer["units"]
        elif layer["type"] in families.FAMILIES:
            total += width * len(families.get(layer["type"]).params)
    return total


def architecture(layers: list[dict[str, Any]]) -> list[Any]:
    """What a compiled network depends on (types, units, activations, biases), not starting values
    (nor those of an rnn's gate)."""
    return [
        [lay["type"], lay.get("units"), lay.get("activation"), lay.get("use_bias")]
        + [[key, lay[key]] for key in OPTIONS if lay.get(key) not in (None, False)]
        + [[key, compiled(lay[key])] for key in RECURRENT if lay.get(key) not in (None, False)]
        for lay in layers
    ]


def compiled(value: Any) -> Any:
    """A layer option as a compiled network depends on it: a gate without its starting values."""
    return {k: v for k, v in value.items() if not k.endswith("_init")} if isinstance(value, dict) else value


def dense_kernel(layer: dict[str, Any], name: str, weights: dict[str, np.ndarray]) -> np.ndarray:
    """A dense layer's kernel (in, units): its `kernel`, or with `weight_norm` g * v / ||v|| per unit
    (Salimans and Kingma) from its `g` and `v` (v stored flat or (in, units)), in float32."""
    if not layer.get("weight_norm"):
        return weights[f"{name}/kernel"]
    v = np.reshape(weights[f"{name}/v"], (-1, layer["units"])).astype(np.float32)
    g = np.reshape(weights[f"{name}/g"], (1, -1)).astype(np.float32)
    scale = g / np.sqrt(np.maximum(np.sum(v * v, axis=0, keepdims=True), np.float32(NORM_FLOOR)))
    return (v * scale).astype(np.float32)  # type: ignore[no-any-return]


def weight_normed_kernels(layers: list[dict[str, Any]], weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The kernels of the `weight_norm` dense layers (`dense_1/kernel`), as their artifact's plain Dense holds them."""
    return {
        f"{name}/kernel": dense_kernel(layer, name, weights)
        for layer, name in zip(layers, names(layers), strict=True)
        if layer["type"] == "dense" and layer.get("weight_norm")
    }


def default_columns(features: int, outputs: int) -> list[str]:
    """Column names of a dataset stored without a header: x1..xF, then y1..yM."""
    return [f"x{i + 1}" for i in range(features)] + [f"y{j + 1}" for j in range(outputs)]


def table(
    x: np.ndarray, y: np.ndarray, columns: list[str] | None, data: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """A stored dataset as a network's (x, y) by `data.target` and `data.features` (column names),
    with the names of x's and y's columns; without a target, the stored x and y. Sequences
    (x of shape (n, timesteps, features)) are taken as they are: their columns are x1.., y1..."""
    if x.ndim == 3:
        return sequences(x, y, data)
    names_ = columns or default_columns(x.shape[1], y.shape[1])
    target, features = data.get("target"), data.get("features")
    if target is None:
        if features is not None:
            raise InvalidInput.at("data.features", "needs data.target: name the target column(s) as well")
        if y.shape[1] == 0:
            raise InvalidInput.at(
                "data.target", f"this dataset is a table with columns {names_[:20]}; name its target column(s)"
            )
        return x, y, names_[: x.shape[1]], names_[x.shape[1] :]
    full = np.hstack([x, y]) if y.shape[1] else x
    index = {name: i for i, name in enumerate(names_)}

    def pick(wanted: list[str], field: str) -> list[int]:
        for i, name in enumerate(wanted):
            if name not in index:
                raise InvalidInput.at(f"{field}[{i}]", f"no column {name!r}; the columns are {names_[:40]}")
        return [index[name] for name in wanted]

    tcols = pick(target, "data.target")
    if features is None:
        fcols = [i for i in range(len(names_)) if i not in set(tcols)]
    else:
        fcols = pick(features, "data.features")
        both = set(fcols) & set(tcols)
        if both:
            raise InvalidInput.at("data.features", f"column {names_[min(both)]!r} is also a target")
    if not fcols:
        raise InvalidInput.at("data.features", "no feature columns are left besides the target")
    return full[:, fcols], full[:, tcols], [names_[i] for i in fcols], [names_[i] for i in tcols]


def sequences(
    x: np.ndarray, y: np.ndarray, data: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """A sequence dataset as a network's (x, y) and its default column names; `data.target` and
    `data.features` may only name those (a job's stored spec does)."""
    names_ = default_columns(x.shape[2], y.shape[1])
    xnames, ynames = names_[: x.shape[2]], names_[x.shape[2] :]
    for field, given, default in (
        ("data.target", data.get("target"), ynames),
        ("data.features", data.get("features"), xnames),
    ):
        if given is not None and list(given) != default:
            raise InvalidInput.at(
                field,
                f"a sequence dataset's x and y are its arrays: leave {field} out (its columns are {default[:10]})",
            )
    return x, y, xnames, ynames


def check_targets(y: np.ndarray, loss: str, width: int, names_: list[str], last: int) -> None:
    """Refuse targets the loss cannot train on, naming the row and column: labels outside 0..C-1,
    probabilities outside [0, 1], or a width that is not the last layer's."""
    where = f"model.layers.{last}.units"
    if loss == "sparse_categorical_crossentropy":
        if y.shape[1] != 1:
            raise InvalidInput.at("data.target", f"sparse labels are one column of integers, got {y.shape[1]} columns")
        bad = np.flatnonzero((y[:, 0] != np.round(y[:, 0])) | (y[:, 0] < 0) | (y[:, 0] > width - 1))
        if bad.size:
            r = int(bad[0])
            raise InvalidInput.at(
                f"data row {r + 1}, column {names_[0]!r}",
                f"label {y[r, 0]:g} is not an integer in 0..{width - 1} (the last layer has {width} units)",
            )
        return
    if y.shape[1] != width:
        raise InvalidInput.at(where, f"is {width} but the target has {y.shape[1]} column(s) {names_[:10]}")
    if loss in ("binary_crossentropy", "categorical_crossentropy"):
        bad_cells = np.argwhere((y < 0) | (y > 1))
        if bad_cells.size:
            r, c = (int(v) for v in bad_cells[0])
            raise InvalidInput.at(
                f"data row {r + 1}, column {names_[c]!r}", f"{loss} takes targets in [0, 1], got {y[r, c]:g}"
            )


def statistics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) variance of each column, as Keras's `Normalization.adapt` computes them
    (of sequences: each feature's over all rows and timesteps)."""
    x64 = x.reshape(-1, x.shape[-1]).astype(np.float64)
    return x64.mean(axis=0).astype(np.float32), x64.var(axis=0).astype(np.float32)


def standardize(x: np.ndarray, mean: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """Keras's `Normalization`: (x - mean) / max(sqrt(variance), epsilon); a constant column gives 0."""
    return ((x - mean) / np.maximum(np.sqrt(variance), np.float32(EPSILON))).astype(np.float32)  # type: ignore[no-any-return]


def destandardize(z: np.ndarray, mean: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """`standardize` undone, as Keras's `Normalization(invert=True)`: z * max(sqrt(variance), epsilon) + mean."""
    return (z * np.maximum(np.sqrt(variance), np.float32(EPSILON)) + mean).astype(np.float32)  # type: ignore[no-any-return]


def forward(layers: list[dict[str, Any]], weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The network on raw feature rows x (n, F), or sequences (n, T, F), in float32: normalisation
    (`mean`, `variance` in `weights`, when stored), then each layer with its weights (`<name>/kernel`,
    `<name>/sigma`, ...), then the outputs in y's units (`target_mean`, `target_variance`, when
    stored: data.normalize_target)."""
    out = x.astype(np.float32)
    if "mean" in weights:
        out = standardize(out, weights["mean"], weights["variance"])
    with np.errstate(all="ignore"):
        for name, layer in zip(names(layers), layers, strict=True):
            kind = layer["type"]
            if kind == "dense":
                out = out @ dense_kernel(layer, name, weights)
                if f"{name}/bias" in weights:
                    out = out + weights[f"{name}/bias"]
                out = ACTIVATIONS[layer.get("activation", "linear")](out)
            elif kind == "activation":
                out = ACTIVATIONS[layer["activation"]](out)
            elif kind == "rnn":
                out = recurrent.forward(layer, name, weights, out, ACTIVATIONS[layer.get("activation", "tanh")])
            else:
                family = families.get(kind)
                out = family.evaluate(np, out, {p: weights[f"{name}/{p}"] for p in family.params})
            out = out.astype(np.float32)
        if "target_mean" in weights:
            out = destandardize(out, weights["target_mean"], weights["target_variance"])
    return out


def pack(weights: dict[str, np.ndarray]) -> bytes:
    """Weights by name -> `.npz` bytes, as the API reads them back for predictions."""
    buf = io.BytesIO()
    np.savez(buf, **weights)  # type: ignore[arg-type]
    return buf.getvalue()


def unpack(blob: bytes) -> dict[str, np.ndarray]:
    """`.npz` bytes -> weights by name."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}
