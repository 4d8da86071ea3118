"""The element-wise operations of a model in float64, each with its range over intervals and its linear
relaxation, sound for the float32 forward pass that predictions use.

A threshold family says where it takes its extremes over an interval (`Family.extremes`, beside its
math in `app.model.functions`); an activation says it here, beside the forms of `app.model.networks.ACTIVATIONS`.
From those extremes every operation gets the same two bounds: its range over an interval (the
values at the extremes, widened for float32's rounding), and linear bounds a x + b below and above it,
found by cutting the interval into pieces and shifting a few candidate lines until they clear the
range of every piece. ReLU has its own, exact relaxation (the triangle).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from app.model import networks

Array = np.ndarray
Extremes = Callable[[Array, Array], tuple[Array, Array]]  # (lo, hi) -> (argmin, argmax), element-wise
U32 = 2.0**-24  # float32's unit roundoff
REL_IN = 16 * U32  # an input widened by this covers the float32 roundings in a formula (x * x, sigma - x^2)
# ... and an output by this: exp of an exponent t carries t roundings of 2^-24 (t <= 80 in the bump)
REL_OUT = 1e-5
TINY = 1e-30  # an absolute widening for values near 0
PIECES = 32  # an interval is cut into this many pieces to fit a relaxation's lines
SILU_MIN = -1.2784645427692412  # where x * sigmoid(x) is least
MISH_MIN = -1.1924312136106707  # where x * tanh(softplus(x)) is least
LOG_FLOOR = -80.0  # below this a float32 log_softmax may be -inf (its softmax underflowed)


def widen(lo: Array, hi: Array, rel: float) -> tuple[Array, Array]:
    """[lo, hi] widened outward by `rel` of each end's size and TINY; NaN becomes infinite."""
    lo = np.where(np.isnan(lo), -np.inf, lo - rel * np.abs(lo) - TINY)
    hi = np.where(np.isnan(hi), np.inf, hi + rel * np.abs(hi) + TINY)
    return lo, hi


def increasing(lo: Array, hi: Array) -> tuple[Array, Array]:
    """The extremes of a non-decreasing function: its ends."""
    return lo, hi


def dipping(at: float, f: Callable[[Array], Array]) -> Extremes:
    """The extremes of a function that falls to its least value at `at` and rises after it."""

    def extremes(lo: Array, hi: Array) -> tuple[Array, Array]:
        with np.errstate(all="ignore"):
            return np.clip(at, lo, hi), np.where(f(lo) >= f(hi), lo, hi)

    return extremes


_act = networks.ACTIVATIONS
# Each element-wise activation's extremes over an interval; softmax and log_softmax are `Softmax`.
ACTIVATION_EXTREMES: dict[str, Extremes] = {
    **{
        name: increasing
        for name in ("linear", "relu", "relu6", "leaky_relu", "sigmoid", "hard_sigmoid", "tanh", "softplus")
    },
    **{name: increasing for name in ("softsign", "elu", "selu", "exponential")},
    "silu": dipping(SILU_MIN, _act["silu"]),
    "swish": dipping(SILU_MIN, _act["swish"]),
    "mish": dipping(MISH_MIN, _act["mish"]),
}


