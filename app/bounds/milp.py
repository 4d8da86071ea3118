"""The exact mode for ReLU networks: the largest value of an output over the box as a mixed-integer
linear program (one binary per ReLU whose input can take both signs, big-M with the bounds `crown`
found), solved by HiGHS through `scipy.optimize.milp`. Its dual bound, widened by the solver's
tolerance and by float32's rounding of the forward pass, is the guaranteed bound; its solution is
an input that reaches it."""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass

import numpy as np

from app.bounds.crown import Pass
from app.bounds.model import Affine, Op
from app.bounds.relax import Array
from app.bounds.split import Optimum

MAX_BINARIES = 24  # ReLUs of both signs in one box past which the exact mode gives up (HiGHS slows)
MAX_BOXES = 2000  # boxes solved as MILPs (or cut) for one objective at most
SOLVER_SLACK = 1e-6  # the solver's tolerances, relative to the optimum's size


@dataclass
class Exact:
    """max of objective . f over the box: `bound` guaranteed, `value` at `x`; `optimal` when solved."""

    bound: float
    x: Array
    value: float
    optimal: bool


def _layers(ops: list[Op]) -> list[tuple[Array, Array, int]]:
    """The affine maps between ReLUs, each run folded into one (W, b), with the index of the operation
    whose input it gives (the ReLU's, or len(ops) for the output)."""
    out: list[tuple[Array, Array, int]] = []
    w: Array | None = None
    b: Array | None = None
    for k, op in enumerate(ops):
        if isinstance(op, Affine):
            wk = np.diag(op.w) if op.w.ndim == 1 else op.w
            w, b = (wk, op.b) if w is None or b is None else (wk @ w, wk @ b + op.b)
            continue
        assert w is not None and b is not None, "a ReLU follows an affine map"
        out.append((w, b, k))
        w, b = None, None
    if w is not None and b is not None:
        out.append((w, b, len(ops)))
    return out


class Program:
    """The network's constraints over one box, shared by every objective: variables x, then each
    ReLU's output y and a binary per ReLU of both signs; z = W y_prev + b is written out in place."""

    def __init__(self, ops: list[Op], lo: Array, hi: Array) -> None:
        self.pass_ = Pass(ops, lo[None], hi[None])
        self.ops, self.features = ops, lo.size
        rows: list[tuple[list[int], list[float], float, float]] = []  # (columns, values, lb, ub)
        var_lo, var_hi, integer = list(lo), list(hi), [0] * lo.size
        cur = list(range(lo.size))  # the variables the next affine map reads
        self.binaries = 0
        *hidden, (self.w, self.b, _) = _layers(ops)
        for w, b, k in hidden:
            l_in, u_in = (bound[0] for bound in self.pass_.inputs[k])
            start = len(var_lo)
            var_lo.extend([0.0] * len(b))
            var_hi.extend(np.maximum(u_in, 0.0).tolist())
            integer.extend([0] * len(b))
            for i in range(len(b)):
                y, low, high = start + i, float(l_in[i]), float(u_in[i])
                nz = np.flatnonzero(w[i])
                z_cols, z_vals = [cur[j] for j in nz], (-w[i, nz]).tolist()
                if high <= 0:
                    continue  # y = 0 by its bounds
                if low >= 0:  # y = z
                    rows.append(([y, *z_cols], [1.0, *z_vals], b[i], b[i]))
                    continue
                a = len(var_lo)
                var_lo.append(0.0)
                var_hi.append(1.0)
                integer.append(1)
                self.binaries += 1
                rows.append(([y, *z_cols], [1.0, *z_vals], b[i], np.inf))  # y >= z
                rows.append(([y, *z_cols, a], [1.0, *z_vals, -low], -np.inf, b[i] - low))  # y <= z - low (1 - a)
                rows.append(([y, a], [1.0, -high], -np.inf, 0.0))  # y <= high a
            cur = list(range(start, start + len(b)))
        self.last, self.size = cur, len(var_lo)
        from scipy.optimize import Bounds, LinearConstraint  # SciPy on first use: not on the API's start-up
        from scipy.sparse import coo_matrix

        cols = [c for r in rows for c in r[0]]
        data = [v for r in rows for v in r[1]]
        rix = [i for i, r in enumerate(rows) for _ in r[0]]
        a_mat = coo_matrix((data, (rix, cols)), shape=(len(rows), self.size)).tocsr()
        self.constraint = LinearConstraint(a_mat, [r[2] for r in rows], [r[3] for r in rows])
        self.bounds, self.integrality = Bounds(var_lo, var_hi), np.array(integer)

    def maximise(self, objective: Array, seconds: float) -> Exact:
        """max objective . f over the box, within `seconds`."""
        from scipy.optimize import milp

        c = np.zeros(self.size)
        c[self.last] = -(objective @ self.w)
        offset = float(objective @ self.b)
        res = milp(
            c,
            integrality=self.integrality,
            bounds=self.bounds,
            constraints=self.constraint,
            options={"time_limit": max(seconds, 0.01), "mip_rel_gap": 1e-9},
        )
        if res.x is None:
            return Exact(np.inf, np.zeros(self.features), -np.inf, False)
        value = offset - float(res.fun)
        reported = getattr(res, "mip_dual_bound", None)
        dual = offset - float(reported) if reported is not None and np.isfinite(reported) else np.inf
        bound = dual + SOLVER_SLACK * (1 + abs(dual)) + self.rounding(objective)
        return Exact(bound, res.x[: self.features], value, res.status == 0)

    def rounding(self, objective: Array) -> float:
        """How far float32's objective . f can be from the real one: each affine map's margin carried to
        the output through |W| and the ReLUs that can pass anything (slope at most 1)."""
        lam, total = np.abs(objective), 0.0
        for k in range(len(self.ops) - 1, -1, -1):
            op = self.ops[k]
            if isinstance(op, Affine):
                total += float(lam @ self.pass_.margins[k][0])
                lam = lam * np.abs(op.w) if op.w.ndim == 1 else lam @ np.abs(op.w)
            else:
                lam = lam * (self.pass_.inputs[k][1][0] > 0)
        return 1.01 * total


