"""`GET .../artifact?format=saved_model` against a real `bumpfit serve`: a worker makes the SavedModel
on the first request, and TensorFlow opens it and predicts what the API predicts."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import Service, seed_job, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.heavy]  # TensorFlow imported in the test: ~30 s on 2 cores


def fetch(service: Service, path: str) -> bytes:
    """Ask for the SavedModel until the worker has made it (202 until then)."""
    got: dict[str, Any] = {}

    def ready() -> bool:
        r = service.http.get(path, params={"format": "saved_model"})
        assert r.status_code in (200, 202), r.text
        if r.status_code == 202:
            assert r.headers["Retry-After"] == "1" and r.json()["status"] in ("pending", "running")
            return False
        assert r.headers["content-type"] == "application/x-tar"
        got["tar"] = r.content
        return True

    wait_for(ready, 60, f"the SavedModel of {path}", every=0.2)
    return bytes(got["tar"])


def test_saved_model_predicts_what_the_api_predicts(service: Service, tmp_path: Path) -> None:
    import tensorflow as tf

    x = np.random.default_rng(0).uniform(-1, 1, (100, 2))
    gauss = {
        "layer": {"type": "gaussian", "per_feature": True},
        "data": {"kind": "inline", "x": x.tolist(), "y": np.exp(-(x**2)).tolist()},
        "training": {"epochs": 1, "seed": 1},
        "model_name": "g2",
    }
    cases = [
        ("b1", {**seed_job(n=1000, epochs=1), "model_name": "b1"}, [[0.0], [0.2], [0.9]]),
        ("g2", gauss, [[0.0, 0.1], [0.5, -0.3]]),
        (
            "n2",
            {
                "model": {
                    "layers": [
                        {"type": "dense", "units": 3},
                        {"type": "bump", "sigma_init": 0.5},
                        {"type": "dense", "units": 1},
                    ]
                },
                "data": {"kind": "inline", "x": x.tolist(), "y": np.exp(-(x**2)).sum(axis=1, keepdims=True).tolist()},
                "training": {"epochs": 1, "seed": 1},
                "model_name": "n2",
            },
            [[0.0, 0.1], [0.5, -0.3]],
        ),
    ]
    for name, spec, rows in cases:
        job = service.http.post("/v1/jobs", json=spec).json()["id"]
        assert service.wait_job(job)["status"] == "succeeded", service.log_tail()
        path = f"/v1/models/{name}/versions/1/artifact"
        blob = fetch(service, path)
        assert fetch(service, path) == blob  # made once, then kept
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            tar.extractall(tmp_path / name, filter="data")
        assert (tmp_path / name / "1" / "saved_model.pb").exists()
        loaded = tf.saved_model.load(str(tmp_path / name / "1"))
        got = loaded.signatures["serving_default"](x=tf.constant(rows, tf.float32))["output_0"].numpy()
        api = service.http.post(f"/v1/models/{name}:predict", json={"instances": rows}).json()["predictions"]
        np.testing.assert_allclose(got, np.asarray(api, np.float32).reshape(got.shape), rtol=1e-6, atol=1e-7)
    r = service.http.get("/v1/models/b1/versions/1/artifact", params={"format": "onnx"})
    assert r.status_code == 422 and "format" in r.json()["error"]["message"]
