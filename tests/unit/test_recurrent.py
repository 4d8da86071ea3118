"""Recurrent layers without training: the NumPy forward the API serves, the fused Keras form and
the `.keras` artifact give the same outputs on a tiny sequence network (each gate type, and
none); a gate starts open (a pulse exactly, so the cell starts as Keras's SimpleRNN); every
gate's parameters get gradients; a two-member group of sequence data trains one epoch."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from app.errors import InvalidInput
from app.model import networks, recurrent
from workers import network
from workers.engine import Member, export, train_group
from workers.recurrent import GatedRNN

T, F = 5, 3
PULSE = {"type": "pulse", "x_max_init": 1.0, "width_init": 0.5, "surrogate": "sigmoid", "surrogate_width": None}
GATES: list[dict[str, Any] | None] = [
    None,
    PULSE,
    {"type": "bump", "sigma_init": 0.5},
    {"type": "gaussian", "a_init": 1.0, "b_init": 1.0, "c_init": 0.0},
]


def layers(gate: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [
        {"type": "rnn", "units": 4, "activation": "tanh", "return_sequences": True, "gate": gate},
        {"type": "rnn", "units": 3, "activation": "relu", "gate": gate},
        {"type": "dense", "units": 2},
    ]


def fused(specs: list[dict[str, Any]], weights: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """The fused network of two members holding the same weights, on x: member 0's output, the taps."""
    stack = network.Stack(specs, 2)
    stack.build((2, None, *x.shape[1:]))
    for name, var in stack.named().items():
        var.assign(np.stack([weights[name]] * 2).reshape(var.shape))
    out, taps = stack(np.stack([x, x]))
    return ops.convert_to_numpy(out)[0], taps


@pytest.mark.parametrize("gate", GATES, ids=lambda g: g["type"] if g else "none")
def test_numpy_fused_and_artifact_forwards_agree(gate: dict[str, Any] | None) -> None:
    rng = np.random.default_rng(1)
    specs = layers(gate)
    weights = network.initial_weights(specs, F, rng)
    for name in weights:  # the gate shut in places, as after training
        if "gate_kernel" in name or "gate_recurrent" in name:
            weights[name] = rng.normal(0, 0.4, weights[name].shape).astype(np.float32)
    x = rng.normal(size=(7, T, F)).astype(np.float32)
    weights.update({"mean": np.full(F, 0.1, np.float32), "variance": np.full(F, 2.0, np.float32)})
    expected = networks.forward(specs, weights, x)
    stats = networks.standardize(x, weights["mean"], weights["variance"])
    out, taps = fused(specs, weights, stats)
    np.testing.assert_allclose(out, expected, atol=2e-6)
    assert [tuple(t.shape) for t in taps] == ([] if gate is None else [(2, 7, 4), (2, 7, 3)])
    stored = {n: a if n.endswith("/kernel") else a.reshape(-1) for n, a in weights.items()}  # as a group stores them
    blob = export.network_artifact(specs, F, stored, T)
    model = load(blob)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=2e-6)
    np.testing.assert_allclose(networks.forward(specs, stored, x), expected, atol=0)
    if gate is None:
        assert isinstance(model.layers[1], keras.layers.SimpleRNN)


def load(blob: bytes) -> keras.Model:
    """A `.keras` file's model."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.keras"
        path.write_bytes(blob)
        return keras.saving.load_model(path)


@pytest.mark.parametrize("gate", GATES[1:], ids=lambda g: g["type"] if g else "none")
def test_a_gate_starts_open_a_pulse_exactly_so_the_cell_starts_as_a_simple_rnn(gate: dict[str, Any]) -> None:
    rng = np.random.default_rng(2)
    spec = {"type": "rnn", "units": 4, "activation": "tanh", "return_sequences": True, "gate": gate}
    weights = network.initial_weights([spec], F, rng)
    x = rng.normal(size=(6, T, F)).astype(np.float32)
    out, (g,) = fused([spec], weights, x)
    np.testing.assert_allclose(networks.forward([spec], weights, x), out, atol=1e-6)
    assert not np.any(weights["rnn_1/gate_kernel"]) and not np.any(weights["rnn_1/gate_recurrent_kernel"])
    if gate["type"] != "pulse":  # a smooth gate starts just off its peak, where it has a slope
        np.testing.assert_allclose(ops.convert_to_numpy(g), 0.99, atol=1e-3)
        return
    simple = keras.layers.SimpleRNN(4, return_sequences=True)
    simple.build((None, T, F))
    for slot in recurrent.CELL:
        getattr(simple.cell, slot).assign(np.reshape(weights[f"rnn_1/{slot}"], getattr(simple.cell, slot).shape))
    np.testing.assert_allclose(out, ops.convert_to_numpy(simple(x)), atol=1e-6)
    np.testing.assert_array_equal(ops.convert_to_numpy(g), 1.0)


def gate_grads(layer: GatedRNN, x: Any) -> dict[str, np.ndarray]:
    """Each trainable variable's gradient of sum(output^2), by its name."""
    with tf.GradientTape() as tape:
        out = ops.sum(layer(x) ** 2)
    g = tape.gradient(out, layer.trainable_variables)
    return {
        v.path.rsplit("/", 1)[-1]: ops.convert_to_numpy(d) for v, d in zip(layer.trainable_variables, g, strict=True)
    }