def refine(ops: list[Op], found: Optimum, objective: Array, deadline: float) -> Exact:
    """The exact max after branch and bound: each box it left that could still beat the best input,
    highest bound first, solved as a MILP of its own, or cut in two (as branch and bound does) while it
    has too many ReLUs of both signs. `optimal` when every such box was solved before the deadline."""
    los, his, ubs = found.open
    heap = [(-float(u), i, lo, hi) for i, (u, lo, hi) in enumerate(zip(ubs, los, his, strict=True))]
    heapq.heapify(heap)
    best_x, best, bound, count = found.x, found.value, found.closed, len(heap)
    solved = 0
    while heap:
        neg_ub, _, lo, hi = heapq.heappop(heap)
        if -neg_ub <= best:
            bound = max(bound, -neg_ub)  # this box and every one after it cannot beat the best
            break
        left = deadline - time.monotonic()
        if left <= 0 or solved >= MAX_BOXES:
            return Exact(found.bound, found.x, found.value, False)
        program = Program(ops, lo, hi)
        solved += 1
        if program.binaries > MAX_BINARIES:
            for half_lo, half_hi, half_ub in _halves(ops, objective, lo, hi, -neg_ub):
                heapq.heappush(heap, (-half_ub, count, half_lo, half_hi))
                count += 1
            continue
        exact = program.maximise(objective, left)
        if not exact.optimal:
            return Exact(found.bound, found.x, found.value, False)
        bound = max(bound, exact.bound)
        if exact.value > best:
            best_x, best = exact.x, exact.value
    return Exact(min(bound, found.bound), best_x, best, True)


def _halves(ops: list[Op], objective: Array, lo: Array, hi: Array, ub: float) -> list[tuple[Array, Array, float]]:
    """The box cut in two along the input that moves its linear bound most, each half with its bound."""
    slope = Pass(ops, lo[None], hi[None]).upper(objective[None]).slope[0, 0]
    score = np.abs(slope) * (hi - lo)
    dim = int(np.argmax(score if score.max() > 0 else hi - lo))
    mid = (lo[dim] + hi[dim]) / 2
    left_hi, right_lo = hi.copy(), lo.copy()
    left_hi[dim], right_lo[dim] = mid, mid
    halves = Pass(ops, np.stack([lo, right_lo]), np.stack([left_hi, hi])).upper(objective[None]).value[:, 0]
    return [(lo, left_hi, min(ub, float(halves[0]))), (right_lo, hi, min(ub, float(halves[1])))]
