"""Hard thresholds and dense options through the API: bad ones refused with a 422 naming the layer
and field; (heavy) a pulse learns seed 002's band and does not move without its surrogate, a
network ending in a step predicts 0s and 1s, and weight normalisation and each kernel constraint
train on breast cancer as well as a plain dense, with artifacts that honour the constraint and
predict what the API predicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.store import migrate
from tests.integration.training import train_queued, upload_npz

PULSE = {"type": "pulse", "x_max_init": 0.75, "width_init": 0.25}


def body(dataset: str, layers: list[dict[str, Any]], loss: str = "mse", **training: Any) -> dict[str, Any]:
    return {
        "model": {"layers": layers},
        "data": {"kind": "dataset", "id": dataset},
        "training": {
            "loss": loss,
            "metrics": ["binary_accuracy"],
            "validation_split": 0.2,
            "epochs": 2,
            "learning_rate": 0.01,
            "batch_size": 32,
            "seed": 0,
            **training,
        },
    }


@pytest.fixture(scope="module")
def band(api: TestClient) -> str:
    """Seed 002's band: label 1 where 0.6 < |x| < 0.9."""
    x = np.random.default_rng(0).uniform(-1.2, 1.2, size=(2000, 1))
    return upload_npz(api, x, (np.abs(x) > 0.6) & (np.abs(x) < 0.9))


@pytest.mark.parametrize(
    "layers,loss,where",
    [
        ([{**PULSE, "width_init": 0}], "mse", "model.layers.0.width_init"),
        ([{"type": "dense", "units": 1}, {**PULSE, "surrogate_width": -0.1}], "mse", "model.layers.1.surrogate_width"),
        ([{"type": "step", "surrogate": "tanh"}], "mse", "model.layers.0.surrogate"),
        ([{"type": "step", "surrogate": "sigmoid", "surrogate_slope": 0}], "mse", "model.layers.0.surrogate_slope"),
        (
            [{"type": "dense", "units": 1, "weight_norm": True, "kernel_constraint": "unit_norm"}],
            "mse",
            "model.layers.0.kernel_constraint",
        ),
        ([{"type": "dense", "units": 1, "kernel_constraint": "l2"}], "mse", "model.layers.0.kernel_constraint"),
        ([{"type": "dense", "units": 1}, {"type": "step"}], "binary_crossentropy", "training.loss"),
    ],
)
def test_bad_hard_layers_and_dense_options_are_refused_naming_the_layer_and_field(
    api: TestClient, band: str, layers: list[dict[str, Any]], loss: str, where: str
) -> None:
    r = api.post("/v1/jobs", json=body(band, layers, loss))
    assert r.status_code == 422, r.text
    fields = [d["loc"] for d in r.json()["error"].get("details", [])] + [r.json()["error"]["message"]]
    assert any(where in f for f in fields), r.json()


def test_hard_layers_and_dense_options_are_stored_with_their_defaults(api: TestClient, band: str) -> None:
    layers = [{"type": "dense", "units": 2, "weight_norm": True, "kernel_constraint": "non_neg"}, PULSE]
    r = api.post("/v1/jobs", json=body(band, [*layers, {"type": "dense", "units": 1}, {"type": "step"}]))
    assert r.status_code == 201, r.text
    stored = r.json()["spec"]["model"]["layers"]
    assert stored[0]["weight_norm"] is True and stored[0]["kernel_constraint"] == "non_neg"
    assert stored[1] == {**PULSE, "surrogate": "sigmoid", "surrogate_width": None}
    assert "weight_norm" not in stored[2] and "kernel_constraint" not in stored[2]  # as before the options
    assert stored[3] == {"type": "step", "threshold_init": 0.0, "surrogate": "ste", "surrogate_slope": 4.0}


def trained(tmp_path: Path, name: str) -> tuple[TestClient, Settings]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / name}")
    migrate.upgrade(settings.database_url)
    return TestClient(create_app(settings)), settings


def finished(c: TestClient, job_id: str) -> dict[str, Any]:
    done: dict[str, Any] = c.get(f"/v1/jobs/{job_id}").json()
    assert done["status"] == "succeeded", done.get("error")
    return done


