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

from app.model import networks, plan
from app.model.data import split
from workers.engine.shuffle import ROUNDS, HostOrders, on_host, rows_at
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

    layer_type: str  # a single layer's family, or "network"
    k: int  # members in the compiled step: the group's size rounded up by `bucket`
    n_train: int
    n_val: int
    features: int
    targets: int  # columns of y (a single layer's y is shaped like x)
    batch: int
    optimizer: str
    loss: str
    device: str
    net: str  # the layers as JSON (`workers.network.Stack`), without their starting values
    timesteps: int = 0  # steps of each sequence (an rnn's x is (n, timesteps, features)); 0: rows

    @property
    def x_shape(self) -> tuple[int, ...]:
        """One instance's shape on the device: (features,), or (timesteps, features)."""
        return (self.timesteps, self.features) if self.timesteps else (self.features,)

    @property
    def y_width(self) -> int:
        """Columns of y on the device."""
        return self.targets

    @property
    def per_feature(self) -> bool:
        """Whether a single layer has one parameter set per feature."""
        return bool(json.loads(self.net)[0].get("per_feature", True))


BUCKET_STEP = 1024  # K is rounded up to a power of two below this, to a multiple of it above


def bucket(k: int) -> int:
    """The member count compiled for a group of k jobs, so groups of nearby sizes (37 and 60
    jobs: 64) share one compile; padding costs at most 2x the work, and nothing above 1024."""
    return 1 << (k - 1).bit_length() if k <= BUCKET_STEP else -(-k // BUCKET_STEP) * BUCKET_STEP


def architecture(layers: list[dict[str, Any]]) -> str:
    """What the compiled model depends on: the layers without their starting values (nor those of an
    rnn's gate), as JSON."""
    return json.dumps(
        [{k: networks.compiled(v) for k, v in lay.items() if not k.endswith("_init")} for lay in layers], sort_keys=True
    )


def signature(
    spec: dict[str, Any], k: int, n: int, features: int, device: str, targets: int | None = None, timesteps: int = 0
) -> Signature:
    """The compiled step's signature for a group of k jobs of this spec with n rows of `features`
    (and `targets` columns of y: a single layer's y is shaped like x; `timesteps` of each sequence)."""
    t, job = spec["training"], plan.of(spec)
    n_train, n_val = split(n, t["validation_split"])
    return Signature(
        job.name if job.single else "network",
        bucket(k),
        n_train,
        n_val,
        features,
        features if targets is None else targets,
        t["batch_size"],
        t["optimizer"],
        t["loss"],
        device,
        architecture(job.layers),
        timesteps,
    )


def zero_arrays(sig: Signature) -> dict[str, np.ndarray]:
    """Zero arrays of the shapes and dtypes a group of `sig` puts on the device."""
    k, f, m = sig.k, sig.x_shape, sig.y_width
    shapes = {"x": (k, sig.n_train, *f), "y": (k, sig.n_train, m), "xv": (k, sig.n_val, *f), "yv": (k, sig.n_val, m)}
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
        self.layer = Stack(json.loads(sig.net), sig.k, name="network")
        with keras.device(sig.device):
            self.layer.build((sig.k, None, *sig.x_shape))
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
        """The network's variables by weight name (`dense_1/kernel`, `bump_1/sigma`)."""
        return self.layer.named()

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
        variable (K, variables), and the fraction of each threshold layer's outputs that were not
        zero (K, threshold layers)."""
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
        """Rows `rows[k]` of member k's array a[k] (of rows, or of sequences)."""
        index = ops.expand_dims(rows, -1)
        return ops.take_along_axis(a, index if len(a.shape) == 3 else ops.expand_dims(index, -1), axis=1)

    def zero_stats(self) -> tuple[Any, Any, Any]:
        """The epoch's sums before its first step: loss (K,), |gradient| (K, variables), live (K, taps)."""
        k = self.sig.k
        return ops.zeros(k), ops.zeros((k, len(self.layer.trainable_variables))), ops.zeros((k, self.taps))

    @property
    def taps(self) -> int:
        """The network's threshold layers."""
        return len(self.layer.tap_widths)

    def step_stats(self, per_member: Any, grads: list[Any], taps: list[Any], w: Any) -> tuple[Any, Any, Any]:
        """A step's contribution to the epoch's loss sum, |gradient| sums and each threshold
        layer's non-zero output count."""
        g = ops.stack([ops.sum(ops.abs(gv), axis=tuple(range(1, len(gv.shape)))) for gv in grads], axis=1)
        nonzero = [ops.sum(ops.cast(t != 0, "float32") * w[None, :, None], axis=(1, 2)) for t in taps]
        live = ops.stack(nonzero, axis=1) if nonzero else ops.zeros((self.sig.k, 0))
        return per_member * ops.sum(w), g, live

    def totals(self, loss_sum: Any, grad_abs: Any, live: Any) -> tuple[Any, Any, Any]:
        """The epoch's sums as `epoch` returns them: mean loss and non-zero fractions per member."""
        n, widths = self.sig.n_train, np.asarray(self.layer.tap_widths, np.float32)
        return loss_sum / n, grad_abs, live / (n * widths)
