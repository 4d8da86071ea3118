"""What an epoch's numbers say about a member: diverged (an error), stalled parameters or a bump
whose support misses the data (warnings with the fix), and the final metrics."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from workers.engine.step import Compiled

SPARSE_SUPPORT = 1e-3  # below this fraction of samples inside the bump's support, sigma stalls
SIGMA_FIX = (
    "Set layer.sigma_init to a value that covers part of the data (e.g. 0.05 for x in [-1, 1]), "
    "or leave it null to draw from [0.01, 0.1)."
)


def num(v: Any) -> float | None:
    """A finite float, or None (JSON has no NaN or infinity)."""
    v = float(v)
    return v if math.isfinite(v) else None


def fine(
    layer_type: str, losses: np.ndarray, grad_abs: np.ndarray, live: np.ndarray, arrays: dict[str, np.ndarray]
) -> np.ndarray:
    """Members with nothing for `diagnose` to report, all at once: finite, with gradients, and
    (a bump) with samples inside the support."""
    ok: np.ndarray = np.isfinite(losses) & np.all(grad_abs != 0, axis=1)
    for a in arrays.values():
        ok &= np.all(np.isfinite(a), axis=1)
    return ok & (live >= SPARSE_SUPPORT) if layer_type == "bump" else ok


def diagnose(
    layer_type: str,
    names: Sequence[str],
    epoch: int,
    row: dict[str, Any],
    grad_abs: np.ndarray,
    live: float,
    result: Any,
) -> None:
    """Non-finite loss or parameters fail the member; a parameter with no gradient, or a bump
    whose support holds almost no sample, is a warning with the fix."""
    values = np.concatenate([np.ravel(v) for v in row["params"].values()])
    if row["loss"] is None or not np.all(np.isfinite(values)):
        result.error = {
            "type": "diverged",
            "message": f"training diverged in epoch {epoch}: loss "
            f"{row['loss']} with parameters {row['params']}; lower training.learning_rate "
            "or change the initial values",
        }
        return
    for name, g in zip(names, grad_abs, strict=True):
        if g == 0 and not any(w["parameter"] == name for w in result.warnings):
            result.warnings.append(
                {
                    "type": "zero_gradient",
                    "parameter": name,
                    "epoch": str(epoch),
                    "message": zero_gradient_advice(layer_type, name, epoch, row["params"]),
                }
            )
    if layer_type == "bump" and live < SPARSE_SUPPORT and not result.warnings:
        result.warnings.append(
            {
                "type": "sparse_support",
                "parameter": "sigma",
                "epoch": str(epoch),
                "message": f"only {live:.2e} of the samples fell inside the support |x| < sigma = "
                f"{row['params']['sigma']} in epoch {epoch}, so sigma gets almost no gradient. " + SIGMA_FIX,
            }
        )


def zero_gradient_advice(layer_type: str, name: str, epoch: int, params: dict[str, Any]) -> str:
    """Why a parameter got no gradient, and what to change."""
    head = f"{name} received zero gradient through all of epoch {epoch} and did not move"
    if layer_type == "bump":
        return f"{head}: no training sample fell inside the support |x| < sigma = {params['sigma']}. " + SIGMA_FIX
    return (
        f"{head}: every sample is far outside the gaussian's width; start with a smaller b_init "
        "or a c_init nearer the data."
    )


def metrics(model: Compiled, members: list[int]) -> dict[int, dict[str, float | None]]:
    """Final loss, mae and r2 (keras.metrics) on the training rows, and on validation rows if any,
    of `members`: one pass of the compiled model, then the metrics on those members' rows alone
    (R2Score without class aggregation gives one score per member column, each its own)."""
    out: dict[int, dict[str, float | None]] = {k: {} for k in members}
    if not members:
        return out
    m, f, pick = model, model.sig.features, np.asarray(members)
    sets = [("", m.x, m.y)] + ([("val_", m.xv, m.yv)] if model.sig.n_val else [])
    for prefix, x, y in sets:
        loss, pred = m.evaluate(x, y)
        y, pred = ops.take(y, pick, axis=0), ops.take(pred, pick, axis=0)
        mae = ops.mean(keras.metrics.mean_absolute_error(y, pred), axis=1)

        def columns(t: Any) -> Any:
            return ops.reshape(ops.transpose(t, (1, 0, 2)), (-1, len(members) * f))

        r2 = keras.metrics.R2Score(class_aggregation=None)
        r2.update_state(columns(y), columns(pred))
        scores = {
            "loss": ops.convert_to_numpy(loss)[pick],
            "mae": ops.convert_to_numpy(mae),
            "r2": ops.convert_to_numpy(r2.result()).reshape(len(members), f).mean(axis=1),
        }
        for i, k in enumerate(members):
            out[k].update({f"{prefix}{name}": num(v[i]) for name, v in scores.items()})
    return out
