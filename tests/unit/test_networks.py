"""The fused network engine: a member learns in a group what it learns alone, the plain Keras model
of the artifact computes what the API's NumPy forward pass computes, and early stopping restores a
network's best weights. tests/e2e/test_jax.py runs this file on the JAX backend too."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest

from app.model import networks
from workers import network
from workers.engine import Member, train_group

LAYERS = [
    {"type": "dense", "units": 6, "activation": "linear", "use_bias": True},
    {"type": "bump", "sigma_init": None},
    {"type": "dense", "units": 4, "activation": "tanh", "use_bias": False},
    {"type": "gaussian", "a_init": 1.0, "b_init": 1.0, "c_init": 0.0},
    {"type": "activation", "activation": "relu"},
    {"type": "dense", "units": 3, "activation": "softmax", "use_bias": True},
]


def net_member(seed: int, job_id: str, epochs: int = 3, n: int = 150, **training: Any) -> Member:
    """A 3-class network job on its own random table (5 features), normalised, with validation rows."""
    rng = np.random.default_rng(100 + seed)
    x = (rng.normal(size=(n, 5)) * [1, 10, 0.1, 1, 0]).astype(np.float32)  # a constant column too
    y = (np.argmax(x[:, :3] * [1, 0.1, 10], axis=1)).astype(np.float32)[:, None]
    spec = {
        "model": {"layers": LAYERS, "outputs": 3},
        "data": {"kind": "dataset", "id": job_id, "normalize": "standard", "n": n, "features": 5, "outputs": 1},
        "training": {
            "optimizer": "adam",
            "learning_rate": 0.01,
            "epochs": epochs,
            "batch_size": 16,
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy", "auc"],
            "validation_split": 0.2,
            "shuffle": True,
            "seed": seed,
            "early_stopping": None,
            **training,
        },
    }
    return Member(job_id, spec, x, y)


@pytest.mark.heavy  # two XLA compiles of a six-layer network: ~30 s on 2 cores
def test_a_member_learns_in_a_group_what_it_learns_alone() -> None:
    group = train_group([net_member(s, f"j{s}") for s in (1, 2, 3)])
    for s, fused in zip((1, 2, 3), group, strict=True):
        alone = train_group([net_member(s, f"j{s}")])[0]
        assert fused.error is None and fused.weights is not None and alone.weights is not None
        for name, value in alone.weights.items():
            np.testing.assert_allclose(fused.weights[name], value, atol=1e-5, err_msg=name)
        assert [h["loss"] for h in fused.history] == pytest.approx([h["loss"] for h in alone.history], abs=1e-5)
        assert fused.metrics == pytest.approx(alone.metrics, abs=1e-5)
    row = group[0].history[-1]
    assert set(row["params"]) == {"bump_1", "gaussian_1"} and len(row["params"]["bump_1"]["sigma"]) == 6
    assert set(row["params"]["gaussian_1"]) == {"a", "b", "c"} and len(row["params"]["gaussian_1"]["c"]) == 4
    assert set(row["metrics"]) == {"accuracy", "auc", "val_accuracy", "val_auc"}
    assert group[0].params == row["params"]  # different seeds: different starting sigmas and data
    assert group[0].params["bump_1"] != group[1].params["bump_1"]


def test_the_artifact_predicts_what_numpy_predicts(tmp_path: Any) -> None:
    member = net_member(4, "a", epochs=2)
    result = train_group([member], artifacts=True)[0]
    assert result.artifact is not None and result.weights_blob is not None
    path = tmp_path / "m.keras"
    path.write_bytes(result.artifact)
    model = keras.saving.load_model(path)
    assert [layer.name for layer in model.layers] == ["normalization", *networks.names(LAYERS)]
    raw = member.x[:20] * 3  # raw features, beyond the training range too
    api = networks.forward(LAYERS, networks.unpack(result.weights_blob), raw)
    np.testing.assert_allclose(model.predict(raw, verbose=0), api, atol=1e-6)


@pytest.mark.parametrize("activation", sorted(networks.ACTIVATIONS))
def test_each_activation_in_numpy_is_keras_own(activation: str) -> None:
    layers = [{"type": "dense", "units": 7, "activation": activation}, {"type": "activation", "activation": activation}]
    rng = np.random.default_rng(0)
    weights = {"dense_1/kernel": rng.normal(size=(3, 7)).astype(np.float32), "dense_1/bias": np.zeros(7, np.float32)}
    x = rng.normal(size=(50, 3)).astype(np.float32) * 2
    model = network.plain(layers, 3, weights)
    # float32 on both sides; exponential twice reaches 1e27, where 1e-4 relative is a few float32 steps
    np.testing.assert_allclose(model.predict(x, verbose=0), networks.forward(layers, weights, x), atol=1e-5, rtol=1e-4)


@pytest.mark.heavy  # the group's compile (shared with the test above when both run) and 40 epochs
def test_early_stopping_restores_a_networks_best_weights() -> None:
    stopping = {
        "monitor": "val_loss",
        "min_delta": 0.0,
        "patience": 1,
        "restore_best_weights": True,
        "start_from_epoch": 0,
    }
    member = net_member(5, "e", epochs=40, learning_rate=0.3, early_stopping=stopping)
    result, other, _ = train_group([member, net_member(6, "f", epochs=40), net_member(8, "g", epochs=40)])
    assert result.stopped_epoch is not None and result.stopped_epoch < 40
    best = min(result.history, key=lambda h: h["val_loss"])
    assert result.params == best["params"] and result.metrics["val_loss"] == best["val_loss"]
    assert result.weights is not None
    bump = np.asarray(best["params"]["bump_1"]["sigma"])
    np.testing.assert_allclose(result.weights["bump_1/sigma"], bump, atol=1e-7)
    assert len(other.history) == 40  # the other member trained on


def test_each_members_artifact_holds_its_own_weights_from_one_template(tmp_path: Any) -> None:
    members = [net_member(s, f"t{s}", epochs=1) for s in (5, 6)]
    results = train_group(members, artifacts=True)
    predictions = []
    for i, result in enumerate(results):
        assert result.artifact is not None and result.weights_blob is not None
        path = tmp_path / f"m{i}.keras"
        path.write_bytes(result.artifact)
        model = keras.saving.load_model(path)
        raw = members[0].x[:30]
        api = networks.forward(LAYERS, networks.unpack(result.weights_blob), raw)
        np.testing.assert_allclose(model.predict(raw, verbose=0), api, atol=1e-6)
        predictions.append(api)
    assert not np.allclose(predictions[0], predictions[1])  # two seeds: two networks, not the template's
