"""A group: jobs that share a fuse key train together as one `members=K` network (`app.model.plan`: a
single layer is a one-layer network whose parameters are shared across features unless
`per_feature`). One group class trains every job.

Each job has its own data, shuffle and weights, and the loss is the sum of the per-job mean
losses, so each job's gradients, and its Adam/RMSprop/SGD path, are exactly those it would have
alone. One epoch is one XLA-compiled loop over batches that stay on the device (`tf.while_loop`,
or `lax.scan` with KERAS_BACKEND=jax): no Python runs per step. K is bucketed and padded. Each
member draws its starting weights, then its row-order keys, from its own training seed; its
features (`data.normalize`) and y (`data.normalize_target`) are standardised with its own
training split's statistics when it asks, and they go into its artifact, so predictions take raw
features and answer in y's units. After every epoch each member's history row gets its threshold
parameters, its validation loss and its metrics (`workers.engine.evaluation`), and each threshold
layer is checked (`workers.engine.diagnostics`).
"""

from __future__ import annotations

import time
from typing import Any

import keras
import numpy as np
from keras import ops

from app.model import networks, plan
from workers import network
from workers.engine import diagnostics, evaluation, export, npz
from workers.engine.backend import default_device
from workers.engine.diagnostics import num
from workers.engine.factory import compiled_for
from workers.engine.result import EpochReport, Member, OnDone, OnEpoch, Result
from workers.engine.shuffle import ROUNDS, draw_keys
from workers.engine.step import signature
from workers.engine.stopping import Stopper


