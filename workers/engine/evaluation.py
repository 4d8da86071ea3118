"""What a job reports besides its parameters: each epoch's validation loss and asked metrics, and
its final metrics, by one rule for every job.

The final metrics are those of the weights a job ends with (its last epoch's, or its best
epoch's where early stopping restores them), evaluated on the whole training split and the whole
validation split once training ends: `loss`, `val_loss` and each metric (a network's
`training.metrics`; a single layer's are always `mae` and `r2`). With `data.normalize_target`
every number is in y's own units: raw y against the predictions taken back to y's units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops

from app.model import networks
from workers.engine import netmetrics
from workers.engine.diagnostics import num
from workers.engine.step import Compiled

SINGLE_LAYER_METRICS = ["mae", "r2"]  # a single layer's final metrics besides its loss


def statistics(spec: dict[str, Any], x: np.ndarray, key: str, prefix: str = "") -> dict[str, np.ndarray]:
    """Mean and variance of the training rows x when `data.<key>` is "standard", named with
    `prefix` (`mean`, `target_mean`), else {}."""
    if spec.get("data", {}).get(key) != "standard":
        return {}
    mean, variance = networks.statistics(x)
    return {f"{prefix}mean": mean, f"{prefix}variance": variance}


class Evaluator:
    """The numbers of a group's members: after each epoch and when they end."""

    def __init__(
        self,
        model: Compiled,
        spec: dict[str, Any],
        single: bool,
        ys: list[np.ndarray],
        target_stats: list[dict[str, np.ndarray]],
    ) -> None:
        """`ys`: each member's raw y; `target_stats`: each member's target statistics when y is
        standardised on the device (all members or none: `data.normalize_target` is in the fuse key)."""
        self.model, self.sig, self.single = model, model.sig, single
        t = spec["training"]
        self.loss = t["loss"]
        self.epoch_metrics: list[str] = [] if single else list(t.get("metrics", []))
        self.final_metrics = SINGLE_LAYER_METRICS if single else self.epoch_metrics
        n = self.sig.n_train
        self.raw = {"": [y[:n] for y in ys], "val_": [y[n:] for y in ys]}
        self.target_stats, self.scaled = target_stats, bool(target_stats and target_stats[0])

    def splits(self, train: bool) -> list[tuple[str, Any, Any]]:
        """The splits to evaluate: the validation split where there is one, the training one if asked."""
        m = self.model
        return ([("", m.x, m.y)] if train else []) + ([("val_", m.xv, m.yv)] if self.sig.n_val else [])

    def scores(self, prefix: str, x: Any, y: Any, pick: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """The loss and the metrics `names` of members `pick` on one split, in y's units."""
        loss, pred = self.model.evaluate(x, y)
        y_k, pred_k = ops.take(y, pick, axis=0), ops.take(pred, pick, axis=0)
        if self.scaled:
            y_k = np.stack([self.raw[prefix][k] for k in pick]).astype(np.float32)
            mean = np.stack([self.target_stats[k]["target_mean"] for k in pick])[:, None, :]
            variance = np.stack([self.target_stats[k]["target_variance"] for k in pick])[:, None, :]
            pred_k = networks.destandardize(ops.convert_to_numpy(pred_k), mean, variance)
            loss = self.model.member_loss(y_k, pred_k, np.ones((1, y_k.shape[1]), np.float32))
        else:
            loss = ops.take(loss, pick, axis=0)
        return {"loss": ops.convert_to_numpy(loss), **netmetrics.compute(names, self.loss, y_k, pred_k)}

    def epoch_rows(self, k: int) -> list[dict[str, Any]]:
        """What each member's history row adds after its loss: the validation loss (None without
        validation rows) and, for a network, its metrics on both splits. A group that standardises
        y reports the training split's loss after the epoch's steps too, in y's units."""
        rows: list[dict[str, Any]] = [
            {"val_loss": None} if self.single else {"val_loss": None, "metrics": {}} for _ in range(k)
        ]
        pick = np.arange(k)
        for prefix, x, y in self.splits(bool(self.epoch_metrics) or self.scaled):
            scores = self.scores(prefix, x, y, pick, self.epoch_metrics)
            for name, values in scores.items():
                if name == "loss":
                    if prefix or self.scaled:
                        for i in range(k):
                            rows[i][prefix + "loss"] = num(values[i])
                    continue
                for i in range(k):
                    rows[i]["metrics"][prefix + name] = num(values[i])
        return rows

    def final(self, members: list[int]) -> dict[int, dict[str, float | None]]:
        """The final metrics of `members` (the module's rule), from their weights now."""
        out: dict[int, dict[str, float | None]] = {k: {} for k in members}
        pick = np.asarray(members)
        for prefix, x, y in self.splits(True):
            for name, values in self.scores(prefix, x, y, pick, self.final_metrics).items():
                for i, k in enumerate(members):
                    out[k][prefix + name] = num(values[i])
        return out
