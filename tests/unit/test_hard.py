"""Hard thresholds and dense options, without training: the pulse and the step give exactly the
NumPy 0/1 forward with the surrogate's gradient (both edges of a pulse move, "none" moves nothing),
weight normalisation starts where a plain dense starts and computes g v / ||v|| as the API does,
fused constraints act per member as Keras's act per kernel, and the artifact's plain Keras network
predicts what the API predicts."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from app.model import functions, networks
from workers import network
from workers.engine import export
from workers.hard import PulseLayer, StepLayer

LAYERS: list[dict[str, Any]] = [
    {"type": "dense", "units": 6, "activation": "tanh", "weight_norm": True},
    {"type": "pulse", "x_max_init": 0.8, "width_init": 0.5, "surrogate": "sigmoid", "surrogate_width": None},
    {"type": "dense", "units": 4, "kernel_constraint": "unit_norm"},
    {"type": "step", "threshold_init": 0.1, "surrogate": "ste", "surrogate_slope": 4.0},
]


def grads(layer: keras.layers.Layer, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The layer's output on x and the gradient of its sum with respect to x and each parameter."""
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        out = ops.sum(layer(xt))
    g = tape.gradient(out, [xt, *layer.trainable_variables])
    names = ["x", *(v.name for v in layer.trainable_variables)]
    return ops.convert_to_numpy(layer(xt)), {n: ops.convert_to_numpy(v) for n, v in zip(names, g, strict=True)}


def test_a_pulse_is_the_seeds_exact_band_with_gradients_at_both_edges() -> None:
    layer = PulseLayer(x_max_initializer=keras.initializers.Constant(0.75), width_initializer="ones")
    layer.build((None, 1))
    layer.width.assign([0.25])
    # inside the band (0.5, 0.75) at either sign, just outside each edge, and far away
    x = np.array([[0.6], [-0.7], [0.45], [0.8], [-0.8], [3.0], [0.0]], np.float32)
    out, g = grads(layer, x)
    np.testing.assert_array_equal(out[:, 0], [1, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(out, functions.pulse(np, x, np.float32(0.75), np.float32(0.25)))
    # raising x_max takes in points just above it; widening takes in points just below the lower edge
    assert g["x_max"][0] > 0 and g["width"][0] > 0
    one = PulseLayer(x_max_initializer=keras.initializers.Constant(0.75))
    one.build((None, 1))
    one.width.assign([0.25])
    assert grads(one, x[3:4])[1]["x_max"][0] > 0 and grads(one, x[2:3])[1]["width"][0] > 0
    assert grads(one, x[3:4])[1]["x"][0, 0] < 0  # moving the point down, into the band, raises the output


def test_a_pulse_without_a_surrogate_is_a_plain_where_with_zero_gradients() -> None:
    layer = PulseLayer(surrogate="none")
    layer.build((None, 3))
    x = np.linspace(-2, 2, 30, dtype=np.float32).reshape(10, 3)
    out, g = grads(layer, x)
    np.testing.assert_array_equal(out, functions.pulse(np, x, np.float32(1.0), np.float32(0.5)))
    assert all(not np.any(v) for v in g.values())


@pytest.mark.parametrize("kind", ["ste", "sigmoid"])
def test_a_step_is_exact_and_passes_its_surrogates_gradient(kind: str) -> None:
    layer = StepLayer(surrogate=kind, surrogate_slope=3.0, threshold_initializer=keras.initializers.Constant(0.2))
    layer.build((None, 1))
    x = np.array([[-5.0], [0.1], [0.2], [0.3], [40.0]], np.float32)
    out, g = grads(layer, x)
    np.testing.assert_array_equal(out[:, 0], [0, 0, 0, 1, 1])
    if kind == "ste":
        np.testing.assert_array_equal(g["x"][:, 0], 1.0)
        assert g["threshold"][0] == -len(x)
    else:
        s = functions.step_sigmoid(np, x[:, 0].astype(np.float64), 0.2, 3.0)
        np.testing.assert_allclose(g["x"][:, 0], 3.0 * s * (1 - s), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(g["threshold"][0], -np.sum(3.0 * s * (1 - s)), rtol=1e-5)


def test_hard_layers_and_their_options_round_trip_through_a_keras_config() -> None:
    for layer in (PulseLayer(surrogate="none", surrogate_width=0.1), StepLayer(surrogate="sigmoid", surrogate_slope=9)):
        again = type(layer).from_config(layer.get_config())
        assert again.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="surrogate"):
        StepLayer(surrogate="tanh")


def weights_of(stack: network.Stack) -> dict[str, np.ndarray]:
    """Member 0's weights in the plain shapes the API stores (kernels (in, out), the rest flat)."""
    out = {}
    for name, var in stack.named().items():
        a = ops.convert_to_numpy(var)[0]
        out[name] = a if name.endswith("/kernel") else a.reshape(-1)
    return out


def fused(layers: list[dict[str, Any]], features: int, k: int, seed: int = 0) -> network.Stack:
    """A fused stack of k members holding member i's starting weights drawn from seed + i."""
    stack = network.Stack(layers, k, name="n")
    stack.build((k, None, features))
    starts = [network.initial_weights(layers, features, np.random.default_rng(seed + i)) for i in range(k)]
    for name, var in stack.named().items():
        var.assign(np.stack([s[name] for s in starts]).reshape(var.shape))
    return stack


def output(stack: network.Stack, x: np.ndarray) -> np.ndarray:
    out = stack(x)
    return ops.convert_to_numpy(out[0] if isinstance(out, tuple) else out)  # type: ignore[no-any-return]


def test_the_fused_network_the_api_and_the_artifact_agree(tmp_path: Any) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 64, 5)).astype(np.float32)
    stack = fused(LAYERS, 5, 2)
    weights = weights_of(stack)
    api = networks.forward(LAYERS, weights, x[0])
    assert set(np.unique(api)) <= {0.0, 1.0}
    np.testing.assert_array_equal(output(stack, x)[0], api)
    path = tmp_path / "m.keras"
    path.write_bytes(export.network_artifact(LAYERS, 5, weights))
    model = keras.saving.load_model(path)
    np.testing.assert_array_equal(model.predict(x[0], verbose=0), api)
    np.testing.assert_allclose(
        model.get_layer("dense_1").kernel.numpy(), networks.dense_kernel(LAYERS[0], "dense_1", weights)
    )


