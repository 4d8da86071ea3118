"""One engine for every job (issue 31): a network's final metrics follow the single layer's rule
(its final weights evaluated on each split), and each threshold layer of a network is watched on
its own, as a single layer is."""

from __future__ import annotations

import numpy as np
import pytest

from app.model import networks
from workers.engine import Member, npz, train_group

TRAINING = {
    "optimizer": "adam",
    "learning_rate": 0.01,
    "epochs": 3,
    "batch_size": 16,
    "loss": "mse",
    "metrics": ["mae"],
    "validation_split": 0.25,
    "shuffle": True,
    "seed": 4,
    "early_stopping": None,
}
LAYERS = [
    {"type": "dense", "units": 4, "activation": "linear", "use_bias": True},
    {"type": "bump", "sigma_init": 0.5},
    {"type": "dense", "units": 1, "activation": "linear", "use_bias": True},
]


def member(x: np.ndarray, y: np.ndarray, normalize: str | None) -> Member:
    data = {"kind": "dataset", "id": "d", "n": len(x), "features": x.shape[1], "outputs": 1, "normalize": normalize}
    return Member("net", {"model": {"layers": LAYERS, "outputs": 1}, "data": data, "training": TRAINING}, x, y)


def test_a_networks_final_metrics_are_its_final_weights_on_each_split() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 2)).astype(np.float32)
    y = (x[:, :1] ** 2).astype(np.float32)
    result = train_group([member(x, y, "standard")])[0]
    assert result.error is None and result.weights is not None
    pred = networks.forward(LAYERS, result.weights, x)  # what the API predicts
    train, val = slice(0, 60), slice(60, 80)
    expected = {
        "loss": np.mean((pred[train] - y[train]) ** 2),
        "mae": np.mean(np.abs(pred[train] - y[train])),
        "val_loss": np.mean((pred[val] - y[val]) ** 2),
        "val_mae": np.mean(np.abs(pred[val] - y[val])),
    }
    assert result.metrics == pytest.approx(expected, rel=1e-4)
    last = result.history[-1]
    assert result.metrics["val_mae"] == pytest.approx(last["metrics"]["val_mae"], rel=1e-6)  # evaluated alike


def test_a_bump_layer_whose_inputs_miss_its_support_is_named_in_a_warning() -> None:
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(80, 2)) * 1e4 + 1e5).astype(np.float32)  # unnormalised: the bump sees only 0s
    y = rng.normal(size=(80, 1)).astype(np.float32)
    result = train_group([member(x, y, None)])[0]
    assert result.error is None
    (warning,) = [w for w in result.warnings if w["parameter"] == "bump_1.sigma"]
    assert warning["type"] == "zero_gradient" and warning["epoch"] == "1"
    assert "data.normalize" in warning["message"] and "model.layers.1.sigma_init" in warning["message"]
    fine = train_group([member(x, y, "standard")])[0]  # normalised, the same network has nothing to report
    assert fine.warnings == []


def test_a_members_weights_blob_is_what_numpy_writes_and_reads_back() -> None:
    rng = np.random.default_rng(2)
    layout = {"mean": (3,), "dense_1/kernel": (3, 4), "dense_1/bias": (4,), "bump_1/sigma": (4,)}
    for _ in range(2):  # the second member comes from the same template
        weights = {name: rng.normal(size=shape).astype(np.float32) for name, shape in layout.items()}
        blob = npz.pack(weights)
        assert blob == networks.pack(weights)  # byte for byte np.savez's archive, CRCs included
        back = networks.unpack(blob)
        assert all(np.array_equal(back[name], a) for name, a in weights.items())
