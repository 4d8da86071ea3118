"""`data.normalize_target`: a regression on a target far from mean 0 and variance 1 (y = 200 + 50 x ...)
learns when y is standardised inside the model, and the loss, metrics, API predictions and `.keras`
artifact are all in y's own units. Jobs are trained by the worker's own code, in this process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.store import migrate
from tests.integration.training import train_queued

keras = pytest.importorskip("keras")

ROWS = 400
N_TRAIN = 320  # validation_split 0.2: the last 80 rows
NET = [{"type": "dense", "units": 16, "activation": "relu"}, {"type": "dense", "units": 1}]


def price_table() -> tuple[np.ndarray, np.ndarray, bytes]:
    """x (ROWS, 3) on scales of their own and y = 200 + 50 * (x1 - 0.5 * x2') + noise, and its CSV."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, 3)) * [1.0, 5.0, 0.2] + [0.0, 10.0, 3.0]
    y = 200 + 50 * (x[:, 0] - 0.5 * (x[:, 1] - 10) / 5) + rng.normal(size=ROWS) * 5
    x, y = x.round(4), y.round(3)
    lines = ["x1,x2,x3,price"] + [",".join(map(str, [*row, target])) for row, target in zip(x, y, strict=True)]
    return x, y, ("\n".join(lines) + "\n").encode()


def body(dataset: str, **data: Any) -> dict[str, Any]:
    return {
        "model": {"layers": NET},
        "data": {"kind": "dataset", "id": dataset, "target": ["price"], "normalize": "standard", **data},
        "training": {"loss": "mse", "metrics": ["mae", "r2"], "validation_split": 0.2, "epochs": 30, "seed": 1},
    }


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(database_url=f"sqlite:///{tmp_path_factory.mktemp('target') / 'bumpfit.db'}")
    migrate.upgrade(settings.database_url)
    return settings


@pytest.fixture(scope="module")
def client(own: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(own)) as c:
        yield c


def test_a_standardised_target_learns_and_reports_in_its_own_units(
    client: TestClient, own: Settings, tmp_path: Path
) -> None:
    x, y, csv = price_table()
    ds = client.post("/v1/datasets", files={"file": ("prices.csv", csv)}).json()["id"]
    scaled = client.post("/v1/jobs", json=body(ds, normalize_target="standard"))
    assert scaled.status_code == 201, scaled.text
    assert scaled.json()["spec"]["data"]["normalize_target"] == "standard"
    raw = client.post("/v1/jobs", json=body(ds))
    assert raw.status_code == 201, raw.text
    train_queued(own)
    job = client.get(f"/v1/jobs/{scaled.json()['id']}").json()
    other = client.get(f"/v1/jobs/{raw.json()['id']}").json()
    assert job["status"] == other["status"] == "succeeded", (job.get("error"), other.get("error"))
    m = job["metrics"]
    # Without it, Adam 1e-3 moves the output nowhere near y's mean of 200 in 30 epochs.
    assert m["val_r2"] > 0.8 and other["metrics"]["val_r2"] < 0, (m, other["metrics"])

    # Predictions are in y's units, and the loss and metrics are those of these predictions.
    name = job["id"]
    api = client.post(f"/v1/models/{name}:predict", json={"instances": x.tolist()}).json()["predictions"]
    pred = np.asarray(api)
    val, train = (pred[N_TRAIN:], y[N_TRAIN:]), (pred[:N_TRAIN], y[:N_TRAIN])
    assert np.mean(pred) == pytest.approx(200, abs=20)
    assert m["val_loss"] == pytest.approx(np.mean((val[0] - val[1]) ** 2), rel=1e-3)
    assert m["val_mae"] == pytest.approx(np.mean(np.abs(val[0] - val[1])), rel=1e-3)
    assert m["loss"] == pytest.approx(np.mean((train[0] - train[1]) ** 2), rel=1e-3)  # after the last epoch
    assert m["r2"] == pytest.approx(1 - np.mean((train[0] - train[1]) ** 2) / np.var(train[1]), abs=1e-3)
    history = client.get(f"/v1/jobs/{name}/history").json()["history"]
    assert history[-1]["val_loss"] == m["val_loss"] and history[0]["loss"] > history[-1]["loss"] > 0

    # The downloaded artifact predicts the same numbers, from statistics held as its weights.
    import workers.layers  # noqa: F401 - registers the project's layers for load_model

    path = tmp_path / "model.keras"
    path.write_bytes(client.get(f"/v1/models/{name}/versions/1/artifact").content)
    model = keras.saving.load_model(path)
    assert model.layers[-1].name == "target_normalization" and len(model.layers[-1].weights) >= 2
    np.testing.assert_allclose(model.predict(x.astype(np.float32), verbose=0)[:, 0], api, rtol=1e-6, atol=1e-4)


def test_normalize_target_is_refused_with_a_classification_loss_or_a_single_layer(client: TestClient) -> None:
    csv = b"a,b,label\n" + b"".join(f"{i},{i % 3},{i % 2}\n".encode() for i in range(20))
    ds = client.post("/v1/datasets", files={"file": ("c.csv", csv)}).json()["id"]
    classify = {
        "model": {"layers": [{"type": "dense", "units": 1, "activation": "sigmoid"}]},
        "data": {"kind": "dataset", "id": ds, "target": ["label"], "normalize_target": "standard"},
        "training": {"loss": "binary_crossentropy"},
    }
    r = client.post("/v1/jobs", json=classify)
    assert r.status_code == 422 and "data.normalize_target" in r.json()["error"]["message"], r.text
    layer = {"data": {"kind": "inline", "x": [0.0, 0.5, 1.0], "y": [1.0, 0.5, 0.0], "normalize_target": "standard"}}
    r = client.post("/v1/jobs", json=layer)
    assert r.status_code == 422, r.text
    assert "data.normalize_target needs a network" in r.json()["error"]["message"]
    r = client.post("/v1/jobs", json={**classify, "data": {**classify["data"], "normalize_target": "minmax"}})
    assert r.status_code == 422 and "data.normalize_target: Input should be 'standard'" in r.text, r.text


def test_a_sweep_over_inline_data_keeps_both_normalisations(client: TestClient) -> None:
    x = [[float(i), float(i % 5)] for i in range(20)]
    y = [[100.0 + 3 * i] for i in range(20)]
    data = {"kind": "inline", "x": x, "y": y, "normalize": "standard", "normalize_target": "standard"}
    base = {"model": {"layers": NET}, "data": data, "training": {"epochs": 1}}
    r = client.post("/v1/sweeps", json={"base": base, "grid": {"training.seed": [1, 2]}})
    assert r.status_code == 201, r.text
    for job_id in r.json()["jobs"]:
        spec = client.get(f"/v1/jobs/{job_id}").json()["spec"]["data"]
        assert (spec["kind"], spec["normalize"], spec["normalize_target"]) == ("dataset", "standard", "standard")
