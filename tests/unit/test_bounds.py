"""The bounds of a trained model on hand-built weights (NumPy only): each relaxation below and above its
function, interval and linear bounds holding for the float32 forward pass, branch and bound and the
MILP meeting the true extremes, a single bump layer exact, and every layer without a relaxation refused."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from app.bounds import analyse, crown, milp, search, split
from app.bounds import box as boxes
from app.bounds.model import family_op, forward, network_ops
from app.bounds.relax import ACTIVATION_EXTREMES, Elementwise
from app.bounds.schemas import Box
from app.errors import InvalidInput
from app.model import functions, networks

RNG = np.random.default_rng(7)


def dense(sizes: list[int], act: str = "relu", seed: int = 0) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """A dense network of these widths with random float32 weights."""
    rng = np.random.default_rng(seed)
    layers, weights = [], {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        layers.append({"type": "dense", "units": b, "activation": act if i < len(sizes) - 2 else "linear"})
        weights[f"dense_{i + 1}/kernel"] = (rng.normal(size=(a, b)) / np.sqrt(a)).astype(np.float32)
        weights[f"dense_{i + 1}/bias"] = (rng.normal(size=b) * 0.1).astype(np.float32)
    return layers, weights


def threshold_net() -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """dense -> bump -> dense(tanh) -> gaussian -> dense, standardised features and target."""
    layers = [
        {"type": "dense", "units": 6, "activation": "linear"},
        {"type": "bump"},
        {"type": "dense", "units": 5, "activation": "tanh"},
        {"type": "gaussian"},
        {"type": "dense", "units": 2, "activation": "linear"},
    ]
    f32 = np.float32
    w = {
        "mean": RNG.normal(size=3).astype(f32),
        "variance": RNG.uniform(0.5, 2, 3).astype(f32),
        "dense_1/kernel": RNG.normal(size=(3, 6)).astype(f32),
        "dense_1/bias": RNG.normal(size=6).astype(f32),
        "bump_1/sigma": RNG.uniform(0.2, 1.5, 6).astype(f32),
        "dense_2/kernel": RNG.normal(size=(6, 5)).astype(f32),
        "dense_2/bias": RNG.normal(size=5).astype(f32),
        "gaussian_1/a": RNG.normal(size=5).astype(f32),
        "gaussian_1/b": RNG.uniform(0, 3, 5).astype(f32),
        "gaussian_1/c": RNG.normal(size=5).astype(f32),
        "dense_3/kernel": RNG.normal(size=(5, 2)).astype(f32),
        "dense_3/bias": np.zeros(2, f32),
        "target_mean": np.ones(2, f32),
        "target_variance": np.full(2, 4, f32),
    }
    return layers, w


FAMILY_PARAMS = {
    "bump": {"sigma": RNG.uniform(0.1, 2, 8)},
    "gaussian": {"a": RNG.normal(size=8), "b": RNG.uniform(0, 3, 8), "c": RNG.normal(size=8)},
    "pulse": {"x_max": RNG.uniform(0.2, 2, 8), "width": RNG.uniform(0.1, 1.5, 8)},
    "step": {"threshold": RNG.normal(size=8)},
}


@pytest.mark.parametrize("kind", ["bump", "gaussian", "pulse", "step"])
def test_a_family_takes_its_extremes_where_it_says(kind: str) -> None:
    lo = RNG.uniform(-2, 1, 200)
    hi = lo + RNG.uniform(0, 2, 200)
    f = family_op("layer", kind, {k: v[:1] for k, v in FAMILY_PARAMS[kind].items()})
    grid = lo[:, None] + (hi - lo)[:, None] * np.linspace(0, 1, 2001)[None, :]
    values = f.forward(grid[..., None])[..., 0]
    amin, amax = f.extremes(lo[:, None], hi[:, None])
    assert np.all(f.forward(amin)[:, 0] <= values.min(axis=1) + 1e-12)
    assert np.all(f.forward(amax)[:, 0] >= values.max(axis=1) - 1e-12)
    assert functions.bump_extremes(np, np.array(-0.2), np.array(0.5), 0.5)[1] == 0.0


@pytest.mark.parametrize("name", [*FAMILY_PARAMS, "relu", "tanh", "silu", "mish", "elu", "sigmoid"])
def test_each_relaxation_lies_below_and_above_its_function(name: str) -> None:
    if name in FAMILY_PARAMS:
        op = family_op("layer", name, FAMILY_PARAMS[name])
    else:
        op = Elementwise(name, networks.ACTIVATIONS[name], ACTIVATION_EXTREMES[name], relu=name == "relu")
    lo = RNG.uniform(-3, 1, (16, 8)).astype(np.float32).astype(np.float64)  # the ends and the inputs in float32
    hi = (lo + RNG.uniform(0, 3, (16, 8))).astype(np.float32).astype(np.float64)
    a_lo, b_lo, a_hi, b_hi = op.linear(lo, hi)
    x = (lo[None] + (hi - lo)[None] * RNG.uniform(0, 1, (4000, 1, 1))).astype(np.float32)
    y = op.forward(x).astype(np.float64)  # in float32, as predictions compute it
    x = x.astype(np.float64)
    assert np.all(a_lo * x + b_lo <= y) and np.all(y <= a_hi * x + b_hi)
    ylo, yhi = op.interval(lo, hi)
    assert np.all(ylo <= y) and np.all(y <= yhi)


@pytest.mark.parametrize("linear", [False, True])
def test_bounds_hold_for_the_float32_forward_pass_of_a_threshold_network(linear: bool) -> None:
    layers, w = threshold_net()
    ops = network_ops(layers, w)
    lo = RNG.uniform(-2, 0, (6, 3))
    hi = lo + RNG.uniform(0, 2, (6, 3))
    low, high = crown.output_bounds(ops, lo, hi, linear)
    for b in range(len(lo)):
        y = networks.forward(layers, w, RNG.uniform(lo[b], hi[b], (20000, 3)).astype(np.float32))
        assert np.all(y >= low[b]) and np.all(y <= high[b])
    loose = crown.output_bounds(ops, lo, hi, False)
    assert np.all(high - low <= loose[1] - loose[0] + 1e-9)  # the linear bounds are never looser


def test_branch_and_bound_and_the_milp_meet_the_true_maximum_of_a_relu_network() -> None:
    layers, w = dense([2, 8, 3])
    ops = network_ops(layers, w)
    lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 401), np.linspace(-1, 1, 401)), -1).reshape(-1, 2)
    truth = networks.forward(layers, w, grid.astype(np.float32))[:, 1].max()
    c = np.eye(3)[1]
    xs, vals = search.reach(lambda x: forward(ops, x), lo, hi, c[None], 0, time.monotonic() + 5)
    opt = split.maximise(ops, lo, hi, c, (xs[0], float(vals[0])), 1e-4, time.monotonic() + 10)
    assert opt.complete and truth - 1e-5 <= opt.bound <= truth + 1e-4 and opt.value >= truth - 1e-4
    exact = milp.Program(ops, lo, hi).maximise(c, 10)
    assert exact.optimal and abs(exact.value - opt.value) < 1e-5 and exact.bound >= truth


def test_a_single_bump_layer_is_bounded_exactly() -> None:
    sigma = np.array([0.5, 0.8], dtype=np.float32)
    model = analyse.Model(
        [family_op("layer 0 (bump)", "bump", {"sigma": sigma})],
        lambda x: functions.bump(np, x.astype(np.float32), sigma).astype(np.float32),
        True,
        2,
    )
    lo, hi = np.array([-0.3, 0.2]), np.array([0.4, 0.9])
    found, method = analyse.run(model, lo, hi, [(0, 1.0), (0, -1.0), (1, 1.0), (1, -1.0)], "auto", 1.0)
    assert method == "interval" and all(f.exact for f in found)
    assert found[0].value == pytest.approx(np.exp(-1)) and found[1].value == pytest.approx(np.exp(-0.5 / 0.34))
    assert found[2].x[1] == pytest.approx(0.2) and found[3].value == 0.0  # 0.9 > sigma: outside the support
    for f, sign in zip(found, (1, -1, 1, -1), strict=True):
        assert 0 <= f.bound - sign * f.value <= 1e-5  # the range itself, widened by float32's rounding only


def test_a_layer_or_activation_without_a_relaxation_is_refused_by_name() -> None:
    layers, w = dense([2, 3, 1])
    with pytest.raises(InvalidInput, match="layer 1 \\(rnn\\) has no relaxation yet") as e:
        network_ops([layers[0], {"type": "rnn", "units": 3}, layers[1]], w)
    assert e.value.details[0]["loc"] == "model.layers.1"
    soft = [{**layers[0], "activation": "softmax"}, layers[1]]
    with pytest.raises(InvalidInput, match="last operation"):
        network_ops(soft, w)
    with pytest.raises(InvalidInput, match="gelu has no relaxation"):
        network_ops([{**layers[0], "activation": "gelu"}, layers[1]], w)


def test_a_box_is_checked_field_by_field_and_read_as_float32() -> None:
    with pytest.raises(InvalidInput, match="box.upper: has 1 values"):
        boxes.parse(Box(lower=[0, 0], upper=[1]), 2)
    with pytest.raises(InvalidInput, match=r"box.lower\[1\]"):
        boxes.parse(Box(lower=[0, 2], upper=[1, 1]), 2)
    lo, hi = np.array([0.0, 0.0]), np.array([1.0, 1.0])
    with pytest.raises(InvalidInput, match="fixed.x3: no such feature"):
        boxes.fix({"x3": 0.5}, ["x1", "x2"], lo, hi)
    with pytest.raises(InvalidInput, match="fixed.x2: 1.5 is outside"):
        boxes.fix({"x2": 1.5}, ["x1", "x2"], lo, hi)
    fixed = boxes.fix({"1": 0.25}, ["x1", "x2"], lo, hi)
    assert fixed[0][1] == fixed[1][1] == 0.25
    lo32, hi32 = boxes.as_float32(np.array([0.1]), np.array([0.1]))
    assert lo32[0] <= np.float32(0.1) <= hi32[0] and lo32[0] < hi32[0]
    assert boxes.snap(np.array([0.3]), np.array([0.3]), np.array([0.3]))[0] == 0.3  # no float32 inside: kept
    x = boxes.snap(np.array([0.1]), np.array([0.1]), np.array([0.2]))
    assert 0.1 <= x[0] <= 0.2 and np.float32(x[0]) == x[0]


def test_a_weight_normed_dense_layer_is_bounded_with_the_kernel_predictions_use() -> None:
    layers = [{"type": "dense", "units": 4, "activation": "relu", "weight_norm": True}, {"type": "dense", "units": 2}]
    w = {
        "dense_1/v": RNG.normal(size=(3, 4)).astype(np.float32),
        "dense_1/g": RNG.uniform(0.5, 2, 4).astype(np.float32),
        "dense_2/kernel": RNG.normal(size=(4, 2)).astype(np.float32),
    }
    low, high = crown.output_bounds(network_ops(layers, w), -np.ones((1, 3)), np.ones((1, 3)))
    y = networks.forward(layers, w, RNG.uniform(-1, 1, (20000, 3)).astype(np.float32))
    assert np.all(y >= low) and np.all(y <= high)
    assert np.all(high - low <= 1.5 * (y.max(axis=0) - y.min(axis=0)))  # the kernel g v / ||v||, not v
