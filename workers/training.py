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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from workers.engine import export
from workers.engine.shuffle import ROUNDS, draw_keys, epoch_keys, row_order
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


def enable_compile_cache(directory: str) -> None:
    """Keep the JAX form's compiled epochs on disk, so a new worker process (or a restarted one)
    loads a shape compiled before instead of compiling it again; "" leaves the cache off."""
    if BACKEND != "jax" or not directory:
        return
    path = Path(directory).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # a CPU compiles an epoch in < 1 s


def default_device() -> str:
    """GPU:0 when the backend sees a GPU, else CPU:0."""
    if BACKEND == "jax":
        return "GPU:0" if any(d.platform == "gpu" for d in jax.devices()) else "CPU:0"
    return "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"


def param_arrays(layer: keras.layers.Layer, k: int) -> dict[str, np.ndarray]:
    """The first k members' parameters, (k, values) floats by name."""
    return {name: ops.convert_to_numpy(getattr(layer, name))[:k].reshape(k, -1).astype(float) for name in layer.PARAMS}


def param_values(arrays: dict[str, np.ndarray], per_feature: bool) -> list[dict[str, Any]]:
    """Each member's parameters as JSON numbers: a float each, or a list each when per feature."""
    columns = {name: (a.tolist() if per_feature else a[:, 0].tolist()) for name, a in arrays.items()}
    k = next(iter(arrays.values())).shape[0]
    return [{name: column[i] for name, column in columns.items()} for i in range(k)]


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
    k: int  # members in the compiled step: the group's size rounded up by `bucket`
    n_train: int
    n_val: int
    features: int
    batch: int
    optimizer: str
    loss: str
    device: str


BUCKET_STEP = 1024  # K is rounded up to a power of two below this, to a multiple of it above


