"""What an epoch's numbers say about a member: diverged (an error), stalled parameters or a bump
whose support misses the data (warnings with the fix), and the final metrics."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SPARSE_SUPPORT = 1e-3  # below this fraction of samples inside the bump's support, sigma stalls
SIGMA_FIX = (
    "Set layer.sigma_init to a value that covers part of the data (e.g. 0.05 for x in [-1, 1]), "
    "or leave it null to draw from [0.01, 0.1)."
)


def num(v: Any) -> float | None:
    """A finite float, or None (JSON has no NaN or infinity)."""
    v = float(v)
    return v if math.isfinite(v) else None


@dataclass(frozen=True)
class Tap:
    """A threshold layer of a network: its index in `model.layers`, name, type, parameters and
    the columns of its parameters in an epoch's |gradient| sums."""

    index: int
    name: str
    type: str
    params: tuple[str, ...]
    grads: tuple[int, ...]


def fine(
    taps: list[Tap], losses: np.ndarray, grad_abs: np.ndarray, live: np.ndarray, arrays: dict[str, np.ndarray]
) -> np.ndarray:
    """Members with nothing for `check` to report, all at once: finite, every threshold parameter
    with a gradient, and each bump layer with inputs inside its support (`live`: per tap)."""
    ok: np.ndarray = np.isfinite(losses)
    for a in arrays.values():
        ok &= np.all(np.isfinite(a), axis=1)
    for i, tap in enumerate(taps):
        ok &= np.all(grad_abs[:, list(tap.grads)] != 0, axis=1)
        if tap.type == "bump":
            ok &= live[:, i] >= SPARSE_SUPPORT
    return ok


def check(
    taps: list[Tap], single: bool, epoch: int, row: dict[str, Any], grad_abs: np.ndarray, live: np.ndarray, result: Any
) -> None:
    """A member `fine` flagged: a single layer as `diagnose` says; a network fails when its loss
    or a threshold parameter is not finite, and is warned per threshold layer like a single layer."""
    if single:
        tap = taps[0]
        diagnose(tap.type, tap.params, epoch, row, grad_abs[list(tap.grads)], float(live[0]), result)
        return
    values = [np.ravel(v) for layer in row["params"].values() for v in layer.values()]
    if row["loss"] is None or not all(np.all(np.isfinite(np.asarray(v, float))) for v in values):
        result.error = {
            "type": "diverged",
            "message": f"training diverged in epoch {epoch}: loss {row['loss']}; lower training.learning_rate, "
            "normalise the features (data.normalize: standard) or change the initial values",
        }
        return
    for i, tap in enumerate(taps):
        warned = {w["parameter"] for w in result.warnings}
        for p, g in zip(tap.params, grad_abs[list(tap.grads)], strict=True):
            label = f"{tap.name}.{p}"
            if g == 0 and label not in warned:
                result.warnings.append(
                    warning("zero_gradient", label, epoch, network_advice(tap, label, epoch, "no gradient"))
                )
        warned = {w["parameter"] for w in result.warnings}
        if tap.type == "bump" and live[i] < SPARSE_SUPPORT and not warned & {f"{tap.name}.{p}" for p in tap.params}:
            why = f"only {live[i]:.2e} of its outputs were inside the support |x| < sigma"
            result.warnings.append(
                warning(
                    "sparse_support", f"{tap.name}.sigma", epoch, network_advice(tap, f"{tap.name}.sigma", epoch, why)
                )
            )


def warning(kind: str, parameter: str, epoch: int, message: str) -> dict[str, str]:
    """A warning as a job stores it."""
    return {"type": kind, "parameter": parameter, "epoch": str(epoch), "message": message}


def network_advice(tap: Tap, label: str, epoch: int, why: str) -> str:
    """Why a network's threshold parameter hardly moved in `epoch`, and what to change."""
    start = ", ".join(f"model.layers.{tap.index}.{p}_init" for p in tap.params)
    return (
        f"{label} got {why} in epoch {epoch}: the inputs of {tap.name} fall where its outputs are 0 "
        f"or flat. Normalise the features (data.normalize: standard) or start it nearer them ({start})."
    )


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
            advice = zero_gradient_advice(layer_type, name, epoch, row["params"])
            result.warnings.append(warning("zero_gradient", name, epoch, advice))
    if layer_type == "bump" and live < SPARSE_SUPPORT and not result.warnings:
        advice = (
            f"only {live:.2e} of the samples fell inside the support |x| < sigma = "
            f"{row['params']['sigma']} in epoch {epoch}, so sigma gets almost no gradient. " + SIGMA_FIX
        )
        result.warnings.append(warning("sparse_support", "sigma", epoch, advice))


def zero_gradient_advice(layer_type: str, name: str, epoch: int, params: dict[str, Any]) -> str:
    """Why a parameter got no gradient, and what to change."""
    head = f"{name} received zero gradient through all of epoch {epoch} and did not move"
    if layer_type == "bump":
        return f"{head}: no training sample fell inside the support |x| < sigma = {params['sigma']}. " + SIGMA_FIX
    return (
        f"{head}: every sample is far outside the gaussian's width; start with a smaller b_init "
        "or a c_init nearer the data."
    )
