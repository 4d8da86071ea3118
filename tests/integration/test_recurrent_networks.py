"""Recurrent networks through the API: an `.npz` of sequences is uploaded as it is, layers that do
not fit it (or a gate that is no threshold) are refused with a 422 naming the layer and field, a
tiny gated rnn trains one epoch and answers (timesteps, features) instances through TensorFlow
Serving's and V2's routes as its `.keras` artifact does; (heavy) a gated rnn learns whether a
20-step noise sequence sums above 0, and a sweep of 16 such networks trains as one fused group."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.jobs.models import Job
from app.main import create_app
from app.settings import Settings
from app.store import migrate
from app.store.db import session_scope
from tests.integration.training import train_queued, upload_npz

DENSE = {"type": "dense", "units": 1, "activation": "sigmoid"}
GATED = [{"type": "rnn", "units": 3, "gate": {"type": "pulse"}}, DENSE]


def sums(n: int, steps: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noise sequences (n, steps, 1) and whether each sums above 0: a task that needs memory."""
    x = np.random.default_rng(seed).normal(size=(n, steps, 1))
    return x, (x.sum(axis=(1, 2)) > 0)[:, None]


def body(dataset: str, layers: list[dict[str, Any]], **training: Any) -> dict[str, Any]:
    return {
        "model": {"layers": layers},
        "data": {"kind": "dataset", "id": dataset, "normalize": "standard"},
        "training": {
            "loss": "binary_crossentropy",
            "metrics": ["accuracy"],
            "validation_split": 0.2,
            "epochs": 1,
            "learning_rate": 0.01,
            "batch_size": 32,
            "seed": 0,
            **training,
        },
    }


@pytest.fixture(scope="module")
def sequences(api: TestClient) -> str:
    x, y = sums(64, steps=4)
    return upload_npz(api, x, y)


@pytest.fixture(scope="module")
def rows(api: TestClient) -> str:
    x = np.random.default_rng(0).normal(size=(64, 2))
    return upload_npz(api, x, x[:, :1] > 0)


def test_an_npz_of_sequences_is_stored_as_sequences(api: TestClient, sequences: str) -> None:
    listed = {d["id"]: d for d in api.get("/v1/datasets").json()["datasets"]}
    assert (listed[sequences]["n"], listed[sequences]["features"], listed[sequences]["timesteps"]) == (64, 1, 4)
    r = api.post(
        "/v1/jobs", json=body(sequences, [{**GATED[0], "gate": {"type": "pulse", "width_init": 1.5}}, GATED[1]])
    )
    assert r.status_code == 201, r.text
    data = r.json()["spec"]["data"]
    assert (data["features"], data["timesteps"], data["columns"], data["target"]) == (1, 4, ["x1"], ["y1"])
    assert r.json()["spec"]["model"]["layers"][0] == {
        "type": "rnn",
        "units": 3,
        "activation": "tanh",
        "return_sequences": False,
        "gate": {
            "type": "pulse",
            "x_max_init": 1.0,
            "width_init": 1.5,
            "surrogate": "sigmoid",
            "surrogate_width": None,
        },
    }


def test_a_single_layer_on_sequences_is_refused_at_submission_naming_the_dataset(
    api: TestClient, sequences: str
) -> None:
    """y as wide as x's last axis passes the element-wise check, yet a layer acts on rows: a 422
    naming data.id, and no job is queued."""
    before = api.get("/v1/jobs").json()["jobs"]
    r = api.post("/v1/jobs", json={"layer": {"type": "bump"}, "data": {"kind": "dataset", "id": sequences}})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["loc"] == "data.id" and "sequences" in r.json()["error"]["message"]
    assert api.get("/v1/jobs").json()["jobs"] == before


