"""One analysis of a model over a box: for each goal (an output, up or down), a guaranteed bound and
the best input found, by the method asked, within a time budget. Deterministic but for the deadline."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from app.bounds import box as boxes
from app.bounds import crown, milp, search, split
from app.bounds.model import Op, forward, relu_only
from app.bounds.relax import Array, Elementwise

log = logging.getLogger("bumpfit.bounds")
SEED = 0  # the search's samples: the same answer for the same model, box and settings
SEARCH_SHARE = 0.2  # of the budget, for the search before branch and bound
EXACT_SPLIT_SHARE = 0.5  # of the budget, for branch and bound when the exact mode follows it


@dataclass(frozen=True)
class Model:
    """A served version as the analysis sees it: its operations, its float32 forward pass (what
    predictions compute) and whether it is a single element-wise layer."""

    ops: list[Op]
    evaluate32: Callable[[Array], Array]
    single: bool
    outputs: int


@dataclass
class Found:
    """Goal `sign * f_output`: at most `bound` over the box for sure; `x` gives `value` (f, float32)."""

    bound: float
    x: Array
    value: float
    complete: bool
    exact: bool


def run(
    model: Model, lo: Array, hi: Array, goals: list[tuple[int, float]], method: str, budget: float
) -> tuple[list[Found], str]:
    """Each goal (output, sign) over the box [lo, hi] by `method`; also what was used."""
    start = time.monotonic()
    deadline = start + budget
    lo32, hi32 = boxes.as_float32(lo, hi)
    objectives = np.stack([sign * np.eye(model.outputs)[j] for j, sign in goals])
    if model.single:
        return _single(model, lo, hi, lo32, hi32, goals), "interval"
    linear = method != "interval"
    first = crown.Pass(model.ops, lo32[None], hi32[None], linear)
    bounds = first.upper(objectives)
    ys_lo, ys_hi = first.output
    widths = (ys_hi - ys_lo)[0, [j for j, _ in goals]]
    xs, _ = search.reach(lambda x: forward(model.ops, x), lo, hi, objectives, SEED, start + SEARCH_SHARE * budget)
    if method in ("interval", "linear"):
        out = []
        for i, (j, sign) in enumerate(goals):
            x, value = _best(model, [xs[i], bounds.corner[0, i]], lo, hi, j, sign)
            out.append(_checked(Found(float(bounds.value[0, i]), x, value, True, False), sign, goals[i]))
        return out, method
    exact = method == "exact" or (method == "auto" and relu_only(model.ops))
    splits, until = [], start + budget * (EXACT_SPLIT_SHARE if exact else 1.0)
    for i in range(len(goals)):
        share = (until - time.monotonic()) / (len(goals) - i)
        tol = split.REL_TOL * float(widths[i]) if np.isfinite(widths[i]) else np.inf
        start_value = float(forward(model.ops, xs[i][None])[0] @ objectives[i])
        opt = split.maximise(model.ops, lo32, hi32, objectives[i], (xs[i], start_value), tol, time.monotonic() + share)
        splits.append(opt)
    found, used_exact = [], exact
    for i, ((j, sign), opt) in enumerate(zip(goals, splits, strict=True)):
        result = Found(opt.bound, opt.x, opt.value, opt.complete, False)
        candidates = [xs[i], opt.x]
        if exact:
            share = (deadline - time.monotonic()) / (len(goals) - i)
            solved = milp.refine(model.ops, opt, objectives[i], time.monotonic() + share)
            used_exact &= solved.optimal
            if solved.optimal:
                result = Found(solved.bound, solved.x, solved.value, True, True)
                candidates.append(solved.x)
        x, value = _best(model, candidates, lo, hi, j, sign)
        found.append(_checked(Found(result.bound, x, value, result.complete, result.exact), sign, goals[i]))
    return found, "milp" if used_exact else "split"


def _best(model: Model, xs: list[Array], lo: Array, hi: Array, j: int, sign: float) -> tuple[Array, float]:
    """The input among xs (brought into the box, as float32) whose output j is best, and that output as
    `:predict` gives it for that one row (a batch's float32 sums may round differently)."""
    pts = np.stack([boxes.snap(np.clip(x, lo, hi), lo, hi) for x in xs])
    ys = np.array([model.evaluate32(p[None])[0, j] for p in pts], dtype=np.float64)
    i = int(np.argmax(np.where(np.isnan(ys), -np.inf, sign * ys)))
    return pts[i], float(ys[i])


def _checked(found: Found, sign: float, goal: tuple[int, float]) -> Found:
    """A bound below a value reached is a bug; never answer it (the reached value stands instead)."""
    if sign * found.value > found.bound:
        log.warning("bound %r below a reached value %r for goal %r; widened", found.bound, found.value, goal)
        found.bound, found.exact = sign * found.value, False
    return found


def _single(
    model: Model, lo: Array, hi: Array, lo32: Array, hi32: Array, goals: list[tuple[int, float]]
) -> list[Found]:
    """A single element-wise layer: output j is f_j(x_j), its range exact from the family's extremes."""
    op = model.ops[0]
    assert isinstance(op, Elementwise)
    ys_lo, ys_hi = op.interval(lo32, hi32)
    amin, amax = op.extremes(lo, hi)
    out = []
    for j, sign in goals:
        x, value = _best(model, [amax if sign > 0 else amin], lo, hi, j, sign)
        bound = float(ys_hi[j]) if sign > 0 else -float(ys_lo[j])
        out.append(_checked(Found(bound, x, value, True, True), sign, (j, sign)))
    return out
