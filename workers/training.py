"""The training engine: job specs and arrays in, learned parameters, history and metrics out.

Jobs that share a fuse key (layer, shapes, batch size, epochs, optimizer) train together as one
`members=K` Keras layer: each job has its own data, shuffle and parameters, and the loss is the
sum of the per-job mean losses, so each job's gradients, and its Adam/RMSprop/SGD path, are
exactly those it would have alone. One epoch is one XLA-compiled loop over batches that stay on
the device (`tf.while_loop`, or `lax.scan` with KERAS_BACKEND=jax): no Python runs per step.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from keras import ops

from workers import export
from workers.layers import DEFAULT_SIGMA_INIT, LAYERS

BACKEND = keras.backend.backend()  # "tensorflow" (the default) or "jax" (KERAS_BACKEND=jax)
if BACKEND == "jax":
    import jax
    import jax.numpy as jnp
else:
    import tensorflow as tf

OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}
LOSSES = {"mse": keras.losses.mean_squared_error, "mae": keras.losses.mean_absolute_error,
          "huber": keras.losses.huber}


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
    stopped: bool = False
    device: str = "CPU:0"
    artifact: bytes | None = None


SPARSE_SUPPORT = 1e-3  # below this fraction of samples inside the bump's support, sigma stalls
SIGMA_FIX = ("Set layer.sigma_init to a value that covers part of the data (e.g. 0.05 for x in [-1, 1]), "
             "or leave it null to draw from [0.01, 0.1).")

OnEpoch = Callable[[EpochReport], Iterable[int] | None]


def default_device() -> str:
    """GPU:0 when the backend sees a GPU, else CPU:0."""
    if BACKEND == "jax":
        return "GPU:0" if any(d.platform == "gpu" for d in jax.devices()) else "CPU:0"
    return "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"


def param_values(layer: keras.layers.Layer) -> list[dict[str, Any]]:
    """Every member's parameters as JSON numbers: a float each, or a list each when per feature."""
    arrays = {name: ops.convert_to_numpy(getattr(layer, name)).astype(float) for name in layer.PARAMS}
    k = next(iter(arrays.values())).shape[0]
    return [{name: (float(a[i].reshape(-1)[0]) if not layer.per_feature else a[i].reshape(-1).tolist())
             for name, a in arrays.items()} for i in range(k)]


