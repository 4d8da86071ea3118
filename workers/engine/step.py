"""The backend-neutral step math: a compiled `members=K` model, its batches, losses and sums.

`Compiled` holds a `members=K` layer, its optimizer, the group's arrays on the device and the
compiled epoch; `workers.engine.tensorflow` and `workers.engine.jax` differ only in how that
loop is compiled (as Keras keeps one trainer per backend over one shared trainer).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from workers.engine.shuffle import ROUNDS, HostOrders, on_host, rows_at
from workers.layers import layer_for
from workers.network import Stack

OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}
LOSSES = {
    "mse": keras.losses.mean_squared_error,
    "mae": keras.losses.mean_absolute_error,
    "huber": keras.losses.huber,
    "binary_crossentropy": keras.losses.binary_crossentropy,
    "sparse_categorical_crossentropy": keras.losses.sparse_categorical_crossentropy,
    "categorical_crossentropy": keras.losses.categorical_crossentropy,
}


@dataclass(frozen=True)
class Signature:
    """Everything the compiled step depends on; groups with equal signatures share one compile."""

    layer_type: str
    per_feature: bool
    k: int  # members in the compiled step: the group's size rounded up by `bucket`
    n_train: int
    n_val: int
    features: int
    batch: int
    optimizer: str
    loss: str
    device: str
    net: str = ""  # a network's layers as JSON (`workers.network`); "" for one element-wise layer
    targets: int = 0  # a network's columns of y (a single layer's y is shaped like x)

    @property
    def y_width(self) -> int:
        """Columns of y on the device."""
        return self.targets if self.net else self.features


def zero_arrays(sig: Signature) -> dict[str, np.ndarray]:
    """Zero arrays of the shapes and dtypes a group of `sig` puts on the device."""
    k, f, m = sig.k, sig.features, sig.y_width
    shapes = {"x": (k, sig.n_train, f), "y": (k, sig.n_train, m), "xv": (k, sig.n_val, f), "yv": (k, sig.n_val, m)}
    arrays = {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}
    return {
        **arrays,
        "keys": np.zeros((k, ROUNDS), np.int32),
        "shuffle": np.zeros(k, np.int32),
        "weight": np.zeros(k, np.float32),
    }


class Compiled:
    """A `members=K` layer, its optimizer, the group's arrays on the device and the compiled epoch.

    Kept in a small cache (`workers.engine.factory`): the next group with the same signature loads
    its parameters and data into the same model and reuses the compiled step (no second XLA
    compile). Each epoch takes its number from the host and, on a CPU, the members' row orders the
    host drew (`HostOrders`); elsewhere every batch's rows come from `workers.engine.shuffle` inside
    the compiled loop. The backend forms differ only in how that loop is compiled.
    """

    def __init__(self, sig: Signature) -> None:
        self.sig = sig
        self.steps = math.ceil(sig.n_train / sig.batch)
        self.loss_fn = LOSSES[sig.loss]
        self.layer: Any
        if sig.net:
            self.layer = Stack(json.loads(sig.net), sig.k, name="network")
        else:
            self.layer = layer_for(sig.layer_type)(per_feature=sig.per_feature, members=sig.k, name=sig.layer_type)
        with keras.device(sig.device):
            self.layer.build((sig.k, None, sig.features))
            self.optimizer = OPTIMIZERS[sig.optimizer]()
            self.optimizer.build(self.layer.trainable_variables)
        # The group on the device: x, y (K, n_train, F), xv, yv (K, n_val, F), each member's round keys
        # (K, ROUNDS) and shuffle flag (K,), and its weight (K,): 1 for a job, 0 for a padding member.
        self.x: Any = None
        self.y: Any = None
        self.xv: Any = None
        self.yv: Any = None
        self.keys: Any = None
        self.shuffle: Any = None
        self.weight: Any = None
        self.orders: HostOrders | None = None  # on a CPU: each epoch's orders, drawn by the host

    def named(self) -> dict[str, Any]:
        """The layer's variables by name: a family's parameters, or a network's weights (`dense_1/kernel`)."""
        if isinstance(self.layer, Stack):
            return self.layer.named()
        return {p: getattr(self.layer, p) for p in self.layer.PARAMS}

    def load(
        self, arrays: dict[str, np.ndarray], inits: dict[str, np.ndarray], learning_rate: float, epochs: int
    ) -> None:
        """Put a group's starting parameters and arrays (for `epochs` epochs) in place and reset the
        optimizer's state."""
        named = self.named()
        for name, value in inits.items():
            named[name].assign(value.astype(np.float32))
        for v in self.optimizer.variables:
            lr = v is self.optimizer.learning_rate
            v.assign(ops.cast(learning_rate, v.dtype) if lr else ops.zeros(v.shape, v.dtype))
        self.put_data(arrays)
        self.put_orders(arrays, epochs)

    def put_orders(self, arrays: dict[str, np.ndarray], epochs: int) -> None:
        """On a device whose orders the host draws (`shuffle.on_host`), take the group's keys and
        shuffle flags for its `epochs` epochs; elsewhere the compiled epoch computes them."""
        if self.orders is not None:
            self.orders.close()
        on = on_host(self.sig.device)
        self.orders = HostOrders(arrays["keys"], arrays["shuffle"], self.sig.n_train, epochs) if on else None

    def order(self, number: int) -> np.ndarray | None:
        """Epoch `number`'s orders drawn by the host (K, n_train), or None where the device computes them."""
        return None if self.orders is None else self.orders.get(number)

    def put_data(self, arrays: dict[str, np.ndarray]) -> None:
        """Move the group's arrays (named as the attributes above) to the device, once per group."""
        raise NotImplementedError

    def freeze(self, members: list[int], values: dict[int, dict[str, np.ndarray]]) -> None:
        """Make `members` stop changing while the others train on: weight 0 gives them a zero
        gradient, and zeroed optimizer slots (Adam's moments, RMSprop's velocity) turn a zero
        gradient into a zero update, as for a padding member. `values` first puts parameters (a
        member's best epoch's) in their place. The other members' rows are written back unchanged."""
        if not members:
            return
        weight = np.array(ops.convert_to_numpy(self.weight))
        weight[members] = 0
        self.put_data({"weight": weight})
        for v in self.optimizer.variables:
            if len(v.shape) and v.shape[0] == self.sig.k:  # a per-member slot, not the step count or rate
                a = np.array(ops.convert_to_numpy(v))
                a[members] = 0
                v.assign(a)
        for name, var in self.named().items():
            changes = {k: params[name] for k, params in values.items() if name in params}
            if changes:
                a = np.array(ops.convert_to_numpy(var))
                for k, value in changes.items():
                    a[k] = np.reshape(value, a.shape[1:]).astype(a.dtype)
                var.assign(a)

    def epoch(self, number: int) -> tuple[Any, Any, Any]:
        """Epoch `number` (from 1): each member's mean loss (K,), the summed |gradient| of each
        parameter (K, params), and the fraction of outputs that were not zero (K,)."""
        raise NotImplementedError

    def evaluate(self, x: Any, y: Any) -> tuple[Any, Any]:
        """Each member's mean loss on (K, rows, F) inputs, and the predictions."""
        raise NotImplementedError

    def member_loss(self, y: Any, pred: Any, weights: Any) -> Any:
        """Each member's mean loss over the weighted rows: shape (K,)."""
        per_row = self.loss_fn(y, pred)  # (K, rows): keras reduces the feature axis
        return ops.sum(per_row * weights, axis=1) / ops.sum(weights)

    def batch(self, x: Any, y: Any, keys: Any, shuffle: Any, i: Any, order: Any = None) -> tuple[Any, Any, Any]:
        """Step i's rows of every member (K, batch, F) in the epoch's order (the host's `order`
        where it drew one), and the rows' weights (batch,): 0 for the positions past n_train."""
        sig = self.sig
        pos = i * sig.batch + ops.arange(sig.batch, dtype="int32")
        w = ops.cast(pos < sig.n_train, "float32")
        pos = ops.broadcast_to(ops.where(pos < sig.n_train, pos, 0), (sig.k, sig.batch))
        rows = rows_at(ops, keys, order, pos, sig.n_train, shuffle)
        return self.gather(x, rows), self.gather(y, rows), w

    def gather(self, a: Any, rows: Any) -> Any:
        """Rows `rows[k]` of member k's array a[k]."""
        return ops.take_along_axis(a, ops.expand_dims(rows, -1), axis=1)

    def step_stats(self, per_member: Any, grads: list[Any], pred: Any, w: Any) -> tuple[Any, Any, Any]:
        """A step's contribution to the epoch's loss sum, |gradient| sums and non-zero output count."""
        g = ops.stack([ops.sum(ops.abs(gv), axis=(1, 2)) for gv in grads], axis=1)  # (K, params)
        nonzero = ops.sum(ops.cast(pred != 0, "float32") * w[None, :, None], axis=(1, 2))
        return per_member * ops.sum(w), g, nonzero

    def totals(self, loss_sum: Any, grad_abs: Any, live: Any) -> tuple[Any, Any, Any]:
        """The epoch's sums as `epoch` returns them: mean loss and non-zero fraction per member."""
        sig = self.sig
        return loss_sum / sig.n_train, grad_abs, live / (sig.n_train * sig.features)
