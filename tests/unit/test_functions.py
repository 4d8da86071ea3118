"""The shared math: NumPy and keras.ops agree, and every value and gradient is finite."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from keras import ops

from app.model import functions


def seed_bump(x: np.ndarray, sigma: float) -> np.ndarray:
    """The seed's own data generator (float64)."""
    cond = np.logical_and(x < sigma, x > -sigma)
    with np.errstate(all="ignore"):
        return np.where(cond, np.exp(-sigma / (sigma - x**2)), 0.0)


def grads(fn, *args: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Output and gradients of sum(fn(*args)) with respect to every argument, in float32."""
    vs = [tf.Variable(np.asarray(a, np.float32)) for a in args]
    with tf.GradientTape() as tape:
        out = fn(ops, *vs)
        total = tf.reduce_sum(out)
    return out.numpy(), [
        g.numpy() if g is not None else np.zeros(v.shape) for g, v in zip(tape.gradient(total, vs), vs, strict=True)
    ]


@pytest.mark.parametrize("sigma", [0.1, 0.5, 0.9, 1.0, 4.0, 9.9])
def test_bump_is_the_seeds_function_on_unit_interval(sigma: float) -> None:
    x = np.random.default_rng(0).uniform(-1, 1, 10000)
    np.testing.assert_allclose(functions.bump(np, x, sigma), seed_bump(x, sigma), rtol=1e-12, atol=1e-30)


def test_bump_outside_sqrt_sigma_counts_as_outside_support() -> None:
    # sigma = 4: the formula is no bump for 2 <= |x| < 4 (its denominator is <= 0)
    x = np.array([-3.5, -2.0, -1.95, 0.0, 1.95, 2.0, 3.5])
    y = functions.bump(np, x, 4.0)
    assert y[0] == y[1] == y[5] == y[6] == 0.0
    assert 0 < y[2] < 1e-8 and y[3] == pytest.approx(np.exp(-1))


def test_sigma_zero_gives_zeros_and_finite_gradients() -> None:
    out, (gx, gs) = grads(functions.bump, np.linspace(-2, 2, 101), np.float32(0.0))
    assert not out.any()
    assert np.isfinite(gx).all() and np.isfinite(gs).all()


@pytest.mark.parametrize("sigma", [1e-6, 0.3, 2.0, 20.0])
def test_numpy_and_keras_agree_to_float32_rounding(sigma: float) -> None:
    x = np.concatenate(
        [np.random.default_rng(1).uniform(-1e3, 1e3, 2000), np.random.default_rng(2).uniform(-5, 5, 2000)]
    ).astype(np.float32)
    ref = functions.bump(np, x, np.float32(sigma))
    got = functions.bump(ops, tf.constant(x), tf.constant(np.float32(sigma))).numpy()
    np.testing.assert_allclose(got, ref, rtol=2e-6, atol=1e-37)
    g_ref = functions.gaussian(np, x, np.float32(1.5), np.float32(sigma), np.float32(0.2))
    g_got = functions.gaussian(ops, tf.constant(x), 1.5, sigma, 0.2).numpy()
    np.testing.assert_allclose(g_got, g_ref, rtol=2e-6, atol=1e-37)


def test_gradient_matches_closed_form() -> None:
    # d/dsigma exp(-sigma/(sigma - x^2)) = f * x^2 / (sigma - x^2)^2
    x = np.array([0.0, 0.1, 0.3, -0.4], np.float32)
    sigma = np.float32(0.5)
    out, (gx, gs) = grads(functions.bump, x, sigma)
    d = sigma - x**2
    np.testing.assert_allclose(gs, np.sum(out * x**2 / d**2), rtol=1e-5)
    np.testing.assert_allclose(gx, out * (-2 * sigma * x / d**2), rtol=1e-5, atol=1e-7)


def test_near_singularity_has_no_nan() -> None:
    # x^2 just below sigma: exp underflows while 1/d^2 would overflow (0 * inf in naive code)
    sigma = np.float32(2.0)
    x = np.float32(np.sqrt(2.0)) - np.array([0, 1e-7, 1e-6, 1e-4, 1e-2], np.float32)
    out, (gx, gs) = grads(functions.bump, x, sigma)
    assert np.isfinite(out).all() and np.isfinite(gx).all() and np.isfinite(gs).all()


finite_x = st.floats(-1e6, 1e6, allow_nan=False, width=32, allow_subnormal=False)
sigmas = st.one_of(
    st.just(0.0),
    st.floats(0, 1e3, allow_nan=False, width=32, allow_subnormal=False),
    st.floats(float(np.float32(1e-30)), float(np.float32(1e-3)), width=32, allow_subnormal=False),
)


@settings(max_examples=200, deadline=None)
@given(xs=st.lists(finite_x, min_size=1, max_size=16), sigma=sigmas)
def test_bump_values_and_gradients_are_finite(xs: list[float], sigma: float) -> None:
    out, (gx, gs) = grads(functions.bump, np.array(xs), np.float32(sigma))
    assert np.isfinite(out).all() and np.isfinite(gx).all() and np.isfinite(gs).all()
    assert ((out >= 0) & (out <= 1)).all()


@settings(max_examples=100, deadline=None)
@given(
    xs=st.lists(finite_x, min_size=1, max_size=16),
    a=st.floats(-1e3, 1e3, width=32, allow_subnormal=False),
    b=st.floats(0, 1e3, width=32, allow_subnormal=False),
    c=st.floats(-1e3, 1e3, width=32, allow_subnormal=False),
)
def test_gaussian_values_and_gradients_are_finite(xs: list[float], a: float, b: float, c: float) -> None:
    out, g = grads(functions.gaussian, np.array(xs), np.float32(a), np.float32(b), np.float32(c))
    assert np.isfinite(out).all() and all(np.isfinite(v).all() for v in g)