@pytest.mark.heavy  # two jobs of 40 epochs: ~10 s on 2 cores
def test_a_pulse_learns_the_band_and_stands_still_without_its_surrogate(tmp_path: Path) -> None:
    c, settings = trained(tmp_path, "pulse.db")
    with c:
        x = np.random.default_rng(0).uniform(-1.2, 1.2, size=(2000, 1))
        dataset = upload_npz(c, x, (np.abs(x) > 0.6) & (np.abs(x) < 0.9))
        ids = [
            c.post("/v1/jobs", json=body(dataset, [{**PULSE, "surrogate": s}], epochs=40)).json()["id"]
            for s in ("sigmoid", "none")
        ]
        train_queued(settings)
        learned, still = (finished(c, i) for i in ids)
        p = learned["params"]["pulse_1"]
        assert abs(p["x_max"][0] - 0.9) < 0.05 and abs(p["width"][0] - 0.3) < 0.05, p
        assert learned["metrics"]["val_binary_accuracy"] >= 0.97
        history = c.get(f"/v1/jobs/{ids[0]}/history").json()["history"]
        assert len(history) == 40 and history[0]["params"]["pulse_1"]["x_max"] != [0.75]
        assert still["params"] == {"pulse_1": {"x_max": [0.75], "width": [0.25]}}
        pred = c.post(f"/v1/models/{ids[0]}:predict", json={"instances": [[0.0], [0.7], [-0.85], [1.0]]}).json()
        assert pred["predictions"] == [0, 1, 1, 0]


@pytest.mark.heavy  # one job of 20 epochs
def test_a_network_ending_in_a_step_predicts_zeros_and_ones(tmp_path: Path) -> None:
    c, settings = trained(tmp_path, "step.db")
    with c:
        x = np.random.default_rng(1).normal(size=(1000, 4))
        dataset = upload_npz(c, x, x[:, :1] + 2 * x[:, 1:2] - 0.5 * x[:, 2:3] > 0.3)
        layers = [{"type": "dense", "units": 1}, {"type": "step"}]
        job = c.post("/v1/jobs", json=body(dataset, layers, epochs=20)).json()["id"]
        train_queued(settings)
        done = finished(c, job)
        assert done["metrics"]["val_binary_accuracy"] >= 0.95 and len(done["params"]["step_1"]["threshold"]) == 1
        pred = c.post(f"/v1/models/{job}:predict", json={"instances": x[:200].round(4).tolist()}).json()
        assert set(pred["predictions"]) == {0, 1}


OPTIONS: list[dict[str, Any]] = [
    {"weight_norm": True},
    {"kernel_constraint": "unit_norm"},
    {"kernel_constraint": "max_norm"},
    {"kernel_constraint": "non_neg"},
    {"kernel_constraint": "min_max_norm"},
    {"weight_norm": True, "kernel_constraint": "non_neg"},
]


@pytest.mark.heavy  # seven breast-cancer networks of 30 epochs and their artifacts: ~30 s on 2 cores
def test_weight_norm_and_constraints_train_as_well_and_their_artifacts_honour_them(tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    from sklearn.datasets import load_breast_cancer

    c, settings = trained(tmp_path, "bc.db")
    with c:
        table = load_breast_cancer()
        dataset = upload_npz(c, table.data, table.target[:, None])
        jobs = []
        for opts in [{}, *OPTIONS]:
            layers = [{"type": "dense", "units": 16, "activation": "relu", **opts}, {"type": "dense", "units": 1}]
            layers[1]["activation"] = "sigmoid"
            req = body(dataset, layers, "binary_crossentropy", epochs=30)
            req["data"]["normalize"] = "standard"
            jobs.append(c.post("/v1/jobs", json=req).json()["id"])
        train_queued(settings)
        accuracy = [finished(c, j)["metrics"]["val_binary_accuracy"] for j in jobs]
        assert all(a >= accuracy[0] - 0.03 for a in accuracy[1:]), accuracy
        rows = table.data[:50].round(3)
        for opts, job in zip(OPTIONS, jobs[1:], strict=True):
            path = tmp_path / f"{job}.keras"
            r = c.get(f"/v1/models/{job}/versions/1/artifact")
            assert r.status_code == 200, r.text[:300]
            path.write_bytes(r.content)
            model = keras.saving.load_model(path)
            kernel = model.get_layer("dense_1").kernel.numpy()
            norms = np.linalg.norm(kernel, axis=0)
            limits = {"unit_norm": (1 - 1e-5, 1 + 1e-5), "max_norm": (0, 2 + 1e-5), "min_max_norm": (0, 1 + 1e-5)}
            low, high = limits.get(opts.get("kernel_constraint", ""), (0, np.inf))
            assert np.all((norms >= low) & (norms <= high)), (opts, norms)
            if opts.get("kernel_constraint") == "non_neg":
                assert kernel.min() >= 0
            api = c.post(f"/v1/models/{job}:predict", json={"instances": rows.tolist()}).json()["predictions"]
            np.testing.assert_allclose(model.predict(rows, verbose=0)[:, 0], api, atol=1e-5)
