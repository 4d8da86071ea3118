"""A test-only layer family added by the steps of CONTRIBUTING.md "Adding a layer family" and
nothing else: its math and registry entry in app/model/families.py serve data, predictions, the
workers' Keras layer, training and the `.keras` artifact."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from app.model import data, families
from workers.engine import Member, save_artifact, train
from workers.layers import LAYERS


def ramp(xp: Any, x: Any, k: Any) -> Any:
    """Step 1: the math, once, against an array namespace."""
    return k * xp.tanh(x)


@pytest.fixture
def ramp_family() -> Iterator[families.Family]:
    # Step 2: the registry entry.
    family = families.register(
        families.Family("ramp", ("k",), ramp, inits={"k": 0.5}, target={"k": 2.0}, label="k·tanh(x)")
    )
    yield family
    families.FAMILIES.pop("ramp")
    LAYERS.pop("ramp", None)


def test_a_new_family_trains_predicts_and_saves(ramp_family: families.Family) -> None:
    x, y = data.synthetic("ramp", ramp_family.target, 2000, (-2.0, 2.0), 0.0, 1)
    np.testing.assert_allclose(y, families.evaluate(np, "ramp", x, {"k": 2.0}), rtol=1e-6)
    spec = {
        "layer": {"type": "ramp", "per_feature": False},
        "training": {
            "optimizer": "adam",
            "learning_rate": 0.05,
            "epochs": 20,
            "batch_size": 64,
            "loss": "mse",
            "validation_split": 0.0,
            "seed": 3,
        },
    }
    result = train(Member("ramp-job", spec, x, y))
    assert result.error is None
    assert abs(result.params["k"] - 2.0) < 0.05
    blob = save_artifact(Member("ramp-job", spec, x, y), result.params)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ramp.keras"
        path.write_bytes(blob)
        model = keras.saving.load_model(path)
    pred = np.asarray(model.predict(x[:10], verbose=0))
    np.testing.assert_allclose(pred, families.evaluate(np, "ramp", x[:10], result.params), rtol=1e-4, atol=1e-5)


def test_unknown_family_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown layer type 'nope'"):
        families.get("nope")
