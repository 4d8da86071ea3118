"""The bump and gaussian math, written once against an array namespace.

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