def test_inline_sequences_are_refused_naming_data_x_and_the_upload_to_use(api: TestClient) -> None:
    x, y = sums(8, steps=3)
    body = {"model": {"layers": GATED}, "data": {"kind": "inline", "x": x.tolist(), "y": y.astype(float).tolist()}}
    r = api.post("/v1/jobs", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"].startswith("data.x: inline x is rows (n, features); sequences")
    assert ".npz upload" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "data,layers,where",
    [
        ("sequences", [{"type": "rnn", "units": 2, "gate": {"type": "dense", "units": 2}}], "model.layers.0"),
        ("sequences", [{"type": "rnn", "units": 2, "gate": {"type": "step"}}], "model.layers.0"),
        ("sequences", [{"type": "rnn", "units": 0}], "model.layers.0.units"),
        ("rows", [{"type": "rnn", "units": 1}], "model.layers.0.type"),
        ("sequences", [{"type": "dense", "units": 1}], "model.layers.0.type"),
        ("sequences", [{"type": "rnn", "units": 1, "return_sequences": True}], "model.layers.0.return_sequences"),
    ],
)
def test_bad_recurrent_layers_are_refused_naming_the_layer_and_field(
    api: TestClient, request: pytest.FixtureRequest, data: str, layers: list[dict[str, Any]], where: str
) -> None:
    r = api.post("/v1/jobs", json=body(request.getfixturevalue(data), layers))
    assert r.status_code == 422, r.text
    fields = [str(d["loc"]) for d in r.json()["error"].get("details") or []] + [r.json()["error"]["message"]]
    assert any(where in f for f in fields), r.json()


def test_a_gated_rnn_trains_and_predicts_sequences_as_its_artifact_does(tmp_path: Path) -> None:
    import keras

    import workers.layers  # noqa: F401 - registers the layers

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'rnn.db'}")
    migrate.upgrade(settings.database_url)
    with TestClient(create_app(settings)) as c:
        x, y = sums(64, steps=4)
        job = c.post("/v1/jobs", json={**body(upload_npz(c, x, y), GATED), "model_name": "seq"}).json()
        train_queued(settings)
        done = c.get(f"/v1/jobs/{job['id']}").json()
        assert done["status"] == "succeeded", done.get("error")
        assert set(done["params"]["rnn_1"]) == {"x_max", "width"} and len(done["params"]["rnn_1"]["width"]) == 3
        instances = x[:5].astype(np.float32)
        pred = c.post("/v1/models/seq:predict", json={"instances": instances.tolist()})
        assert pred.status_code == 200, pred.text
        flat = c.post("/v1/models/seq:predict", json={"instances": instances[:, :, 0].tolist()})  # one feature
        assert flat.json()["predictions"] == pred.json()["predictions"]
        bad = c.post("/v1/models/seq:predict", json={"instances": instances[:, :3].tolist()})
        assert bad.status_code == 422 and "[4, 1]" in bad.text, bad.text
        meta = c.get("/v2/models/seq").json()
        assert meta["inputs"][0]["shape"] == [-1, 4, 1], meta
        tensor = {"name": "x", "shape": [5, 4, 1], "datatype": "FP32", "data": instances.reshape(-1).tolist()}
        v2 = c.post("/v2/models/seq/infer", json={"inputs": [tensor]})
        assert v2.status_code == 200, v2.text
        assert np.allclose(v2.json()["outputs"][0]["data"], pred.json()["predictions"], atol=1e-6)
        blob = c.get("/v1/models/seq/versions/1/artifact").content
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "m.keras").write_bytes(blob)
        model = keras.saving.load_model(Path(d) / "m.keras")
    np.testing.assert_allclose(model.predict(instances, verbose=0)[:, 0], pred.json()["predictions"], atol=1e-5)


@pytest.mark.heavy  # 16 networks of 20 steps, fused, 30 epochs: ~30 s on 2 cores
def test_a_gated_rnn_learns_a_task_that_needs_memory_and_a_sweep_of_16_fuses(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'memory.db'}")
    migrate.upgrade(settings.database_url)
    with TestClient(create_app(settings)) as c:
        x, y = sums(2000)
        base = body(upload_npz(c, x, y), [{"type": "rnn", "units": 16, "gate": {"type": "pulse"}}, DENSE], epochs=30)
        r = c.post("/v1/sweeps", json={"base": base, "grid": {"training.seed": list(range(16))}})
        assert r.status_code == 201, r.text
        train_queued(settings)
        jobs = [c.get(f"/v1/jobs/{j}").json() for j in r.json()["jobs"]]
    assert all(j["status"] == "succeeded" for j in jobs), [j["error"] for j in jobs]
    with session_scope(settings.database_url) as s:
        keys = set(s.scalars(select(Job.fuse_key).where(Job.id.in_(r.json()["jobs"]))))
    assert len(keys) == 1, keys
    accuracy = sorted(j["metrics"]["val_accuracy"] for j in jobs)
    assert accuracy[-1] >= 0.9 and np.median(accuracy) >= 0.9, accuracy
    moved = [j for j in jobs if j["params"]["rnn_1"]["x_max"] != [1.0] * 16]
    assert moved, "the gates' x_max never moved"
