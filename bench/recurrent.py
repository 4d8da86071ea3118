"""The recurrent case of `python -m bench.networks`: a task that needs memory (does a 20-step noise
sequence sum above 0?, 2,000 sequences, the last 20% for validation), a gated rnn
`[rnn 16 with a pulse gate, dense 1 sigmoid]`, binary cross-entropy, normalised features.

16 such networks (16 seeds) submitted as ONE sweep to a real `bumpfit serve` (SQLite, one
worker), against the same 16 trained by Keras `fit` one after another in this process (bumpfit's
plain `GatedRNN` layer, `jit_compile` True, a whole epoch per `steps_per_execution`).

    python -m bench.networks --case rnn [--epochs 30] [--keras-fits 16]
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.networks import BATCH, LEARNING_RATE, VALIDATION, training
from tests.conftest import Service, wait_for

N, STEPS, UNITS, NETWORKS = 2000, 20, 16, 16
GATE = {"type": "pulse", "x_max_init": 1.0, "width_init": 0.5}


def task() -> tuple[np.ndarray, np.ndarray]:
    """Noise sequences (N, STEPS, 1) and whether each sums above 0."""
    x = np.random.default_rng(0).normal(size=(N, STEPS, 1)).astype(np.float32)
    return x, (x.sum(axis=(1, 2)) > 0).astype(np.float32)[:, None]


def request(dataset: str, epochs: int) -> dict[str, Any]:
    """The sweep's base job: the gated rnn on the uploaded sequences."""
    layers = [{"type": "rnn", "units": UNITS, "gate": GATE}, {"type": "dense", "units": 1, "activation": "sigmoid"}]
    return {
        "model": {"layers": layers},
        "data": {"kind": "dataset", "id": dataset, "normalize": "standard"},
        "training": training(epochs, 0),
    }


def keras_fit(x: np.ndarray, y: np.ndarray, seed: int, epochs: int) -> tuple[float, float]:
    """The same network by Keras `fit`: (validation accuracy, seconds)."""
    import keras

    from workers.recurrent import GatedRNN

    n_train = int(len(x) * (1 - VALIDATION))
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    norm = keras.layers.Normalization()
    norm.adapt(x[:n_train].reshape(-1, 1))
    model = keras.Sequential(
        [keras.Input(shape=(STEPS, 1)), norm, GatedRNN(UNITS, gate=GATE), keras.layers.Dense(1, activation="sigmoid")]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss="binary_crossentropy",
        metrics=["accuracy"],
        jit_compile=True,
        steps_per_execution=-(-n_train // BATCH),
    )
    history = model.fit(
        x[:n_train], y[:n_train], validation_data=(x[n_train:], y[n_train:]), epochs=epochs, batch_size=BATCH, verbose=0
    )
    return float(history.history["val_accuracy"][-1]), time.perf_counter() - start


def through_api(x: np.ndarray, y: np.ndarray, epochs: int) -> tuple[list[float], float]:
    """The 16 networks as one sweep through a real server: (validation accuracies, seconds from
    submission to the last result, compile included)."""
    with tempfile.TemporaryDirectory() as tmp:
        svc = Service(f"sqlite:///{tmp}/bench.db", workers=1, log=Path(tmp) / "serve.log")
        try:
            wait_for(lambda: len(svc.http.get("/v1/workers").json()["workers"]) >= 1, 120, "the worker")
            buf = io.BytesIO()
            np.savez(buf, x=x, y=y)
            ds = svc.http.post("/v1/datasets", files={"file": ("sums.npz", buf.getvalue())}).json()["id"]
            start = time.perf_counter()
            grid = {"training.seed": list(range(NETWORKS))}
            r = svc.http.post("/v1/sweeps", json={"base": request(ds, epochs), "grid": grid})
            assert r.status_code == 201, r.text
            sweep_id = r.json()["id"]

            def done() -> bool:
                rows = svc.http.get(f"/v1/sweeps/{sweep_id}").json()["jobs"]
                return all(row["status"] in ("succeeded", "failed", "cancelled") for row in rows)

            wait_for(done, 1800, "the sweep", every=0.25)
            seconds = time.perf_counter() - start
            rows = svc.http.get(f"/v1/sweeps/{sweep_id}", params={"limit": 1000}).json()["jobs"]
        finally:
            svc.stop()
    failed = [row for row in rows if row["status"] != "succeeded"]
    assert not failed, failed[:2]
    return [row["metrics"]["val_accuracy"] for row in rows], seconds


def main(epochs: int, keras_fits: int) -> None:
    """Print the recurrent case's accuracies and wall times."""
    x, y = task()
    print(
        f"\n== recurrent: is a {STEPS}-step noise sequence's sum above 0? {N} sequences, validation "
        f"{VALIDATION:.0%}, {epochs} epochs, batch {BATCH}, Adam {LEARNING_RATE}; [rnn {UNITS} gated by a pulse, "
        "dense 1 sigmoid] =="
    )
    accuracy, api_seconds = through_api(x, y, epochs)
    print(f"{NETWORKS} networks as one sweep through the API: {api_seconds:.1f} s (submission to last result)")
    print("  val accuracy " + " ".join(f"{a:.3f}" for a in accuracy) + f", median {statistics.median(accuracy):.3f}")
    fits = [keras_fit(x, y, seed, epochs) for seed in range(min(keras_fits, NETWORKS))]
    keras_seconds = sum(s for _, s in fits) * NETWORKS / len(fits)
    print(
        f"Keras fit one after another ({len(fits)} run): val accuracy "
        + " ".join(f"{a:.3f}" for a, _ in fits)
        + f", {keras_seconds:.1f} s for {NETWORKS}"
        + (f" (scaled from {len(fits)} fits, {sum(s for _, s in fits):.1f} s)" if len(fits) < NETWORKS else "")
    )
    print(f"ratio {keras_seconds / api_seconds:.1f}x")
