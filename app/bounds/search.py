"""Inputs that reach far: seeded random samples of the box, then L-BFGS-B (SciPy) from the best of
them, on the model's float64 form. Deterministic for a given seed; bounded by a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from app.bounds.relax import Array

SAMPLES = 4096  # random inputs tried first
STARTS = 4  # of which the best few start a local search each
MAX_ITER = 60  # L-BFGS-B iterations per start
MAX_LOCAL_FEATURES = 256  # wider inputs: samples only (a gradient costs 2 F evaluations)
STEP = 1e-6  # central differences' step, as a fraction of each input's width


def reach(
    f: Callable[[Array], Array], lo: Array, hi: Array, objectives: Array, seed: int, deadline: float
) -> tuple[Array, Array]:
    """For each objective c (rows of `objectives`, (r, m)), an input x in [lo, hi] with c . f(x) high,
    and that value: (xs (r, F), values (r,))."""
    rng = np.random.default_rng(seed)
    xs = np.concatenate([((lo + hi) / 2)[None], lo[None], hi[None], rng.uniform(lo, hi, (SAMPLES, lo.size))])
    with np.errstate(all="ignore"):
        scores = np.nan_to_num(f(xs) @ objectives.T, nan=-np.inf)  # (n, r)
    best_x = xs[np.argmax(scores, axis=0)].copy()
    best = scores.max(axis=0)
    if lo.size > MAX_LOCAL_FEATURES:
        return best_x, best
    step = STEP * np.maximum(hi - lo, 1e-12)
    bounds = list(zip(lo.tolist(), hi.tolist(), strict=True))
    for j, c in enumerate(objectives):
        for i in np.argsort(-scores[:, j], kind="stable")[:STARTS]:
            if time.monotonic() > deadline:
                return best_x, best
            x, v = _climb(f, c, xs[i], lo, hi, step, bounds)
            if v > best[j]:
                best_x[j], best[j] = x, v
    return best_x, best


def _climb(
    f: Callable[[Array], Array],
    c: Array,
    x0: Array,
    lo: Array,
    hi: Array,
    step: Array,
    bounds: list[tuple[float, float]],
) -> tuple[Array, float]:
    """L-BFGS-B on -c . f from x0 with central-difference gradients (one batched evaluation each)."""
    eye = np.diag(step)

    def negative(x: Array) -> tuple[float, Array]:
        pts = np.concatenate([x[None], np.clip(x + eye, lo, hi), np.clip(x - eye, lo, hi)])
        with np.errstate(all="ignore"):
            v = f(pts) @ c
        if not np.all(np.isfinite(v)):
            return float("inf"), np.zeros_like(x)
        n = x.size
        span = np.clip(x + step, lo, hi) - np.clip(x - step, lo, hi)
        grad = np.where(span > 0, (v[1 : n + 1] - v[n + 1 :]) / np.where(span > 0, span, 1.0), 0.0)
        return -float(v[0]), -grad

    from scipy.optimize import minimize  # SciPy on first use: not on the API's start-up

    res = minimize(negative, x0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": MAX_ITER})
    x = np.clip(res.x, lo, hi)
    with np.errstate(all="ignore"):
        v = float(f(x[None])[0] @ c)
    return x, v if np.isfinite(v) else -np.inf
