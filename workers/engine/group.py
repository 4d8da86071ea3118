"""A group: jobs that share a fuse key train together as one `members=K` Keras layer.

Each job has its own data, shuffle and parameters, and the loss is the sum of the per-job mean
losses, so each job's gradients, and its Adam/RMSprop/SGD path, are exactly those it would have
alone. One epoch is one XLA-compiled loop over batches that stay on the device (`tf.while_loop`,
or `lax.scan` with KERAS_BACKEND=jax): no Python runs per step. K is bucketed and padded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from keras import ops

from app import families
from app.data import split
from workers.engine import diagnostics, export
from workers.engine.backend import default_device
from workers.engine.diagnostics import num
from workers.engine.factory import compiled_for
from workers.engine.shuffle import ROUNDS, draw_keys
from workers.engine.step import Signature
from workers.engine.stopping import Stopper


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
    stopped: bool = False  # dropped by `on_epoch` or handed to `on_done`: settled by the caller
    stopped_epoch: int | None = None  # early stopping ended it after this epoch, before the last
    device: str = "CPU:0"
    artifact: bytes | None = None
    weights: dict[str, np.ndarray] | None = None  # a network's: every weight and its normalisation
    weights_blob: bytes | None = None  # `weights` as .npz, stored for the API's predictions


OnEpoch = Callable[[EpochReport], Iterable[int] | None]
OnDone = Callable[[dict[int, Result]], None]  # members that finished before the group: index -> result


BUCKET_STEP = 1024  # K is rounded up to a power of two below this, to a multiple of it above


def bucket(k: int) -> int:
    """The member count compiled for a group of k jobs, so groups of nearby sizes (37 and 60
    jobs: 64) share one compile; padding costs at most 2x the work, and nothing above 1024."""
    return 1 << (k - 1).bit_length() if k <= BUCKET_STEP else -(-k // BUCKET_STEP) * BUCKET_STEP


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
    return families.get(spec["layer"]["type"]).initial_values(spec["layer"], size, rng)


def signature(spec: dict[str, Any], k: int, n: int, features: int, device: str) -> Signature:
    """The compiled step's signature for a group of k jobs of this spec with n rows of `features`."""
    t, lay = spec["training"], spec["layer"]
    n_train, n_val = split(n, t["validation_split"])
    per_feature = lay.get("per_feature", False)
    return Signature(
        lay["type"],
        per_feature,
        bucket(k),
        n_train,
        n_val,
        features,
        t["batch_size"],
        t["optimizer"],
        t["loss"],
        device,
    )