def bucket(k: int) -> int:
    """The member count compiled for a group of k jobs, so groups of nearby sizes (37 and 60
    jobs: 64) share one compile; padding costs at most 2x the work, and nothing above 1024."""
    return 1 << (k - 1).bit_length() if k <= BUCKET_STEP else -(-k // BUCKET_STEP) * BUCKET_STEP


class Compiled:
    """A `members=K` layer, its optimizer, the group's arrays on the device and the compiled epoch.

    Kept in a small cache: the next group with the same signature loads its parameters and data
    into the same model and reuses the compiled step (no second XLA compile). Each epoch takes
    only its number from the host: every batch's rows come from `workers.shuffle` inside the
    compiled loop. The backend forms below differ only in how that loop is compiled.
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
        # The group on the device: x, y (K, n_train, F), xv, yv (K, n_val, F), each member's round keys
        # (K, ROUNDS) and shuffle flag (K,), and its weight (K,): 1 for a job, 0 for a padding member.
        self.x: Any = None
        self.y: Any = None
        self.xv: Any = None
        self.yv: Any = None
        self.keys: Any = None
        self.shuffle: Any = None
        self.weight: Any = None

    def load(self, arrays: dict[str, np.ndarray], inits: dict[str, np.ndarray], learning_rate: float) -> None:
        """Put a group's starting parameters and arrays in place and reset the optimizer's state."""
        for name, value in inits.items():
            getattr(self.layer, name).assign(value.astype(np.float32))
        for v in self.optimizer.variables:
            lr = v is self.optimizer.learning_rate
            v.assign(ops.cast(learning_rate, v.dtype) if lr else ops.zeros(v.shape, v.dtype))
        self.put_data(arrays)

    def put_data(self, arrays: dict[str, np.ndarray]) -> None:
        """Move the group's arrays (named as the attributes above) to the device, once per group."""
        raise NotImplementedError

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

    def batch(self, x: Any, y: Any, keys: Any, shuffle: Any, i: Any) -> tuple[Any, Any, Any]:
        """Step i's rows of every member (K, batch, F) in the epoch's order, and the rows' weights
        (batch,): 0 for the positions past n_train that pad the last batch."""
        sig = self.sig
        pos = i * sig.batch + ops.arange(sig.batch, dtype="int32")
        w = ops.cast(pos < sig.n_train, "float32")
        pos = ops.broadcast_to(ops.where(pos < sig.n_train, pos, 0), (sig.k, sig.batch))
        rows = row_order(ops, keys, pos, sig.n_train, shuffle)
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


class TensorFlowCompiled(Compiled):
    """The epoch as one XLA-compiled `tf.while_loop`; the group's arrays live in device variables."""

    def __init__(self, sig: Signature) -> None:
        super().__init__(sig)
        var = lambda shape, dtype=tf.float32: tf.Variable(tf.zeros(shape, dtype), trainable=False)  # noqa: E731
        k, f = sig.k, sig.features
        with tf.device(sig.device):
            self.x, self.y = var((k, sig.n_train, f)), var((k, sig.n_train, f))
            self.xv, self.yv = var((k, sig.n_val, f)), var((k, sig.n_val, f))
            self.keys, self.shuffle, self.weight = var((k, ROUNDS), tf.int32), var(k, tf.int32), var(k)
        self._epoch = tf.function(self._epoch_fn, jit_compile=True)
        self._evaluate = tf.function(self._evaluate_fn)  # used once an epoch: not worth an XLA compile

    def put_data(self, arrays: dict[str, np.ndarray]) -> None:
        for name, a in arrays.items():
            getattr(self, name).assign(a)

    def epoch(self, number: int) -> tuple[Any, Any, Any]:
        return self._epoch(tf.constant(number, tf.int32))  # type: ignore[no-any-return]  # a tensor: no retrace

    def evaluate(self, x: Any, y: Any) -> tuple[Any, Any]:
        return self._evaluate(x, y)  # type: ignore[no-any-return]

    def gather(self, a: Any, rows: Any) -> Any:
        return tf.gather(a, rows, batch_dims=1)

    def _epoch_fn(self, number: Any) -> tuple[Any, Any, Any]:
        keys, shuffle = epoch_keys(ops, tf.convert_to_tensor(self.keys), number), tf.convert_to_tensor(self.shuffle)
        variables = self.layer.trainable_variables

        def body(i: Any, loss_sum: Any, grad_abs: Any, live: Any) -> tuple[Any, ...]:
            xb, yb, w = self.batch(self.x, self.y, keys, shuffle, i)
            with tf.GradientTape() as tape:
                pred = self.layer(xb)
                per_member = self.member_loss(yb, pred, w[None, :])
                total = ops.sum(per_member * self.weight)
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

    def put_data(self, arrays: dict[str, np.ndarray]) -> None:
        device = jax.devices("gpu" if self.sig.device.startswith("GPU") else "cpu")[0]
        for name, a in arrays.items():
            setattr(self, name, jax.device_put(a, device))

    def epoch(self, number: int) -> tuple[Any, Any, Any]:
        trainable = [v.value for v in self.layer.trainable_variables]
        state = [v.value for v in self.optimizer.variables]
        trainable, state, out = self._epoch(trainable, state, self.x, self.y, self.keys, self.shuffle, self.weight,
                                            np.int32(number))
        for v, value in zip(self.layer.trainable_variables + self.optimizer.variables, trainable + state,
                            strict=True):
            v.assign(value)
        return out  # type: ignore[no-any-return]

    def evaluate(self, x: Any, y: Any) -> tuple[Any, Any]:
        return self._evaluate([v.value for v in self.layer.trainable_variables], x, y)  # type: ignore[no-any-return]

    def _loss(self, trainable: list[Any], x: Any, y: Any, w: Any, weight: Any) -> tuple[Any, tuple[Any, Any]]:
        pred, _ = self.layer.stateless_call(trainable, [], x)
        per_member = self.member_loss(y, pred, w[None, :])
        return ops.sum(per_member * weight), (per_member, pred)

    def _epoch_fn(self, trainable: list[Any], state: list[Any], x: Any, y: Any, keys: Any, shuffle: Any,
                  weight: Any, number: Any) -> tuple[Any, ...]:
        keys = epoch_keys(ops, keys, number)  # the group's arrays are arguments: the compile does not bake them in
        grad_fn = jax.grad(self._loss, has_aux=True)

        def step(carry: tuple[Any, ...], i: Any) -> tuple[tuple[Any, ...], None]:
            trainable, state, loss_sum, grad_abs, live = carry
            xb, yb, w = self.batch(x, y, keys, shuffle, i)
            grads, (per_member, pred) = grad_fn(trainable, xb, yb, w, weight)
            trainable, state = self.optimizer.stateless_apply(state, grads, trainable)
            dl, dg, dn = self.step_stats(per_member, grads, pred, w)
            return (trainable, state, loss_sum + dl, grad_abs + dg, live + dn), None

        k = self.sig.k
        init = (trainable, state, jnp.zeros(k), jnp.zeros((k, len(trainable))), jnp.zeros(k))
        (trainable, state, loss_sum, grad_abs, live), _ = jax.lax.scan(step, init, jnp.arange(self.steps))
        return trainable, state, self.totals(loss_sum, grad_abs, live)

    def _evaluate_fn(self, trainable: list[Any], x: Any, y: Any) -> tuple[Any, Any]:
        pred, _ = self.layer.stateless_call(trainable, [], x)
        return self.member_loss(y, pred, jnp.ones((1, x.shape[1]))), pred


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
        self.epochs = t["epochs"]
        n, features = members[0].x.shape
        n_train = int(n * (1 - t["validation_split"]))
        self.sig = Signature(self.layer_type, lay.get("per_feature", False), bucket(self.k), n_train,
                             n - n_train, features, t["batch_size"], t["optimizer"], t["loss"], device)
        rngs = [np.random.default_rng(m.spec["training"]["seed"]) for m in members]
        size = features if self.sig.per_feature else 1
        starts = [initial_values(m.spec, size, r) for m, r in zip(members, rngs, strict=True)]
        keys = [draw_keys(r) for r in rngs]  # after the starting values: each job's own draws, whatever its group
        pad = [starts[0]] * (self.sig.k - self.k)  # padding members: a job's start, zero data, weight 0
        inits = {p: np.stack([s[p] for s in starts + pad]).reshape(self.sig.k, 1, size) for p in starts[0]}
        self.model = compiled_for(self.sig)
        with keras.device(device):
            self.model.load(self.arrays(keys), inits, t["learning_rate"])
        self.layer = self.model.layer
        self.host_seconds: list[float] = []  # each epoch's host work after its compiled step (bench/gpu.py)

    def arrays(self, keys: list[np.ndarray]) -> dict[str, np.ndarray]:
        """The group's arrays for the device, padded with zero members up to the compiled K."""
        sig, k = self.sig, self.k

        def stack(rows: list[Any], shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
            out = np.zeros((sig.k, *shape), dtype)
            out[:k] = rows
            return out

        n, f = sig.n_train, sig.features
        xs, ys = [m.x for m in self.members], [m.y for m in self.members]
        return {"x": stack([x[:n] for x in xs], (n, f)), "y": stack([y[:n] for y in ys], (n, f)),
                "xv": stack([x[n:] for x in xs], (sig.n_val, f)), "yv": stack([y[n:] for y in ys], (sig.n_val, f)),
                "keys": stack(keys, (ROUNDS,), np.int32),
                "shuffle": stack([m.spec["training"].get("shuffle", True) for m in self.members], (), np.int32),
                "weight": stack([1.0] * k, ())}

    def run(self, on_epoch: OnEpoch | None) -> list[Result]:
        """Train every epoch, reporting after each; members dropped by `on_epoch` stop there."""
        results = [Result(params={}, device=self.device) for _ in self.members]
        active = set(range(self.k))
        with keras.device(self.device):
            for epoch in range(1, self.epochs + 1):
                started = time.perf_counter()
                losses, grad_abs, live = (ops.convert_to_numpy(t) for t in self.model.epoch(epoch))
                val = None
                if self.sig.n_val:
                    val = ops.convert_to_numpy(self.model.evaluate(self.model.xv, self.model.yv)[0])
                computed = time.perf_counter()
                seconds = computed - started
                rows = {}
                arrays = param_arrays(self.layer, self.k)
                values = param_values(arrays, self.sig.per_feature)
                fine = self._fine(losses[: self.k], grad_abs[: self.k], live[: self.k], arrays)
                loss_list = losses.tolist()
                val_list = val.tolist() if val is not None else None
                for k in sorted(active):
                    params = values[k]
                    row = {"epoch": epoch, "loss": _num(loss_list[k]), "params": params, "seconds": seconds,
                           "val_loss": _num(val_list[k]) if val_list is not None else None}
                    results[k].history.append(row)
                    results[k].params = params
                    if not fine[k]:  # per-member checks only where the vectorised ones found something
                        self._diagnose(k, epoch, row, grad_abs[k], live[k], results[k])
                    rows[k] = row
                self.host_seconds.append(time.perf_counter() - computed)
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

    def _fine(self, losses: np.ndarray, grad_abs: np.ndarray, live: np.ndarray,
              arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Members with nothing for `_diagnose` to report, all at once: finite, with gradients, and
        (a bump) with samples inside the support."""
        fine = np.isfinite(losses) & np.all(grad_abs != 0, axis=1)
        for a in arrays.values():
            fine &= np.all(np.isfinite(a), axis=1)
        return fine & (live >= SPARSE_SUPPORT) if self.layer_type == "bump" else fine

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