class Group:
    """Members that train as one compiled model, each with its own data, seed and weights."""

    def __init__(self, members: list[Member], device: str) -> None:
        first = members[0].spec
        t = first["training"]
        self.members, self.device, self.k = members, device, len(members)
        self.plan = plan.of(first)
        self.epochs = t["epochs"]
        x0 = members[0].x  # rows (n, features), or sequences (n, timesteps, features)
        n, features, steps = x0.shape[0], x0.shape[-1], (x0.shape[1] if x0.ndim == 3 else 0)
        self.sig = signature(first, self.k, n, features, device, members[0].y.shape[1], steps)
        n_train = self.sig.n_train
        self.stats = [evaluation.statistics(m.spec, m.x[:n_train], "normalize") for m in members]
        # data.normalize_target is in the fuse key: every member of a group standardises y, or none
        self.target_stats = [
            evaluation.statistics(m.spec, m.y[:n_train], "normalize_target", "target_") for m in members
        ]
        rngs = [np.random.default_rng(m.spec["training"]["seed"]) for m in members]
        starts = [
            network.initial_weights(plan.of(m.spec).layers, features, r) for m, r in zip(members, rngs, strict=True)
        ]
        keys = [draw_keys(r) for r in rngs]  # after the weights: each job's own draws, whatever its group
        self.model = compiled_for(self.sig)
        named = self.model.named()
        pad = [starts[0]] * (self.sig.k - self.k)  # padding members: a job's start, zero data, weight 0
        inits = {name: np.stack([s[name] for s in starts + pad]).reshape(var.shape) for name, var in named.items()}
        with keras.device(device):
            self.model.load(self.arrays(keys), inits, t["learning_rate"], self.epochs)
        stack = self.model.layer
        self.layer = stack.parts[0] if self.plan.single else stack  # what trains: the single layer, or the network
        column = {id(v): i for i, v in enumerate(stack.trainable_variables)}
        self.taps = [
            diagnostics.Tap(index, name, spec["type"], params, tuple(column[id(named[f"{name}/{p}"])] for p in params))
            for index, (spec, name) in enumerate(zip(self.plan.layers, networks.names(self.plan.layers), strict=True))
            if (params := stack.thresholds().get(name))
        ]
        ys = [m.y for m in members]
        self.evaluator = evaluation.Evaluator(self.model, first, self.plan.single, ys, self.target_stats)
        self.best: dict[int, dict[str, np.ndarray]] = {}  # early stopping's best weights, by member
        self.host_seconds: list[float] = []  # each epoch's host work after its compiled step (bench/gpu.py)

    def arrays(self, keys: list[np.ndarray]) -> dict[str, np.ndarray]:
        """The group's arrays for the device, padded with zero members up to the compiled K."""
        sig, k = self.sig, self.k

        def stack(rows: list[Any], shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
            out = np.zeros((sig.k, *shape), dtype)
            out[:k] = rows
            return out

        n, f, m = sig.n_train, sig.x_shape, sig.y_width
        xs, ys = self.inputs(), self.targets()
        return {
            "x": stack([x[:n] for x in xs], (n, *f)),
            "y": stack([y[:n] for y in ys], (n, m)),
            "xv": stack([x[n:] for x in xs], (sig.n_val, *f)),
            "yv": stack([y[n:] for y in ys], (sig.n_val, m)),
            "keys": stack(keys, (ROUNDS,), np.int32),
            "shuffle": stack([m.spec["training"].get("shuffle", True) for m in self.members], (), np.int32),
            "weight": stack([1.0] * k, ()),
        }

    def inputs(self) -> list[np.ndarray]:
        """Each member's features, standardised when it asks."""
        return [
            networks.standardize(m.x, s["mean"], s["variance"]) if s else m.x
            for m, s in zip(self.members, self.stats, strict=True)
        ]

    def targets(self) -> list[np.ndarray]:
        """Each member's y, standardised when it asks: the scale its loss is minimised on."""
        return [
            networks.standardize(m.y, s["target_mean"], s["target_variance"]) if s else m.y
            for m, s in zip(self.members, self.target_stats, strict=True)
        ]

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
                extra = self.evaluator.epoch_rows(self.k)
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
                        diagnostics.check(self.taps, self.plan.single, epoch, row, grad_abs[k], live[k], results[k])
                    rows[k] = row
                self.host_seconds.append(time.perf_counter() - computed)
                errors = {k: results[k].error for k in active if results[k].error}
                active -= set(errors)
                if on_epoch is not None:
                    for k in on_epoch(EpochReport(epoch, rows, errors)) or ():  # type: ignore[arg-type]
                        results[k].stopped = True
                        active.discard(k)
                stop = [k for k in sorted(active) if (st := stoppers[k]) is not None and st.update(epoch, rows[k])]
                self.remember([k for k in sorted(active) if (st := stoppers[k]) is not None and st.best_epoch == epoch])
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

    def params_now(
        self, losses: np.ndarray, grad_abs: np.ndarray, live: np.ndarray
    ) -> tuple[list[dict[str, Any]], np.ndarray]:
        """Each member's threshold parameters as the job shows them, and which members the
        vectorised checks found fine. A network's are by layer name, a list per unit; a single
        layer's by parameter, a number each (a list per feature with `per_feature`)."""
        k, named = self.k, self.model.named()
        arrays = {
            (tap.name, p): ops.convert_to_numpy(named[f"{tap.name}/{p}"])[:k].reshape(k, -1).astype(float)
            for tap in self.taps
            for p in tap.params
        }
        ok = diagnostics.fine(self.taps, losses[:k], grad_abs[:k], live[:k], arrays)  # type: ignore[arg-type]
        if self.plan.single:
            shared = not self.plan.layers[0]["per_feature"]
            columns = {p: (a[:, 0] if shared else a).tolist() for (_, p), a in arrays.items()}
            return [{p: column[i] for p, column in columns.items()} for i in range(k)], ok
        lists = {key: a.tolist() for key, a in arrays.items()}
        values: list[dict[str, Any]] = [{} for _ in range(k)]
        for (layer, p), column in lists.items():
            for i in range(k):
                values[i].setdefault(layer, {})[p] = column[i]
        return values, ok

    def weights_of(self, members: list[int]) -> dict[int, dict[str, np.ndarray]]:
        """These members' weights now, by name, each in its variable's per-member shape."""
        arrays = {name: ops.convert_to_numpy(var) for name, var in self.model.named().items()}
        return {k: {name: np.array(a[k]) for name, a in arrays.items()} for k in members}

    def remember(self, best: list[int]) -> None:
        """Keep the weights of members whose early stopping restores their best epoch, which is the one just run."""
        keep = [
            k
            for k in best
            if (self.members[k].spec["training"].get("early_stopping") or {}).get("restore_best_weights")
        ]
        self.best.update(self.weights_of(keep))

    def end(self, members: list[int], stoppers: list[Stopper | None], results: list[Result]) -> None:
        """Freeze members that stop training; those restoring their best epoch take its weights back."""
        restore = {k: row for k in members if (st := stoppers[k]) is not None and (row := st.restore) is not None}
        for k, row in restore.items():
            results[k].params = row["params"]
        self.model.freeze(members, {k: self.best[k] for k in restore if k in self.best})

    def settle(self, members: list[int], results: list[Result], on_done: OnDone | None) -> None:
        """Give members that finished training their final metrics (`workers.engine.evaluation`)
        and a network's weights; `on_done` takes them over."""
        if not members:
            return
        for k, metrics in self.evaluator.final(members).items():
            results[k].metrics = metrics
        if not self.plan.single:
            weights = self.weights_of(members)
            for k in members:
                plain = {name: a if name.endswith("/kernel") else a.reshape(-1) for name, a in weights[k].items()}
                results[k].weights = {**plain, **self.stats[k], **self.target_stats[k]}
        if on_done is not None:
            on_done({k: results[k] for k in members})
            for k in members:
                results[k].stopped = True

    def artifact(self, member: Member, result: Result) -> bytes:
        """A member's trained model as `.keras` bytes; a network's weights also as .npz for the
        API's predictions (`result.weights_blob`)."""
        if self.plan.single:
            return save_artifact(member, result.params)
        assert result.weights is not None
        result.weights_blob = npz.pack(result.weights)
        steps = member.x.shape[1] if member.x.ndim == 3 else None
        return export.network_artifact(member.spec["model"]["layers"], member.x.shape[-1], result.weights, steps)


def train_group(
    members: list[Member],
    on_epoch: OnEpoch | None = None,
    device: str | None = None,
    artifacts: bool = False,
    on_done: OnDone | None = None,
) -> list[Result]:
    """Train members that share a fuse key together; one Result per member, in order. Members
    that early stopping ends before the others go to `on_done` as they end (with their artifacts)."""
    group = Group(members, device or default_device())

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
