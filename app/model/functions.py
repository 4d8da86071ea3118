"""The element-wise families' math, written once against an array namespace.

`xp` is `numpy` (serving, data generation; no TensorFlow in the API process) or `keras.ops`
(training), so the two cannot drift apart. Both forms are safe for every finite input: the
output and its gradients with respect to x and to the parameters stay finite.
"""

from __future__ import annotations

from typing import Any

# exp(-T_MAX) ~ 1.8e-35: past this the bump is written as 0, which keeps 1/d^2 in the
# gradient of exp(-sigma/d) far from overflow (sigma/d^2 <= T_MAX^2/sigma).
T_MAX = 80.0
# |x - c| is clipped here so (x - c)^2 stays finite in float32 for any finite x.
GAUSS_CLIP = 1e18

# Largest |value| of training data (x, y), data-function parameters, noise and initial values: the
# squared error of such a value, summed over the largest batch (1e6 rows x 64 features), stays
# far below float32's maximum (3.4e38), so a loss can only overflow by diverging, never by input.
DATA_MAX = 1e12


def bump(xp: Any, x: Any, sigma: Any) -> Any:
    """exp(-sigma / (sigma - x^2)) where |x| < sigma and x^2 < sigma, else 0.

    On x in [-1, 1] this is exactly the seed's function. For sigma > 1 the points with
    sqrt(sigma) <= |x| < sigma, where the formula is no bump, count as outside the support.
    A second `where` feeds safe values to the branch that is not taken (tf.where's NaN trap).
    """
    x2 = x * x
    d = sigma - x2
    # |x| < sigma <=> x^2 < sigma^2; d * T_MAX > sigma <=> sigma / d < T_MAX with d > 0.
    inside = xp.logical_and(x2 < sigma * sigma, d * T_MAX > sigma)
    num = xp.where(inside, sigma, xp.zeros_like(d))
    den = xp.where(inside, d, xp.ones_like(d))
    return xp.where(inside, xp.exp(-num / den), xp.zeros_like(d))


def gaussian(xp: Any, x: Any, a: Any, b: Any, c: Any) -> Any:
    """a * exp(-b * (x - c)^2); b is kept >= 0 by the layer so the exponent never grows."""
    diff = xp.clip(x - c, -GAUSS_CLIP, GAUSS_CLIP)
    return a * xp.exp(-b * (diff * diff))


# Where each function takes its least and greatest value over an interval, for the bounds of a trained
# model (app.bounds): both are even about a centre (0, c) and monotone in the distance to it, so the
# extremes over [lo, hi] lie at the point nearest the centre and at the farther end. Exact; NumPy.


def _even_extremes(xp: Any, f: Any, lo: Any, hi: Any, centre: Any) -> tuple[Any, Any]:
    """(argmin, argmax) over [lo, hi] of a function f of x even about `centre` and monotone in |x - centre|."""
    near = xp.clip(centre, lo, hi)
    far = xp.where(xp.abs(lo - centre) >= xp.abs(hi - centre), lo, hi)
    peak = f(near) >= f(far)
    return xp.where(peak, far, near), xp.where(peak, near, far)


def bump_extremes(xp: Any, lo: Any, hi: Any, sigma: Any) -> tuple[Any, Any]:
    """(argmin, argmax) of `bump` over x in [lo, hi]: e^-1 at 0, never growing with |x| (the ends of
    its support, |x| < sigma and x^2 < sigma (1 - 1/T_MAX), included)."""
    return _even_extremes(xp, lambda x: bump(xp, x, sigma), lo, hi, 0.0)


def gaussian_extremes(xp: Any, lo: Any, hi: Any, a: Any, b: Any, c: Any) -> tuple[Any, Any]:
    """(argmin, argmax) of `gaussian` over x in [lo, hi] (a and b of either sign)."""
    return _even_extremes(xp, lambda x: gaussian(xp, x, a, b, c), lo, hi, c)


def pulse(xp: Any, x: Any, x_max: Any, width: Any) -> Any:
    """Seed 002's pulse: 1 where x_max - width < |x| < x_max, else 0 (exactly; no gradient of its own)."""
    ax = xp.abs(x)
    inside = xp.logical_and(ax > x_max - width, ax < x_max)
    return xp.where(inside, xp.ones_like(ax), xp.zeros_like(ax))


def step(xp: Any, x: Any, threshold: Any) -> Any:
    """Heaviside: 1 where x > threshold, else 0 (exactly; no gradient of its own)."""
    return xp.where(x > threshold, xp.ones_like(x), xp.zeros_like(x))


def pulse_extremes(xp: Any, lo: Any, hi: Any, x_max: Any, width: Any) -> tuple[Any, Any]:
    """(argmin, argmax) of `pulse` over x in [lo, hi]: of the ends, 0 and the window's edges (where it
    is 0 if anywhere) and the middles of the window's two sides within [lo, hi] (where it is 1 if anywhere)."""
    a, b = x_max - width, x_max
    mids = [(xp.maximum(lo, p) + xp.minimum(hi, q)) / 2 for p, q in ((a, b), (-b, -a))]
    edges = [xp.clip(e, lo, hi) for e in (0.0 * a, a, b, -a, -b)]
    candidates = xp.stack([lo + 0.0 * a, hi + 0.0 * a, *[xp.clip(m, lo, hi) for m in mids], *edges])
    values = pulse(xp, candidates, x_max, width)

    def take(i: Any) -> Any:
        return xp.take_along_axis(candidates, i[None], axis=0)[0]

    return take(xp.argmin(values, axis=0)), take(xp.argmax(values, axis=0))


def step_extremes(xp: Any, lo: Any, hi: Any, threshold: Any) -> tuple[Any, Any]:
    """(argmin, argmax) of `step` over x in [lo, hi]: it never falls, so its ends."""
    return lo + 0.0 * threshold, hi + 0.0 * threshold


def sigmoid(xp: Any, z: Any) -> Any:
    """1 / (1 + exp(-z)) written with tanh, finite for every finite z in either namespace."""
    return 0.5 * (xp.tanh(0.5 * z) + 1.0)


def pulse_window(xp: Any, x: Any, x_max: Any, width: Any, surrogate_width: Any) -> Any:
    """The pulse's smooth stand-in, whose gradient trains it: a window that rises across the lower
    edge and falls across the upper one, each a sigmoid of slope 1 / surrogate_width at its edge."""
    ax = xp.abs(x)
    rise = sigmoid(xp, 4.0 * (ax - (x_max - width)) / surrogate_width)
    fall = sigmoid(xp, 4.0 * (x_max - ax) / surrogate_width)
    return rise * fall


def step_sigmoid(xp: Any, x: Any, threshold: Any, slope: Any) -> Any:
    """The step's sigmoid stand-in: sigmoid(slope * (x - threshold))."""
    return sigmoid(xp, slope * (x - threshold))
