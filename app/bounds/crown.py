"""Guaranteed bounds on a model's outputs over a batch of boxes.

Interval bounds pass through every operation; backward linear bounds (CROWN: each element-wise
operation replaced by its lines from `relax`, each affine map's float32 rounding by its margin)
tighten the inputs of every element-wise operation and the outputs, and the tighter of the two is
kept each time. All in float64, vectorised over the boxes (B) and the objectives (r).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.bounds.model import Affine, Op
from app.bounds.relax import Array, Elementwise, Softmax


@dataclass
class Upper:
    """Upper bounds on objective . y over each box (B, r), the box corners where their linear form is
    greatest (B, r, F: candidates for the search) and that form's slopes on the inputs (B, r, F)."""

    value: Array
    corner: Array
    slope: Array


def _weighted(lam: Array, values: Array) -> Array:
    """sum_n lam[b, r, n] * values[b, n], where a zero coefficient adds nothing (not 0 * inf)."""
    return np.where(lam != 0, lam * values[:, None, :], 0.0).sum(axis=-1)  # type: ignore[no-any-return]


class Pass:
    """One batch of boxes through the operations: each operation's input bounds, its lines or margin."""

    def __init__(self, ops: list[Op], lo: Array, hi: Array, linear: bool = True) -> None:
        self.ops, self.lo, self.hi, self.linear = ops, lo, hi, linear
        self.inputs: list[tuple[Array, Array]] = []  # bounds on each operation's input
        self.lines: dict[int, tuple[Array, Array, Array, Array]] = {}
        self.margins: dict[int, Array] = {}
        cur = (lo, hi)
        for i, op in enumerate(ops):
            self.inputs.append(cur)
            if isinstance(op, Affine):
                self.margins[i] = op.margin(*cur)
            elif isinstance(op, Elementwise) and linear:
                self.lines[i] = op.linear(*cur)
            if isinstance(op, Softmax):
                break
            out = op.interval(*cur)
            feeds = i + 1 < len(ops) and not isinstance(ops[i + 1], Affine)
            if linear and feeds:  # the next operation's relaxation needs its input's bounds tight
                n = out[0].shape[-1]
                both = np.concatenate([np.eye(n), -np.eye(n)])
                up = self.back(i, np.broadcast_to(both, (len(lo), 2 * n, n))).value
                out = (np.maximum(out[0], -up[:, n:]), np.minimum(out[1], up[:, :n]))
            cur = out
        self.output = cur if not isinstance(ops[-1], Softmax) else ops[-1].interval(*cur)

    def back(self, upto: int, lam: Array) -> Upper:
        """Upper bounds on lam . (the output of operation `upto`), by backward substitution."""
        const = np.zeros(lam.shape[:2])
        for k in range(upto, -1, -1):
            op = self.ops[k]
            if isinstance(op, Affine):
                const = const + lam @ op.b + np.einsum("brn,bn->br", np.abs(lam), self.margins[k])
                lam = op.back(lam)
            elif isinstance(op, Elementwise):
                a_lo, b_lo, a_hi, b_hi = self.lines[k]
                pos, neg = np.maximum(lam, 0.0), np.minimum(lam, 0.0)
                const = const + _weighted(pos, b_hi) + _weighted(neg, b_lo)
                lam = pos * a_hi[:, None, :] + neg * a_lo[:, None, :]
        lo, hi = self.lo[:, None, :], self.hi[:, None, :]
        value = const + np.where(lam > 0, lam * hi, np.where(lam < 0, lam * lo, 0.0)).sum(axis=-1)
        return Upper(np.where(np.isnan(value), np.inf, value), np.where(lam > 0, hi, lo), lam)

    def upper(self, objective: Array) -> Upper:
        """Upper bounds on objective . y (objective (r, m)) over each box: the interval bound, or the
        backward linear one where it is tighter."""
        y_lo, y_hi = self.output
        c = np.broadcast_to(objective, (len(self.lo), *objective.shape))
        interval = _weighted(np.maximum(c, 0.0), y_hi) + _weighted(np.minimum(c, 0.0), y_lo)
        centre = np.broadcast_to(((self.lo + self.hi) / 2)[:, None, :], (*c.shape[:2], self.lo.shape[1]))
        if not self.linear or isinstance(self.ops[-1], Softmax):
            return Upper(interval, centre, np.zeros_like(centre))
        crown = self.back(len(self.ops) - 1, c)
        better = crown.value <= interval
        return Upper(np.where(better, crown.value, interval), crown.corner, crown.slope)


def output_bounds(ops: list[Op], lo: Array, hi: Array, linear: bool = True) -> tuple[Array, Array]:
    """(lower, upper) on every output over each box (B, m)."""
    p = Pass(ops, lo, hi, linear)
    m = p.output[0].shape[-1]
    up = p.upper(np.concatenate([np.eye(m), -np.eye(m)])).value
    return -up[:, m:], up[:, :m]
