"""The Open Inference Protocol (V2) routes in process, on SQLite and PostgreSQL: binary tails cut by
`Inference-Header-Content-Length`, bad requests as V2 400s, labels as versions, keys and open probes.
The real clients' test is tests/e2e/test_v2_clients.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.http.auth import new_key
from app.main import create_app
from app.settings import Settings
from tests.conftest import seed_job
from tests.integration.test_hostile_requests import succeeded

HEADER = "Inference-Header-Content-Length"
READ, READ_ENTRY = new_key("read")


@pytest.fixture
def model(client: TestClient, db_url: str) -> str:
    job = client.post("/v1/jobs", json={**seed_job(n=100), "model_name": "bump"}).json()["id"]
    succeeded(db_url, job, {"sigma": 0.5})
    return job


def binary(header: dict[str, Any], *tails: bytes) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(header).encode()
    return head + b"".join(tails), {HEADER: str(len(head)), "Content-Type": "application/octet-stream"}


def infer(client: TestClient, body: dict[str, Any], path: str = "bump") -> Any:
    return client.post(f"/v2/models/{path}/infer", json=body)


def x_input(shape: list[int], data: list[Any], datatype: str = "FP32") -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}]}


def test_binary_inputs_and_outputs_round_trip(client: TestClient, model: str) -> None:
    x = np.array([0.0, 0.1, 0.9], dtype="<f8")
    head = {
        "inputs": [{"name": "x", "shape": [3, 1], "datatype": "FP64", "parameters": {"binary_data_size": 24}}],
        "outputs": [{"name": "output_0", "parameters": {"binary_data": True}}],
    }
    body, headers = binary(head, x.tobytes())
    r = client.post("/v2/models/bump/versions/1/infer", content=body, headers=headers)
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    n = int(r.headers[HEADER])
    meta = json.loads(r.content[:n])
    assert meta["outputs"] == [
        {"name": "output_0", "shape": [3, 1], "datatype": "FP32", "parameters": {"binary_data_size": 12}}
    ]
    v1 = client.post("/v1/models/bump:predict", json={"instances": x.tolist()}).json()["predictions"]
    np.testing.assert_array_equal(np.frombuffer(r.content[n:], "<f4"), np.asarray(v1, np.float32))
    # Nested JSON data, integer datatype, JSON output: the same numbers.
    r = infer(client, x_input([2, 1], [[0], [1]], "INT32"))
    assert r.headers["content-type"] == "application/json" and HEADER not in r.headers
    assert (
        r.json()["outputs"][0]["data"]
        == client.post("/v1/models/bump:predict", json={"instances": [0.0, 1.0]}).json()["predictions"]
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (x_input([2], [0.1]), "input 'x': 1 values in data, expected 2 for shape [2]"),
        (x_input([1, 2], [0.1, 0.2]), "input 'x': shape [1, 2] does not match the model's [-1, 1] (or [-1])"),
        (x_input([1], ["a"], "BYTES"), "datatype 'BYTES' is not numeric"),
        (x_input([1], [True]), "input 'x': data must be numbers for datatype FP32"),
        (x_input([1], [1e39]), "NaN, infinite or beyond-float32 values are not allowed"),
        (x_input([-1], []), "shape [-1] has a negative dimension"),
        ({"inputs": "x"}, "invalid inference request: inputs: Input should be a valid array"),
        ({**x_input([1], [0.1]), "outputs": [{"name": "y"}]}, "has one output, 'output_0'; got 'y'"),
    ],
)
def test_bad_requests_are_v2_400s(client: TestClient, model: str, body: dict[str, Any], message: str) -> None:
    r = infer(client, body)
    assert r.status_code == 400 and message in r.json()["error"] and set(r.json()) == {"error"}


def test_binary_framing_errors(client: TestClient, model: str) -> None:
    head = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}]}
    for tail, message in (
        (b"\0" * 4, "binary_data_size 8 runs past the end of the body"),
        (b"\0" * 12, "the body has 4 bytes after the last binary input"),
    ):
        body, headers = binary(head, tail)
        r = client.post("/v2/models/bump/infer", content=body, headers=headers)
        assert r.status_code == 400 and message in r.json()["error"]
    r = client.post("/v2/models/bump/infer", content=b"{}", headers={HEADER: "99"})
    assert r.status_code == 400 and "not a length within the body's 2 bytes" in r.json()["error"]


def test_labels_name_versions_and_unknowns_are_404(client: TestClient, model: str) -> None:
    assert client.put("/v1/models/bump/labels/stable", json={"version": 1}).status_code == 200
    r = infer(client, x_input([1], [0.0]), "bump/versions/stable")
    assert r.status_code == 200 and r.json()["model_version"] == "1"
    assert client.get("/v2/models/bump/versions/stable/ready").json() == {"name": "bump", "ready": True}
    for path in ("/v2/models/nope", "/v2/models/bump/versions/7", "/v2/models/bump/versions/canary/ready"):
        r = client.get(path)
        assert r.status_code == 404 and set(r.json()) == {"error"}, path


@pytest.fixture
def secured(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=db_url, api_keys=READ_ENTRY))) as c:
        yield c


def test_probes_are_open_and_the_rest_needs_a_key(secured: TestClient) -> None:
    assert secured.get("/v2/health/live").json() == {"live": True}
    assert secured.get("/v2/health/ready").json() == {"ready": True}
    r = secured.get("/v2")
    assert r.status_code == 401 and r.json() == {
        "error": "missing API key: send the header Authorization: Bearer <key>"
    }
    r = secured.post("/v2/models/m/infer", json={}, headers={"Authorization": f"Bearer {READ}"})
    assert r.status_code == 403 and set(r.json()) == {"error"}
    assert secured.get("/v2", headers={"Authorization": f"Bearer {READ}"}).json()["name"] == "bumpfit"
