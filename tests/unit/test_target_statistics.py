"""A network's target statistics (`data.normalize_target`): the plain Keras model ends with an
inverted standardisation whose mean and variance are its weights, and it predicts what the API's
NumPy forward pass predicts, a constant target column included."""

from __future__ import annotations

import numpy as np

from app.model import networks
from workers import network

LAYERS = [{"type": "dense", "units": 5, "activation": "tanh"}, {"type": "bump"}, {"type": "dense", "units": 2}]


def test_the_artifact_takes_outputs_back_to_y_units_as_numpy_does() -> None:
    rng = np.random.default_rng(0)
    weights = network.initial_weights(LAYERS, 3, rng)
    weights["target_mean"] = np.array([250.0, -7.0], np.float32)
    weights["target_variance"] = np.array([2500.0, 0.0], np.float32)  # a constant column: its mean
    x = rng.normal(size=(40, 3)).astype(np.float32)
    model = network.plain(LAYERS, 3, weights)
    last = model.layers[-1]
    assert last.name == network.TARGET_LAYER and "2500" not in str(last.get_config())  # weights, not config
    api = networks.forward(LAYERS, weights, x)
    np.testing.assert_allclose(model.predict(x, verbose=0), api, rtol=1e-6, atol=1e-4)
    assert np.all(api[:, 1] == -7.0) and abs(api[:, 0].mean() - 250) < 100
    bare = {k: v for k, v in weights.items() if not k.startswith("target_")}  # a job stored before
    z = networks.forward(LAYERS, bare, x)
    np.testing.assert_allclose(
        api[:, 0], networks.destandardize(z, weights["target_mean"], weights["target_variance"])[:, 0]
    )