def test_weight_norm_starts_as_the_plain_dense_and_is_g_v_over_its_norm() -> None:
    plain = [{"type": "dense", "units": 3, "activation": "relu"}]
    normed = [{**plain[0], "weight_norm": True}]
    x = np.random.default_rng(2).normal(size=(1, 20, 4)).astype(np.float32)
    np.testing.assert_allclose(output(fused(normed, 4, 1), x), output(fused(plain, 4, 1), x), atol=1e-6)
    stack = fused(normed, 4, 1)
    stack.parts[0].g.assign(np.array([[[2.0, 0.5, 1.0]]], np.float32))
    w = weights_of(stack)
    v = w["dense_1/v"].reshape(4, 3)
    expected = v / np.linalg.norm(v, axis=0) * [2, 0.5, 1]
    np.testing.assert_allclose(networks.dense_kernel(normed[0], "dense_1", w), expected, rtol=1e-6)
    np.testing.assert_allclose(output(stack, x)[0], networks.forward(normed, w, x[0]), atol=1e-6)


@pytest.mark.parametrize("name", ["unit_norm", "max_norm", "non_neg", "min_max_norm"])
def test_a_fused_kernel_constraint_acts_on_each_member_as_keras_on_its_kernel(name: str) -> None:
    kernels = np.random.default_rng(3).normal(size=(3, 5, 4)).astype(np.float32) * [[[0.1]], [[1.0]], [[9.0]]]
    got = ops.convert_to_numpy(network.members_constraint(name)(ops.convert_to_tensor(kernels)))
    keras_own = keras.constraints.get(name)
    for k in range(3):
        np.testing.assert_allclose(
            got[k], ops.convert_to_numpy(keras_own(ops.convert_to_tensor(kernels[k]))), rtol=1e-6
        )