def initial_values(spec: dict[str, Any], size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A member's starting parameters; a null sigma_init draws from the job's own seed."""
    lay = spec["layer"]
    if lay["type"] == "bump":
        s = lay.get("sigma_init")
        sigma = rng.uniform(*DEFAULT_SIGMA_INIT, size=size) if s is None else np.full(size, s)
        return {"sigma": sigma}
    return {p: np.full(size, lay[f"{p}_init"]) for p in ("a", "b", "c")}


@dataclass(frozen=True)
class Signature:
    """Everything the compiled step depends on; groups with equal signatures share one compile."""

    layer_type: str
    per_feature: bool
    k: int
    n_train: int
    n_val: int
    features: int
    batch: int
    optimizer: str
    loss: str
    device: str


class Compiled:
    """A `members=K` layer, its optimizer, the group's data on the device and the compiled epoch.

    Kept in a small cache: the next group with the same signature loads its parameters and data
    into the same model and reuses the compiled step (no second XLA compile). The backend forms
    below differ only in how the loop over batches is compiled.
    """

    def __init__(self, sig: Signature) -> None:
        self.sig = sig
        self.steps = math.ceil(sig.n_train / sig.batch)
        self.loss_fn = LOSSES[sig.loss]
        self.layer = LAYERS[sig.layer_type](per_feature=sig.per_feature, members=sig.k, name=sig.layer_type)
        with keras.device(sig.device):
            self.layer.build((sig.k, None, sig.features))
            self.optimizer = OPTIMIZERS[sig.optimizer]()
            self.optimizer.build(self.layer.trainable_variables)
        pad = self.steps * sig.batch - sig.n_train
        mask = np.concatenate([np.ones(sig.n_train, np.float32), np.zeros(pad, np.float32)])
        self.mask = ops.convert_to_tensor(mask.reshape(self.steps, sig.batch))  # 0: padding of the last batch
        self.x: Any = None  # (K, n_train, F) training rows; xv, yv the validation rows
        self.y: Any = None
        self.xv: Any = None
        self.yv: Any = None

    def load(self, members: list[Member], inits: dict[str, np.ndarray], learning_rate: float) -> None:
        """Put a group's starting parameters and data in place and reset the optimizer's state."""
        n = self.sig.n_train
        for name, value in inits.items():
            getattr(self.layer, name).assign(value.astype(np.float32))
        for v in self.optimizer.variables:
            lr = v is self.optimizer.learning_rate
            v.assign(ops.cast(learning_rate, v.dtype) if lr else ops.zeros(v.shape, v.dtype))
        self.put_data(np.stack([m.x[:n] for m in members]), np.stack([m.y[:n] for m in members]),
                      np.stack([m.x[n:] for m in members]), np.stack([m.y[n:] for m in members]))

    def put_data(self, x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray) -> None:
        """Move the group's arrays (K, rows, F) to the device."""
        raise NotImplementedError

    def epoch(self, perm: np.ndarray) -> tuple[Any, Any, Any]:
        """One epoch over the rows in `perm` (K, steps * batch): each member's mean loss (K,), the summed
        |gradient| of each parameter (K, params), and the fraction of outputs that were not zero (K,)."""
        raise NotImplementedError

    def evaluate(self, x: Any, y: Any) -> tuple[Any, Any]:
        """Each member's mean loss on (K, rows, F) inputs, and the predictions."""
        raise NotImplementedError

    def member_loss(self, y: Any, pred: Any, weights: Any) -> Any:
        """Each member's mean loss over the weighted rows: shape (K,)."""
        per_row = self.loss_fn(y, pred)  # (K, rows): keras reduces the feature axis
        return ops.sum(per_row * weights, axis=1) / ops.sum(weights)

    def batches(self, x: Any, y: Any, perm: Any) -> tuple[Any, Any]:
        """The epoch's rows of x and y (K, n_train, F) in `perm` order, as (steps, K, batch, F)."""
        sig = self.sig
        shape = (sig.k, self.steps, sig.batch, sig.features)
        xe = ops.reshape(self.gather(x, perm), shape)
        ye = ops.reshape(self.gather(y, perm), shape)
        return ops.transpose(xe, (1, 0, 2, 3)), ops.transpose(ye, (1, 0, 2, 3))

    def gather(self, a: Any, perm: Any) -> Any:
        """Rows `perm[k]` of member k's array a[k]."""
        return ops.take_along_axis(a, ops.expand_dims(perm, -1), axis=1)

    def step_stats(self, per_member: Any, grads: list[Any], pred: Any, w: Any) -> tuple[Any, Any, Any]:
        """A step's contribution to the epoch's loss sum, |gradient| sums and non-zero output count."""
        g = ops.stack([ops.sum(ops.abs(gv), axis=(1, 2)) for gv in grads], axis=1)  # (K, params)
        nonzero = ops.sum(ops.cast(pred != 0, "float32") * w[None, :, None], axis=(1, 2))
        return per_member * ops.sum(w), g, nonzero

    def totals(self, loss_sum: Any, grad_abs: Any, live: Any) -> tuple[Any, Any, Any]:
        """The epoch's sums as `epoch` returns them: mean loss and non-zero fraction per member."""
        sig = self.sig
        return loss_sum / sig.n_train, grad_abs, live / (sig.n_train * sig.features)


class TensorFlowCompiled(Compiled):
    """The epoch as one XLA-compiled `tf.while_loop`; the data lives in device variables."""

    def __init__(self, sig: Signature) -> None:
        super().__init__(sig)
        var = lambda rows: tf.Variable(tf.zeros((sig.k, rows, sig.features)), trainable=False)  # noqa: E731
        with tf.device(sig.device):
            self.x, self.y, self.xv, self.yv = var(sig.n_train), var(sig.n_train), var(sig.n_val), var(sig.n_val)
        self._epoch = tf.function(self._epoch_fn, jit_compile=True)
        self._evaluate = tf.function(self._evaluate_fn)  # used once an epoch: not worth an XLA compile

    def put_data(self, x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray) -> None:
        for var, a in zip((self.x, self.y, self.xv, self.yv), (x, y, xv, yv), strict=True):
            var.assign(a)

    def epoch(self, perm: np.ndarray) -> tuple[Any, Any, Any]:
        return self._epoch(perm)  # type: ignore[no-any-return]

    def evaluate(self, x: Any, y: Any) -> tuple[Any, Any]:
        return self._evaluate(x, y)  # type: ignore[no-any-return]

    def gather(self, a: Any, perm: Any) -> Any:
        return tf.gather(a, perm, batch_dims=1)

    def _epoch_fn(self, perm: Any) -> tuple[Any, Any, Any]:
        xe, ye = self.batches(self.x, self.y, perm)
        variables = self.layer.trainable_variables

        def body(i: Any, loss_sum: Any, grad_abs: Any, live: Any) -> tuple[Any, ...]:
            w = self.mask[i]
            with tf.GradientTape() as tape:
                pred = self.layer(xe[i])
                per_member = self.member_loss(ye[i], pred, w[None, :])
                total = ops.sum(per_member)
            grads = tape.gradient(total, variables)
            self.optimizer.apply(grads, variables)
            dl, dg, dn = self.step_stats(per_member, grads, pred, w)
            return i + 1, loss_sum + dl, grad_abs + dg, live + dn

        k = self.sig.k
        zeros = (tf.zeros(k), tf.zeros((k, len(variables))), tf.zeros(k))
        _, loss_sum, grad_abs, live = tf.while_loop(lambda i, *_: i < self.steps, body, (tf.constant(0), *zeros))
        return self.totals(loss_sum, grad_abs, live)

    def _evaluate_fn(self, x: Any, y: Any) -> tuple[Any, Any]:
        pred = self.layer(x)
        return self.member_loss(y, pred, tf.ones((1, tf.shape(x)[1]))), pred


class JaxCompiled(Compiled):
    """The epoch as one `jax.jit`-compiled `lax.scan` over batches, written with the layer's
    `stateless_call` and the optimizer's `stateless_apply` (KERAS_BACKEND=jax, CPU or GPU)."""

    def __init__(self, sig: Signature) -> None:
        super().__init__(sig)
        self._epoch = jax.jit(self._epoch_fn)
        self._evaluate = jax.jit(self._evaluate_fn)

    def put_data(self, x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray) -> None:
        device = jax.devices("gpu" if self.sig.device.startswith("GPU") else "cpu")[0]
        self.x, self.y, self.xv, self.yv = (jax.device_put(a, device) for a in (x, y, xv, yv))

    def epoch(self, perm: np.ndarray) -> tuple[Any, Any, Any]:
        trainable = [v.value for v in self.layer.trainable_variables]
        state = [v.value for v in self.optimizer.variables]
        trainable, state, out = self._epoch(trainable, state, self.x, self.y, perm)
        for v, value in zip(self.layer.trainable_variables + self.optimizer.variables, trainable + state,
                            strict=True):
            v.assign(value)
        return out  # type: ignore[no-any-return]

    def evaluate(self, x: Any, y: Any) -> tuple[Any, Any]:
        return self._evaluate([v.value for v in self.layer.trainable_variables], x, y)  # type: ignore[no-any-return]

    def _loss(self, trainable: list[Any], x: Any, y: Any, w: Any) -> tuple[Any, tuple[Any, Any]]:
        pred, _ = self.layer.stateless_call(trainable, [], x)
        per_member = self.member_loss(y, pred, w[None, :])
        return ops.sum(per_member), (per_member, pred)

    def _epoch_fn(self, trainable: list[Any], state: list[Any], x: Any, y: Any, perm: Any) -> tuple[Any, ...]:
        xe, ye = self.batches(x, y, perm)  # data as arguments: the compiled step does not bake it in
        grad_fn = jax.grad(self._loss, has_aux=True)

        def step(carry: tuple[Any, ...], batch: tuple[Any, Any, Any]) -> tuple[tuple[Any, ...], None]:
            trainable, state, loss_sum, grad_abs, live = carry
            grads, (per_member, pred) = grad_fn(trainable, *batch)
            trainable, state = self.optimizer.stateless_apply(state, grads, trainable)
            dl, dg, dn = self.step_stats(per_member, grads, pred, batch[2])
            return (trainable, state, loss_sum + dl, grad_abs + dg, live + dn), None

        k = self.sig.k
        init = (trainable, state, jnp.zeros(k), jnp.zeros((k, len(trainable))), jnp.zeros(k))
        (trainable, state, loss_sum, grad_abs, live), _ = jax.lax.scan(step, init, (xe, ye, self.mask))
        return trainable, state, self.totals(loss_sum, grad_abs, live)

    def _evaluate_fn(self, trainable: list[Any], x: Any, y: Any) -> tuple[Any, Any]:
        return self._loss(trainable, x, y, jnp.ones(x.shape[1]))[1]


_CACHE: OrderedDict[Signature, Compiled] = OrderedDict()
CACHE_SIZE = 4  # compiled models kept per worker process


def compiled_for(sig: Signature) -> Compiled:
    """The cached compiled model for `sig`, built on first use."""
    if sig in _CACHE:
        _CACHE.move_to_end(sig)
    else:
        _CACHE[sig] = JaxCompiled(sig) if BACKEND == "jax" else TensorFlowCompiled(sig)
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return _CACHE[sig]


class Group:
    """Members that train as one compiled model, each with its own data, seed and parameters."""

    def __init__(self, members: list[Member], device: str) -> None:
        first = members[0].spec
        t, lay = first["training"], first["layer"]
        self.members, self.device, self.k = members, device, len(members)
        self.layer_type = lay["type"]
        self.epochs, self.shuffle = t["epochs"], t.get("shuffle", True)
        n, features = members[0].x.shape
        n_train = int(n * (1 - t["validation_split"]))
        self.sig = Signature(self.layer_type, lay.get("per_feature", False), self.k, n_train, n - n_train,
                             features, t["batch_size"], t["optimizer"], t["loss"], device)
        self.rngs = [np.random.default_rng(m.spec["training"]["seed"]) for m in members]
        size = features if self.sig.per_feature else 1
        starts = [initial_values(m.spec, size, r) for m, r in zip(members, self.rngs, strict=True)]
        inits = {p: np.stack([s[p] for s in starts]).reshape(self.k, 1, size) for p in starts[0]}
        self.model = compiled_for(self.sig)
        with keras.device(device):
            self.model.load(members, inits, t["learning_rate"])
        self.layer = self.model.layer

    def permutations(self) -> np.ndarray:
        """Each member's row order for the next epoch, from its own seed, padded to whole batches."""
        n, steps, batch = self.sig.n_train, self.model.steps, self.sig.batch
        rows = [r.permutation(n) if self.shuffle else np.arange(n) for r in self.rngs]
        return np.pad(np.stack(rows), ((0, 0), (0, steps * batch - n))).astype(np.int32)

    def run(self, on_epoch: OnEpoch | None) -> list[Result]:
        """Train every epoch, reporting after each; members dropped by `on_epoch` stop there."""
        results = [Result(params={}, device=self.device) for _ in self.members]
        active = set(range(self.k))
        with ThreadPoolExecutor(1) as pool, keras.device(self.device):
            upcoming = pool.submit(self.permutations)
            for epoch in range(1, self.epochs + 1):
                started = time.perf_counter()
                perm = upcoming.result()
                if epoch < self.epochs:
                    upcoming = pool.submit(self.permutations)
                losses, grad_abs, live = (ops.convert_to_numpy(t) for t in self.model.epoch(perm))
                val = None
                if self.sig.n_val:
                    val = ops.convert_to_numpy(self.model.evaluate(self.model.xv, self.model.yv)[0])
                seconds = time.perf_counter() - started
                rows = {}
                values = param_values(self.layer)
                for k in sorted(active):
                    params = values[k]
                    row = {"epoch": epoch, "loss": _num(losses[k]), "params": params, "seconds": seconds,
                           "val_loss": _num(val[k]) if val is not None else None}
                    results[k].history.append(row)
                    results[k].params = params
                    self._diagnose(k, epoch, row, grad_abs[k], live[k], results[k])
                    rows[k] = row
                errors = {k: results[k].error for k in active if results[k].error}
                active -= set(errors)
                if on_epoch is not None:
                    for k in on_epoch(EpochReport(epoch, rows, errors)) or ():  # type: ignore[arg-type]
                        results[k].stopped = True
                        active.discard(k)
                if not active:
                    break
        for k, metrics in self.metrics(sorted(active)).items():
            results[k].metrics = metrics
        return results

    def _diagnose(self, k: int, epoch: int, row: dict[str, Any], grad_abs: np.ndarray, live: float,
                  result: Result) -> None:
        """Non-finite loss or parameters fail the member; a parameter with no gradient, or a bump
        whose support holds almost no sample, is a warning with the fix."""
        values = np.concatenate([np.ravel(v) for v in row["params"].values()])
        if row["loss"] is None or not np.all(np.isfinite(values)):
            result.error = {"type": "diverged", "message": f"training diverged in epoch {epoch}: loss "
                            f"{row['loss']} with parameters {row['params']}; lower training.learning_rate "
                            "or change the initial values"}
            return
        for name, g in zip(self.layer.PARAMS, grad_abs, strict=True):
            if g == 0 and not any(w["parameter"] == name for w in result.warnings):
                result.warnings.append({"type": "zero_gradient", "parameter": name, "epoch": str(epoch),
                                        "message": self._zero_gradient_advice(name, epoch, row["params"])})
        if self.layer_type == "bump" and live < SPARSE_SUPPORT and not result.warnings:
            result.warnings.append({
                "type": "sparse_support", "parameter": "sigma", "epoch": str(epoch),
                "message": f"only {live:.2e} of the samples fell inside the support |x| < sigma = "
                f"{row['params']['sigma']} in epoch {epoch}, so sigma gets almost no gradient. "
                + SIGMA_FIX})

    def _zero_gradient_advice(self, name: str, epoch: int, params: dict[str, Any]) -> str:
        head = f"{name} received zero gradient through all of epoch {epoch} and did not move"
        if self.layer_type == "bump":
            return f"{head}: no training sample fell inside the support |x| < sigma = {params['sigma']}. " + SIGMA_FIX
        return (f"{head}: every sample is far outside the gaussian's width; start with a smaller b_init "
                "or a c_init nearer the data.")

    def metrics(self, members: list[int]) -> dict[int, dict[str, float | None]]:
        """Final loss, mae and r2 (keras.metrics) on the training rows, and on validation rows if any;
        every member at once (R2Score without class aggregation gives one score per member column)."""
        out: dict[int, dict[str, float | None]] = {k: {} for k in members}
        m, k_all, f = self.model, self.sig.k, self.sig.features
        sets = [("", m.x, m.y)] + ([("val_", m.xv, m.yv)] if self.sig.n_val else [])
        for prefix, x, y in sets:
            loss, pred = m.evaluate(x, y)
            mae = ops.mean(keras.metrics.mean_absolute_error(y, pred), axis=1)
            columns = lambda t: ops.reshape(ops.transpose(t, (1, 0, 2)), (-1, k_all * f))  # noqa: E731
            r2 = keras.metrics.R2Score(class_aggregation=None)
            r2.update_state(columns(y), columns(pred))
            scores = {"loss": ops.convert_to_numpy(loss), "mae": ops.convert_to_numpy(mae),
                      "r2": ops.convert_to_numpy(r2.result()).reshape(k_all, f).mean(axis=1)}
            for k in members:
                out[k].update({f"{prefix}{name}": _num(v[k]) for name, v in scores.items()})
        return out


def _num(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def train_group(members: list[Member], on_epoch: OnEpoch | None = None, device: str | None = None,
                artifacts: bool = False) -> list[Result]:
    """Train members that share a fuse key together; one Result per member, in order."""
    group = Group(members, device or default_device())
    results = group.run(on_epoch)
    if artifacts:
        for m, r in zip(members, results, strict=True):
            if r.error is None and not r.stopped:
                r.artifact = save_artifact(m, r.params)
    return results


def train(member: Member, on_epoch: OnEpoch | None = None, device: str | None = None) -> Result:
    """Train one job alone."""
    return train_group([member], on_epoch, device)[0]


def save_artifact(member: Member, params: dict[str, Any]) -> bytes:
    """The trained model as `.keras` bytes."""
    lay = member.spec["layer"]
    return export.artifact(lay["type"], member.x.shape[1], lay.get("per_feature", False), params)