class Group:
    """Members that train as one compiled model, each with its own data, seed and parameters."""

    def __init__(self, members: list[Member], device: str) -> None:
        first = members[0].spec
        t = first["training"]
        self.members, self.device, self.k = members, device, len(members)
        self.layer_type = first["layer"]["type"]
        self.epochs = t["epochs"]
        n, features = members[0].x.shape
        self.sig = signature(first, self.k, n, features, device)
        rngs = [np.random.default_rng(m.spec["training"]["seed"]) for m in members]
        size = features if self.sig.per_feature else 1
        starts = [initial_values(m.spec, size, r) for m, r in zip(members, rngs, strict=True)]
        keys = [draw_keys(r) for r in rngs]  # after the starting values: each job's own draws, whatever its group
        pad = [starts[0]] * (self.sig.k - self.k)  # padding members: a job's start, zero data, weight 0
        inits = {p: np.stack([s[p] for s in starts + pad]).reshape(self.sig.k, 1, size) for p in starts[0]}
        self.model = compiled_for(self.sig)
        with keras.device(device):
            self.model.load(self.arrays(keys), inits, t["learning_rate"], self.epochs)
        self.layer = self.model.layer
        self.host_seconds: list[float] = []  # each epoch's host work after its compiled step (bench/gpu.py)

    def arrays(self, keys: list[np.ndarray]) -> dict[str, np.ndarray]:
        """The group's arrays for the device, padded with zero members up to the compiled K."""
        sig, k = self.sig, self.k

        def stack(rows: list[Any], shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
            out = np.zeros((sig.k, *shape), dtype)
            out[:k] = rows
            return out

        n, f, m = sig.n_train, sig.features, sig.y_width
        xs, ys = self.inputs(), self.targets()
        return {
            "x": stack([x[:n] for x in xs], (n, f)),
            "y": stack([y[:n] for y in ys], (n, m)),
            "xv": stack([x[n:] for x in xs], (sig.n_val, f)),
            "yv": stack([y[n:] for y in ys], (sig.n_val, m)),
            "keys": stack(keys, (ROUNDS,), np.int32),
            "shuffle": stack([m.spec["training"].get("shuffle", True) for m in self.members], (), np.int32),
            "weight": stack([1.0] * k, ()),
        }

    def inputs(self) -> list[np.ndarray]:
        """Each member's x as the model takes it."""
        return [m.x for m in self.members]

    def targets(self) -> list[np.ndarray]:
        """Each member's y as the loss takes it."""
        return [m.y for m in self.members]

    def run(self, on_epoch: OnEpoch | None, on_done: OnDone | None = None) -> list[Result]:
        """Train every epoch, reporting after each; members dropped by `on_epoch` stop there.
        A member whose early stopping ends it is frozen where it is (or at its best epoch) and
        given its final metrics while the others go on; `on_done` then settles it at once (it is
        marked `stopped`). The group ends when no member is training."""
        results = [Result(params={}, device=self.device) for _ in self.members]
        active = set(range(self.k))
        stoppers = [Stopper.of(m.spec) for m in self.members]
        with keras.device(self.device):
            for epoch in range(1, self.epochs + 1):
                started = time.perf_counter()
                losses, grad_abs, live = (ops.convert_to_numpy(t) for t in self.model.epoch(epoch))
                extra = self.evaluate_epoch()
                computed = time.perf_counter()
                seconds = computed - started
                rows = {}
                values, ok = self.params_now(losses, grad_abs, live)
                loss_list = losses.tolist()
                for k in sorted(active):
                    params = values[k]
                    row = {"epoch": epoch, "loss": num(loss_list[k]), "params": params, "seconds": seconds, **extra[k]}
                    results[k].history.append(row)
                    results[k].params = params
                    if not ok[k]:  # per-member checks only where the vectorised ones found something
                        self.diagnose(epoch, row, grad_abs[k], live[k], results[k])
                    rows[k] = row
                self.host_seconds.append(time.perf_counter() - computed)
                errors = {k: results[k].error for k in active if results[k].error}
                active -= set(errors)
                if on_epoch is not None:
                    for k in on_epoch(EpochReport(epoch, rows, errors)) or ():  # type: ignore[arg-type]
                        results[k].stopped = True
                        active.discard(k)
                stop = [k for k in sorted(active) if (st := stoppers[k]) is not None and st.update(epoch, rows[k])]
                self.remember(
                    epoch, [k for k in sorted(active) if (st := stoppers[k]) is not None and st.best_epoch == epoch]
                )
                if stop and epoch < self.epochs:
                    for k in stop:
                        results[k].stopped_epoch = epoch
                    active -= set(stop)
                    self.end(stop, stoppers, results)
                    self.settle(stop, results, on_done)
                if not active:
                    break
        self.end(sorted(active), stoppers, results)
        self.settle(sorted(active), results, None)
        return results

    def artifact(self, member: Member, result: Result) -> bytes:
        """A member's trained model as `.keras` bytes."""
        return save_artifact(member, result.params)

    def evaluate_epoch(self) -> list[dict[str, Any]]:
        """What each member's history row adds after its loss: the validation loss (None without
        validation rows)."""
        if not self.sig.n_val:
            return [{"val_loss": None}] * self.sig.k
        val = ops.convert_to_numpy(self.model.evaluate(self.model.xv, self.model.yv)[0]).tolist()
        return [{"val_loss": num(v)} for v in val]

    def params_now(
        self, losses: np.ndarray, grad_abs: np.ndarray, live: np.ndarray
    ) -> tuple[list[dict[str, Any]], np.ndarray]:
        """Each member's parameters as JSON, and which members the vectorised checks found fine."""
        arrays = param_arrays(self.layer, self.k)
        ok = diagnostics.fine(self.layer_type, losses[: self.k], grad_abs[: self.k], live[: self.k], arrays)
        return param_values(arrays, self.sig.per_feature), ok

    def diagnose(self, epoch: int, row: dict[str, Any], grad_abs: np.ndarray, live: float, result: Result) -> None:
        """A member the vectorised checks flagged: an error (diverged) or warnings with the fix."""
        diagnostics.diagnose(self.layer_type, self.layer.PARAMS, epoch, row, grad_abs, live, result)

    def remember(self, epoch: int, best: list[int]) -> None:
        """Members whose early stopping found its best epoch in `epoch` (their history row holds
        everything a single layer restores)."""

    def settle(self, members: list[int], results: list[Result], on_done: OnDone | None) -> None:
        """Give members that finished training their final metrics; `on_done` takes them over."""
        if not members:
            return
        for k, metrics in diagnostics.metrics(self.model, members).items():
            results[k].metrics = metrics
        if on_done is not None:
            on_done({k: results[k] for k in members})
            for k in members:
                results[k].stopped = True

    def end(self, members: list[int], stoppers: list[Stopper | None], results: list[Result]) -> None:
        """Freeze members that stop training; those restoring their best weights take them back."""
        best = {k: row for k in members if (st := stoppers[k]) is not None and (row := st.restore) is not None}
        for k, row in best.items():
            results[k].params = row["params"]
        values = {k: {p: np.asarray(v, float) for p, v in row["params"].items()} for k, row in best.items()}
        self.model.freeze(members, values)


GROUPS: dict[str, type[Group]] = {}  # a spec key -> the group that trains such jobs (netgroup adds "model")


def make_group(members: list[Member], device: str) -> Group:
    """The group for these members: the kind registered for a key their spec sets, else a single layer's."""
    kind = next((cls for key, cls in GROUPS.items() if members[0].spec.get(key) is not None), Group)
    return kind(members, device)


def train_group(
    members: list[Member],
    on_epoch: OnEpoch | None = None,
    device: str | None = None,
    artifacts: bool = False,
    on_done: OnDone | None = None,
) -> list[Result]:
    """Train members that share a fuse key together; one Result per member, in order. Members
    that early stopping ends before the others go to `on_done` as they end (with their artifacts)."""
    group = make_group(members, device or default_device())

    def finished(done: dict[int, Result]) -> None:
        if artifacts:
            for k, r in done.items():
                r.artifact = group.artifact(members[k], r)
        if on_done is not None:
            on_done(done)

    results = group.run(on_epoch, finished if on_done is not None else None)
    if artifacts:
        for m, r in zip(members, results, strict=True):
            if r.error is None and not r.stopped:
                r.artifact = group.artifact(m, r)
    return results


def train(member: Member, on_epoch: OnEpoch | None = None, device: str | None = None) -> Result:
    """Train one job alone."""
    return train_group([member], on_epoch, device)[0]


def save_artifact(member: Member, params: dict[str, Any]) -> bytes:
    """The trained model as `.keras` bytes."""
    lay = member.spec["layer"]
    return export.artifact(lay["type"], member.x.shape[1], lay.get("per_feature", False), params)
