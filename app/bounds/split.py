"""Branch and bound over the input box: the box whose bound is highest is cut in two along the input
that moves its linear bound most, each half is bounded again (`crown`), and the corners and centres
of the halves are tried as inputs. A half that cannot beat the best input found is set aside; the
bound is the highest left. It stops when bound and best are within the tolerance (complete), or at
the work cap or the deadline (incomplete: the bound found so far, still guaranteed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from app.bounds import crown
from app.bounds.model import Op, forward
from app.bounds.relax import Array

REL_TOL = 1e-3  # stop when bound - best is this fraction of the output's first width
MAX_DOMAINS = 20_000  # boxes bounded for one objective at most (the same work on every machine)
MAX_OPEN = 100_000  # boxes kept waiting at most (memory)
CELLS = 2**21  # float64 values one batch's largest array may hold (16 MiB)


@dataclass
class Optimum:
    """max over the box of objective . f: at most `bound` for sure; `value` reached at `x`."""

    bound: float
    x: Array
    value: float
    complete: bool
    domains: int
    open: tuple[Array, Array, Array]  # the boxes left (lo, hi, their bounds), for the exact mode
    closed: float  # the highest bound of the boxes set aside (each at most the best value then)


def batch_size(ops: list[Op], features: int) -> int:
    """Boxes to bound at once so that the backward pass's coefficients stay within CELLS."""
    widths = [features] + [op.b.size for op in ops if hasattr(op, "b")]
    return int(max(1, min(256, CELLS // (2 * max(widths) ** 2 * max(1, len(ops))))))


def maximise(
    ops: list[Op],
    lo: Array,
    hi: Array,
    objective: Array,
    start: tuple[Array, float],
    tol: float,
    deadline: float,
    linear: bool = True,
    max_domains: int = MAX_DOMAINS,
) -> Optimum:
    """Branch and bound for max of objective . f(x) (objective (m,)) over x in [lo, hi] (F,), from a
    known input `start` (x, value); `tol` is the gap at which it is done."""
    c = objective[None, :]
    best_x, best = start
    los, his = lo[None, :].copy(), hi[None, :].copy()
    first = crown.Pass(ops, los, his, linear).upper(c)
    ub, slope = first.value[:, 0], first.slope[:, 0]
    best_x, best = _try(ops, objective, np.concatenate([first.corner[:, 0], (los + his) / 2]), best_x, best)
    closed, done, size = -np.inf, 1, batch_size(ops, lo.size)
    while True:
        keep = ub > best
        closed = max(closed, float(ub[~keep].max(initial=-np.inf)))
        los, his, ub, slope = los[keep], his[keep], ub[keep], slope[keep]
        bound = max(closed, float(ub.max(initial=-np.inf)), best)
        if bound - best <= tol or not len(ub):
            return Optimum(bound, best_x, best, True, done, (los, his, ub), closed)
        if done >= max_domains or len(ub) > MAX_OPEN or time.monotonic() > deadline:
            return Optimum(bound, best_x, best, False, done, (los, his, ub), closed)
        k = min(size, len(ub))
        pick = np.argpartition(-ub, k - 1)[:k]
        rest = np.ones(len(ub), dtype=bool)
        rest[pick] = False
        width = his[pick] - los[pick]
        score = np.abs(slope[pick]) * width
        score = np.where(score.max(axis=1, keepdims=True) > 0, score, width)
        point = width.max(axis=1) <= 0  # a single input: its bound cannot improve by cutting
        if point.any():
            closed = max(closed, float(ub[pick][point].max()))
            pick, score = pick[~point], score[~point]
            if not len(pick):
                ub = ub[rest]
                los, his, slope = los[rest], his[rest], slope[rest]
                continue
        p_lo, p_hi = los[pick], his[pick]
        dim = np.argmax(score, axis=1)
        rows = np.arange(len(pick))
        mid = (p_lo[rows, dim] + p_hi[rows, dim]) / 2
        left_hi, right_lo = p_hi.copy(), p_lo.copy()
        left_hi[rows, dim], right_lo[rows, dim] = mid, mid
        c_lo, c_hi = np.concatenate([p_lo, right_lo]), np.concatenate([left_hi, p_hi])
        up = crown.Pass(ops, c_lo, c_hi, linear).upper(c)
        c_ub = np.minimum(up.value[:, 0], np.tile(ub[pick], 2))  # a half is bounded by its whole too
        done += len(c_ub)
        best_x, best = _try(ops, objective, np.concatenate([up.corner[:, 0], (c_lo + c_hi) / 2]), best_x, best)
        los, his = np.concatenate([los[rest], c_lo]), np.concatenate([his[rest], c_hi])
        ub, slope = np.concatenate([ub[rest], c_ub]), np.concatenate([slope[rest], up.slope[:, 0]])


def _try(ops: list[Op], objective: Array, xs: Array, best_x: Array, best: float) -> tuple[Array, float]:
    """The better of the best so far and the best of inputs xs."""
    with np.errstate(all="ignore"):
        values = forward(ops, xs) @ objective
    values = np.where(np.isnan(values), -np.inf, values)
    i = int(np.argmax(values))
    return (xs[i].copy(), float(values[i])) if values[i] > best else (best_x, best)
