"""A group of networks: jobs with the same architecture, data shape and training settings trained
as one compiled model, with a members axis through every layer (`workers.network.Stack`).

Each member draws its starting weights, then its row-order keys, from its own training seed; its
features are standardised with its own training split's statistics when it asks (`data.normalize`),
and the statistics go into its artifact, so predictions take raw features. With
`data.normalize_target` its y is standardised the same way: the optimiser sees that scale, while the
predictions, the artifact and every number reported are in y's own units. After every epoch each
member's history row gets its threshold parameters by layer name, its validation loss and the
metrics it asked on both splits (evaluated on the whole split after the epoch's steps).
"""

from __future__ import annotations

import json
from typing import Any

import keras
import numpy as np
from keras import ops

from app import networks
from app.data import split
from workers import network
from workers.engine import export, netmetrics
from workers.engine.diagnostics import num
from workers.engine.factory import compiled_for
from workers.engine.group import GROUPS, Group, Member, OnDone, Result, bucket
from workers.engine.shuffle import draw_keys
from workers.engine.step import Signature
from workers.engine.stopping import Stopper

ARCHITECTURE_KEYS = ("type", "units", "activation", "use_bias")  # what the compiled model depends on


def net_signature(spec: dict[str, Any], k: int, n: int, features: int, targets: int, device: str) -> Signature:
    """The compiled step's signature for a group of k network jobs of this spec."""
    t = spec["training"]
    n_train, n_val = split(n, t["validation_split"])
    layers = [{key: lay[key] for key in ARCHITECTURE_KEYS if key in lay} for lay in spec["model"]["layers"]]
    return Signature(
        "network",
        False,
        bucket(k),
        n_train,
        n_val,
        features,
        t["batch_size"],
        t["optimizer"],
        t["loss"],
        device,
        net=json.dumps(layers, sort_keys=True),
        targets=targets,
    )


def statistics(member: Member, n_train: int) -> dict[str, np.ndarray]:
    """The member's normalisation (mean, variance of its training rows), or {} without `normalize`."""
    if member.spec["data"].get("normalize") != "standard":
        return {}
    mean, variance = networks.statistics(member.x[:n_train])
    return {"mean": mean, "variance": variance}


def target_statistics(member: Member, n_train: int) -> dict[str, np.ndarray]:
    """The member's target standardisation (mean, variance of y's training rows), or {} without
    `normalize_target`."""
    if member.spec["data"].get("normalize_target") != "standard":
        return {}
    mean, variance = networks.statistics(member.y[:n_train])
    return {"target_mean": mean, "target_variance": variance}


