"""What the benchmarks share: the seed's experiment table and the seed's own training path."""

from __future__ import annotations

import os
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

N = 100_000


def seed_table() -> list[tuple[float, int]]:
    """The seed's 99 sigmas (0.1 ... 9.9) with its epochs: 3 below sigma 1, 5 below 5, else 10."""
    sigmas = [round(0.1 * i, 1) for i in range(1, 100)]
    return [(s, 3 if s < 1 else (5 if s < 5 else 10)) for s in sigmas]


def seed_fit(sigma: float, epochs: int, n: int = N, seed: int = 0) -> tuple[float, float]:
    """The seed's code path: a Keras Sequential model with the bump layer, compile('adam', 'mse'),
    model.fit(x, y, epochs, batch_size=32) with Python driving every step. (learned sigma, seconds)"""
    import keras
    import numpy as np

    from app.model import data
    from workers.layers import BumpLayer

    x, y = data.synthetic("bump", {"sigma": sigma}, n, (-1.0, 1.0), 0.0, seed)
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    model = keras.Sequential([keras.Input(shape=(1,)), BumpLayer()])
    model.compile(loss="mse", optimizer="adam")
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return float(np.ravel(model.layers[0].get_weights()[0])[0]), time.perf_counter() - start


def engine_spec(epochs: int, seed: int, **training: Any) -> dict[str, Any]:
    """A job spec as the API stores it (a JobRequest with its defaults filled in: the seed's Adam
    1e-3, batch 32, mse), for a `workers.engine.Member`: `epochs`, training seed `seed`, `training`."""
    from app.jobs.schemas import JobRequest

    request = {"data": {"kind": "synthetic"}, "training": {"epochs": epochs, "seed": seed, **training}}
    return JobRequest.model_validate(request).model_dump(mode="json")


def job_spec(sigma: float, epochs: int, n: int = N, seed: int = 0) -> dict:
    """The same job as a bumpfit job request."""
    return {
        "data": {"kind": "synthetic", "function": "bump", "params": {"sigma": sigma}, "n": n, "seed": seed},
        "training": {"epochs": epochs, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.001, "seed": seed},
    }