@dataclass(frozen=True)
class Elementwise:
    """y = f(x) unit by unit (x of shape (..., units)), with where f takes its extremes."""

    label: str  # the layer, for messages: `layer 1 (bump)`
    f: Callable[[Array], Array]  # float64
    extremes: Extremes
    relu: bool = False  # max(x, 0): the triangle relaxation, exact in float32

    def forward(self, x: Array) -> Array:
        """f in float64."""
        with np.errstate(all="ignore"):
            return self.f(x)

    def interval(self, lo: Array, hi: Array) -> tuple[Array, Array]:
        """Bounds on f over [lo, hi], holding for its float32 form too."""
        if self.relu:
            return np.maximum(lo, 0.0), np.maximum(hi, 0.0)
        lo, hi = widen(lo, hi, REL_IN)
        with np.errstate(all="ignore"):
            amin, amax = self.extremes(lo, hi)
            return widen(self.f(amin), self.f(amax), REL_OUT)

    def linear(self, lo: Array, hi: Array) -> tuple[Array, Array, Array, Array]:
        """(aL, bL, aU, bU), each shaped like lo: aL x + bL <= f(x) <= aU x + bU for x in [lo, hi]."""
        if self.relu:
            return relu_linear(lo, hi)
        finite = np.isfinite(lo) & np.isfinite(hi)
        lo0, hi0 = np.where(finite, lo, 0.0), np.where(finite, hi, 0.0)
        width, mid = hi0 - lo0, (lo0 + hi0) / 2
        steps = (np.arange(PIECES + 1) / PIECES)[:, None]
        ends = lo0[..., None, :] + width[..., None, :] * steps  # (..., PIECES + 1, units)
        ends[..., -1, :] = hi0
        plo, phi = self.interval(ends[..., :-1, :], ends[..., 1:, :])
        with np.errstate(all="ignore"):
            flo, fmid, fhi = self.f(lo0), self.f(mid), self.f(hi0)
            half = np.where(width > 0, width / 2, 1.0)
            slopes = np.stack([np.zeros_like(lo0), (fhi - flo) / (2 * half), (fmid - flo) / half, (fhi - fmid) / half])
        slopes = np.where(np.isfinite(slopes) & (width > 0), slopes, 0.0)[..., None, :]  # (C, ..., 1, units)
        s0, s1 = slopes * ends[..., :-1, :], slopes * ends[..., 1:, :]
        with np.errstate(invalid="ignore"):
            b_lo = np.min(plo - np.maximum(s0, s1), axis=-2)  # (C, ..., units)
            b_hi = np.max(phi - np.minimum(s0, s1), axis=-2)
        slopes = slopes[..., 0, :]
        pick_lo = np.argmax(np.nan_to_num(slopes * mid + b_lo, nan=-np.inf), axis=0)[None]
        pick_hi = np.argmin(np.nan_to_num(slopes * mid + b_hi, nan=np.inf), axis=0)[None]
        a_lo, b_lo = np.take_along_axis(slopes, pick_lo, 0)[0], np.take_along_axis(b_lo, pick_lo, 0)[0]
        a_hi, b_hi = np.take_along_axis(slopes, pick_hi, 0)[0], np.take_along_axis(b_hi, pick_hi, 0)[0]
        if not finite.all():  # an unbounded input: the range, as constants
            rlo, rhi = self.interval(lo, hi)
            a_lo, b_lo = np.where(finite, a_lo, 0.0), np.where(finite, b_lo, rlo)
            a_hi, b_hi = np.where(finite, a_hi, 0.0), np.where(finite, b_hi, rhi)
        return a_lo, np.where(np.isnan(b_lo), -np.inf, b_lo), a_hi, np.where(np.isnan(b_hi), np.inf, b_hi)


def relu_linear(lo: Array, hi: Array) -> tuple[Array, Array, Array, Array]:
    """ReLU's relaxation: the chord above, and below x or 0, whichever is nearer over [lo, hi]."""
    cross = (lo < 0) & (hi > 0)
    with np.errstate(all="ignore"):
        chord = np.where(cross, hi / np.where(cross, hi - lo, 1.0), 0.0)
    a_hi = np.where(lo >= 0, 1.0, chord)
    b_hi = np.where(cross, -chord * lo, 0.0)
    a_lo = np.where(lo >= 0, 1.0, np.where(cross & (hi > -lo), 1.0, 0.0))
    return a_lo, np.zeros_like(lo), a_hi, b_hi


@dataclass(frozen=True)
class Softmax:
    """softmax (or log_softmax) over the units: bounded by intervals only, so a model's last operation."""

    label: str
    log: bool

    def forward(self, x: Array) -> Array:
        """softmax or log_softmax of the last axis, float64."""
        shifted = x - np.max(x, axis=-1, keepdims=True)
        logp = shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
        return logp if self.log else np.exp(logp)  # type: ignore[no-any-return]

    def interval(self, lo: Array, hi: Array) -> tuple[Array, Array]:
        """Output j is least when its logit is least and the others greatest (and the other way)."""
        n = lo.shape[-1]
        off = ~np.eye(n, dtype=bool)
        with np.errstate(all="ignore"):
            worst = np.where(off, hi[..., None, :] - lo[..., :, None], -np.inf)  # [j, k]: hi_k - lo_j
            best = np.where(off, lo[..., None, :] - hi[..., :, None], -np.inf)
            log_lo = -np.logaddexp(0.0, np.logaddexp.reduce(worst, axis=-1))
            log_hi = -np.logaddexp(0.0, np.logaddexp.reduce(best, axis=-1))
        # float32's softmax underflows to 0 below e^-87 or so, where its log is -inf
        out_lo, out_hi = (
            (np.where(log_lo < LOG_FLOOR, -np.inf, log_lo), log_hi) if self.log else (np.exp(log_lo), np.exp(log_hi))
        )
        return widen(out_lo, out_hi, REL_OUT)