class NetworkGroup(Group):
    """Networks that train as one compiled model, each with its own data, seed and weights."""

    def __init__(self, members: list[Member], device: str) -> None:  # noqa: D107 - the class says it
        first = members[0].spec
        t = first["training"]
        self.members, self.device, self.k = members, device, len(members)
        self.layer_type = "network"
        self.epochs = t["epochs"]
        self.layers: list[dict[str, Any]] = first["model"]["layers"]
        self.loss, self.metric_names = t["loss"], list(t.get("metrics", []))
        n, features = members[0].x.shape
        self.sig = net_signature(first, self.k, n, features, members[0].y.shape[1], device)
        self.stats = [statistics(m, self.sig.n_train) for m in members]
        # data.normalize_target is in the fuse key: every member of a group standardises y, or none
        self.target_stats = [target_statistics(m, self.sig.n_train) for m in members]
        self.scaled = bool(self.target_stats[0])
        rngs = [np.random.default_rng(m.spec["training"]["seed"]) for m in members]
        starts = [
            network.initial_weights(m.spec["model"]["layers"], features, r) for m, r in zip(members, rngs, strict=True)
        ]
        keys = [draw_keys(r) for r in rngs]  # after the weights: each job's own draws, whatever its group
        self.model = compiled_for(self.sig)
        named = self.model.named()
        pad = [starts[0]] * (self.sig.k - self.k)
        inits = {name: np.stack([s[name] for s in starts + pad]).reshape(var.shape) for name, var in named.items()}
        with keras.device(device):
            self.model.load(self.arrays(keys), inits, t["learning_rate"], self.epochs)
        self.layer = self.model.layer
        self.thresholds: dict[str, tuple[str, ...]] = self.layer.thresholds()
        self.best: dict[int, dict[str, np.ndarray]] = {}  # early stopping's best weights, by member
        self.final_rows: dict[int, dict[str, Any]] = {}  # the rows restored members end with
        self.host_seconds: list[float] = []

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

    def in_units(self, prefix: str, pred: Any) -> tuple[np.ndarray, np.ndarray]:
        """The members' raw y of a split ("" or "val_") and their predictions (k, rows, m) back in y's units."""
        n = self.sig.n_train
        y = np.stack([m.y[n:] if prefix else m.y[:n] for m in self.members]).astype(np.float32)
        mean = np.stack([s["target_mean"] for s in self.target_stats])[:, None, :]
        variance = np.stack([s["target_variance"] for s in self.target_stats])[:, None, :]
        return y, networks.destandardize(ops.convert_to_numpy(pred), mean, variance)

    def evaluate_epoch(self) -> list[dict[str, Any]]:
        """Each member's validation loss and its metrics on both splits. A group that standardises
        y reports the loss of both splits (the training split's after the epoch's steps) and the
        metrics in y's units: raw y against the predictions taken back to y's units."""
        k = self.k
        rows: list[dict[str, Any]] = [{"val_loss": None, "metrics": {}} for _ in range(self.sig.k)]
        splits = [("val_", self.model.xv, self.model.yv)] if self.sig.n_val else []
        if self.metric_names or self.scaled:
            splits.insert(0, ("", self.model.x, self.model.y))
        for prefix, x, y in splits:
            loss, pred = self.model.evaluate(x, y)
            y_k, pred_k = ops.take(y, np.arange(k), axis=0), ops.take(pred, np.arange(k), axis=0)
            if self.scaled:
                y_k, pred_k = self.in_units(prefix, pred_k)
                loss = self.model.member_loss(y_k, pred_k, np.ones((1, y_k.shape[1]), np.float32))
            if prefix or self.scaled:
                for i, v in enumerate(ops.convert_to_numpy(loss)[:k].tolist()):
                    rows[i][prefix + "loss"] = num(v)
            if self.metric_names:
                for name, values in netmetrics.compute(self.metric_names, self.loss, y_k, pred_k).items():
                    for i in range(k):
                        rows[i]["metrics"][prefix + name] = num(values[i])
        return rows

    def params_now(
        self, losses: np.ndarray, grad_abs: np.ndarray, live: np.ndarray
    ) -> tuple[list[dict[str, Any]], np.ndarray]:
        """Each member's threshold parameters by layer name (a list per unit); members are fine
        while their loss and parameters are finite."""
        named = self.model.named()
        ok = np.isfinite(losses[: self.k])
        values: list[dict[str, Any]] = [{} for _ in range(self.k)]
        for layer, params in self.thresholds.items():
            for p in params:
                a = ops.convert_to_numpy(named[f"{layer}/{p}"])[: self.k].reshape(self.k, -1).astype(float)
                ok &= np.all(np.isfinite(a), axis=1)
                for i in range(self.k):
                    values[i].setdefault(layer, {})[p] = a[i].tolist()
        return values, ok

    def diagnose(self, epoch: int, row: dict[str, Any], grad_abs: np.ndarray, live: float, result: Result) -> None:
        """A member whose loss or parameters stopped being finite has diverged."""
        result.error = {
            "type": "diverged",
            "message": f"training diverged in epoch {epoch}: loss {row['loss']}; lower training.learning_rate, "
            "normalise the features (data.normalize: standard) or change the initial values",
        }

    def weights_of(self, members: list[int]) -> dict[int, dict[str, np.ndarray]]:
        """These members' weights now, by name, each in its variable's per-member shape."""
        arrays = {name: ops.convert_to_numpy(var) for name, var in self.model.named().items()}
        return {k: {name: np.array(a[k]) for name, a in arrays.items()} for k in members}

    def remember(self, epoch: int, best: list[int]) -> None:
        """Keep the weights of members whose early stopping restores their best epoch, which is this one."""
        keep = [
            k
            for k in best
            if (self.members[k].spec["training"].get("early_stopping") or {}).get("restore_best_weights")
        ]
        self.best.update(self.weights_of(keep))

    def end(self, members: list[int], stoppers: list[Stopper | None], results: list[Result]) -> None:
        """Freeze members that stop; those restoring their best epoch take its weights back."""
        restore = {k: row for k in members if (st := stoppers[k]) is not None and (row := st.restore) is not None}
        for k, row in restore.items():
            results[k].params = row["params"]
            self.final_rows[k] = row
        self.model.freeze(members, {k: self.best[k] for k in restore if k in self.best})

    def settle(self, members: list[int], results: list[Result], on_done: OnDone | None) -> None:
        """Final metrics (the last epoch's, or the restored best epoch's) and weights of members that finished."""
        if not members:
            return
        weights = self.weights_of(members)
        for k in members:
            row = self.final_rows.get(k) or (results[k].history[-1] if results[k].history else {})
            results[k].metrics = {"loss": row.get("loss"), "val_loss": row.get("val_loss"), **row.get("metrics", {})}
            results[k].weights = {**self.plain_weights(weights[k]), **self.stats[k], **self.target_stats[k]}
        if on_done is not None:
            on_done({k: results[k] for k in members})
            for k in members:
                results[k].stopped = True

    def artifact(self, member: Member, result: Result) -> bytes:
        """A member's plain Keras network as `.keras` bytes, and its weights for the API."""
        return network_artifact(member, result)

    def plain_weights(self, member: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A member's weights in the plain network's shapes: kernels (in, out), the rest (units,)."""
        return {name: a if name.endswith("/kernel") else a.reshape(-1) for name, a in member.items()}


def network_artifact(member: Member, result: Result) -> bytes:
    """A network member's `.keras` file (a plain Keras Sequential, normalisation first, from its
    shape's template), and its weights as .npz for the API (`result.weights_blob`)."""
    assert result.weights is not None
    result.weights_blob = networks.pack(result.weights)
    return export.network_artifact(member.spec["model"]["layers"], member.x.shape[1], result.weights)


GROUPS["model"] = NetworkGroup