@pytest.mark.parametrize("gate", GATES[2:], ids=lambda g: g["type"])
def test_a_smooth_gate_learns_from_its_first_step(gate: dict[str, Any]) -> None:
    layer = GatedRNN(4, gate=gate)
    x = tf.constant(np.random.default_rng(3).normal(size=(8, T, F)).astype(np.float32))
    layer.build(x.shape)
    for name, value in network.initial_weights(
        [{"type": "rnn", "units": 4, "gate": gate}], F, np.random.default_rng(4)
    ).items():
        slot = name.split("/", 1)[1]
        getattr(layer if hasattr(layer, slot) else layer.gate_layer, slot).assign(value)
    grads = gate_grads(layer, x)
    assert all(np.any(grads[name] != 0) for name in (*recurrent.GATE, *gate_params(gate))), grads


def gate_params(gate: dict[str, Any]) -> tuple[str, ...]:
    """The gate family's parameters that move it sideways (a gaussian's height `a` always moves)."""
    return ("sigma",) if gate["type"] == "bump" else ("b", "c")


def test_a_pulse_gates_parameters_and_kernels_get_gradients() -> None:
    layer = GatedRNN(4, gate=PULSE)
    x = tf.constant(np.random.default_rng(3).normal(size=(8, T, F)).astype(np.float32))
    layer.build(x.shape)

    # open at its window's centre, its peak: only the width (which moves the centre) has a gradient there
    start = gate_grads(layer, x)
    assert np.all(start["width"] != 0) and not np.any(start["gate_kernel"])
    layer.gate_bias.assign(np.full(4, 0.6, np.float32))  # off the centre, still open: everything moves
    moved = gate_grads(layer, x)
    assert all(np.any(g != 0) for g in moved.values()), {k: np.abs(v).max() for k, v in moved.items()}
    assert set(moved) >= {"kernel", "gate_kernel", "gate_recurrent_kernel", "gate_bias", "x_max", "width"}


@pytest.mark.parametrize(
    "specs,sequences,where",
    [
        ([{"type": "rnn", "units": 2}], False, "model.layers.0.type"),
        ([{"type": "dense", "units": 2}], True, "model.layers.0.type"),
        ([{"type": "rnn", "units": 2, "return_sequences": True}, {"type": "bump"}], True, "model.layers.1.type"),
        ([{"type": "rnn", "units": 2, "return_sequences": True}], True, "model.layers.0.return_sequences"),
        ([{"type": "rnn", "units": 2}, {"type": "rnn", "units": 2}], True, "model.layers.1.type"),
    ],
)
def test_layers_that_do_not_fit_the_datas_shape_are_refused(
    specs: list[dict[str, Any]], sequences: bool, where: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        recurrent.check_shapes(specs, sequences)
    assert err.value.details == [{"loc": where, "msg": err.value.details[0]["msg"]}]


@pytest.mark.heavy  # an XLA compile (a few seconds); the integration tests train one such group by default
def test_a_group_of_sequence_members_trains_an_epoch() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4, 2)).astype(np.float32)
    y = (x.sum(axis=(1, 2)) > 0).astype(np.float32)[:, None]
    model = {"layers": [{"type": "rnn", "units": 2, "gate": {"type": "pulse"}}, {"type": "dense", "units": 1}]}
    spec: dict[str, Any] = {
        "model": model,
        "data": {"kind": "dataset", "id": "d", "n": 40, "features": 2, "timesteps": 4, "normalize": "standard"},
        "training": {
            "loss": "mse",
            "metrics": ["mae"],
            "validation_split": 0.25,
            "epochs": 1,
            "batch_size": 8,
            "optimizer": "adam",
            "learning_rate": 0.01,
            "shuffle": True,
            "seed": 0,
        },
    }
    results = train_group(
        [Member("a", spec, x, y), Member("b", {**spec, "training": {**spec["training"], "seed": 1}}, x, y)]
    )
    assert [r.error for r in results] == [None, None]
    assert set(results[0].params) == {"rnn_1"} and len(results[0].params["rnn_1"]["x_max"]) == 2
    assert results[0].params != results[1].params


@pytest.mark.heavy  # a SavedModel export: some seconds
def test_a_gated_rnns_saved_model_predicts_what_the_api_predicts(tmp_path: Path) -> None:
    import io
    import tarfile

    from workers.exports import saved_model_tar

    specs = [{"type": "rnn", "units": 4, "activation": "tanh", "return_sequences": False, "gate": PULSE}]
    specs.append({"type": "dense", "units": 2})
    rng = np.random.default_rng(1)
    stored = {
        n: a if n.endswith("/kernel") else a.reshape(-1) for n, a in network.initial_weights(specs, F, rng).items()
    }
    x = rng.normal(size=(7, T, F)).astype(np.float32)
    tarfile.open(fileobj=io.BytesIO(saved_model_tar(export.network_artifact(specs, F, stored, T), 1))).extractall(
        tmp_path
    )
    (pb,) = tmp_path.rglob("saved_model.pb")
    serving = tf.saved_model.load(str(pb.parent)).signatures["serving_default"]
    (got,) = serving(x=tf.constant(x)).values()
    np.testing.assert_allclose(got.numpy(), networks.forward(specs, stored, x), atol=1e-6)
