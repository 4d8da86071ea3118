"""bumpfit's V2 routes against the reference server: the same requests, good and bad, to Triton
(`tritonserver` from the nvidia-pytriton wheel, CPU, Python-backend models computing the same
functions) and to a real `bumpfit serve`, comparing status codes, JSON keys, datatypes, shapes,
binary layouts and numbers. Where bumpfit differs on purpose, INTENDED says so in one line each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import Service
from tests.integration.test_hostile_requests import succeeded
from tests.triton_server import TritonServer

# The first run downloads the Triton wheels (up to 900 s allowed for it).
pytestmark = [pytest.mark.slow, pytest.mark.heavy, pytest.mark.timeout(1200)]
HEADER = "Inference-Header-Content-Length"
BUMP = {"sigma": 0.5}
GAUSS = {"a": [1.0, 2.0], "b": [1.0, 0.5], "c": [0.1, 0.2]}

INTENDED = {
    "health bodies": "health and readiness answer KServe's JSON ({'live': true}); Triton's bodies are empty",
    "unknown model": "readiness of an unknown model is a 404, as its metadata is in both; Triton's readiness says 400",
    "malformed": "a body that is no valid request is a 400; Triton answers bad JSON or a wrong data count with 500",
    "platform": "a model's platform is 'bumpfit'; Triton names its backend ('python')",
    "server metadata": "GET /v2 names bumpfit, its version and only the extension it has, binary_tensor_data",
    "datatypes": "any numeric input datatype is computed in float32; Triton refuses all but the configured FP32",
    "model ready body": "a model's readiness answers {'name', 'ready'}; Triton's body is empty",
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TritonServer, Service]]:
    root = tmp_path_factory.mktemp("differential")
    triton = TritonServer(root / "triton", {"bump": ("bump", 1, BUMP), "gauss2": ("gaussian", 2, GAUSS)})
    url = f"sqlite:///{root / 'bumpfit.db'}"
    service = Service(url, workers=0, log=root / "serve.log")
    try:
        x = [[0.0, 0.1], [0.2, 0.3]]
        specs = {
            "bump": ({"data": {"kind": "synthetic", "n": 100}, "model_name": "bump"}, BUMP),
            "gauss2": (
                {
                    "layer": {"type": "gaussian", "per_feature": True},
                    "data": {"kind": "inline", "x": x, "y": x},
                    "model_name": "gauss2",
                },
                GAUSS,
            ),
        }
        for spec, params in specs.values():
            r = service.http.post("/v1/jobs", json=spec)
            assert r.status_code == 201, r.text
            succeeded(url, r.json()["id"], params)  # as a worker would: no training needed here
        yield triton, service
    finally:
        service.stop()
        triton.stop()


def both(servers: tuple[TritonServer, Service], method: str, path: str, **kw: Any) -> tuple[Any, Any]:
    triton, service = servers
    return httpx.request(method, triton.base + path, timeout=30, **kw), service.http.request(method, path, **kw)


def x_input(shape: list[int], data: list[Any], datatype: str = "FP32", name: str = "x") -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def same_status_and_keys(t: Any, b: Any) -> None:
    assert t.status_code == b.status_code, (t.text, b.text)
    if t.headers.get("content-type", "").startswith("application/json"):
        assert set(t.json()) == set(b.json()), (t.json(), b.json())


@pytest.mark.parametrize("path", ["/v2/health/live", "/v2/health/ready", "/v2/models/bump/ready"])
def test_health_and_readiness(servers: Any, path: str) -> None:
    t, b = both(servers, "GET", path)
    assert t.status_code == b.status_code == 200
    why = INTENDED["model ready body" if "/models/" in path else "health bodies"]
    assert t.content == b"" and b.json()["ready" if "ready" in path else "live"] is True, why


def test_server_metadata(servers: Any) -> None:
    t, b = both(servers, "GET", "/v2")
    same_status_and_keys(t, b)
    assert "binary_tensor_data" in t.json()["extensions"] and b.json()["extensions"] == ["binary_tensor_data"]
    assert b.json()["name"] == "bumpfit", INTENDED["server metadata"]


@pytest.mark.parametrize("path", ["/v2/models/bump", "/v2/models/gauss2", "/v2/models/bump/versions/1"])
def test_model_metadata(servers: Any, path: str) -> None:
    t, b = both(servers, "GET", path)
    same_status_and_keys(t, b)
    tm, bm = t.json(), b.json()
    for key in ("name", "versions", "inputs", "outputs"):
        assert tm[key] == bm[key], key
    assert (tm["platform"], bm["platform"]) == ("python", "bumpfit"), INTENDED["platform"]


@pytest.mark.parametrize("path", ["/v2/models/nope", "/v2/models/bump/versions/7", "/v2/models/nope/ready"])
def test_unknown_models(servers: Any, path: str) -> None:
    t, b = both(servers, "GET", path)
    assert set(t.json()) == set(b.json()) == {"error"}
    if path.endswith("/ready"):
        assert (t.status_code, b.status_code) == (400, 404), INTENDED["unknown model"]
    else:
        assert t.status_code == b.status_code == 404


GOOD = [
    ("bump", {"inputs": [x_input([4, 1], [0.0, 0.1, 0.5, 0.9])]}),
    ("bump", {"id": "req-7", "inputs": [x_input([2, 1], [[0.3], [-0.2]])]}),
    ("gauss2", {"inputs": [x_input([3, 2], [0.0, 0.1, 0.2, 0.3, -1.0, 2.0])]}),
    ("gauss2", {"inputs": [x_input([1, 2], [0.5, 0.5])], "outputs": [{"name": "output_0"}]}),
]


@pytest.mark.parametrize(("model", "body"), GOOD)
def test_json_inference(servers: Any, model: str, body: dict[str, Any]) -> None:
    t, b = both(servers, "POST", f"/v2/models/{model}/infer", json=body)
    same_status_and_keys(t, b)
    assert t.status_code == 200
    (to,), (bo,) = t.json()["outputs"], b.json()["outputs"]
    assert set(to) == set(bo) and {k: to[k] for k in ("name", "datatype", "shape")} == {
        k: bo[k] for k in ("name", "datatype", "shape")
    }
    np.testing.assert_allclose(np.float32(bo["data"]), np.float32(to["data"]), rtol=1e-6)
    assert t.json().get("id") == b.json().get("id") and t.json()["model_version"] == b.json()["model_version"]


def binary_request(x: np.ndarray, outputs: bool) -> tuple[bytes, dict[str, str]]:
    head: dict[str, Any] = {
        "inputs": [
            {"name": "x", "shape": list(x.shape), "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}}
        ]
    }
    if outputs:
        head["outputs"] = [{"name": "output_0", "parameters": {"binary_data": True}}]
    else:
        head["parameters"] = {"binary_data_output": True}
    text = json.dumps(head).encode()
    return text + x.astype("<f4").tobytes(), {HEADER: str(len(text)), "Content-Type": "application/octet-stream"}


@pytest.mark.parametrize("per_output", [True, False], ids=["binary_data", "binary_data_output"])
@pytest.mark.parametrize("model", ["bump", "gauss2"])
def test_binary_inference(servers: Any, model: str, per_output: bool) -> None:
    x = np.array([[0.0, 0.1], [0.4, -0.6], [0.9, 1.5]], np.float32)[:, : 1 if model == "bump" else 2]
    content, headers = binary_request(x, per_output)
    t, b = both(servers, "POST", f"/v2/models/{model}/infer", content=content, headers=headers)
    assert t.status_code == b.status_code == 200
    tn, bn = int(t.headers[HEADER]), int(b.headers[HEADER])
    th, bh = json.loads(t.content[:tn]), json.loads(b.content[:bn])
    assert set(th) == set(bh) and set(th["outputs"][0]) == set(bh["outputs"][0])
    assert th["outputs"][0]["parameters"] == bh["outputs"][0]["parameters"]  # {"binary_data_size": n}
    assert th["outputs"][0]["shape"] == bh["outputs"][0]["shape"] and len(t.content) - tn == len(b.content) - bn
    np.testing.assert_allclose(np.frombuffer(b.content[bn:], "<f4"), np.frombuffer(t.content[tn:], "<f4"), rtol=1e-6)


BAD = [
    ("unknown input", {"inputs": [x_input([1, 1], [0.1], name="y")]}),
    ("two inputs", {"inputs": [x_input([1, 1], [0.1]), x_input([1, 1], [0.1], name="z")]}),
    ("no inputs", {"inputs": []}),
    ("wrong width", {"inputs": [x_input([2, 2], [0.1, 0.2, 0.3, 0.4])]}),
    ("BYTES", {"inputs": [x_input([1, 1], ["a"], "BYTES")]}),
    ("unknown output", {"inputs": [x_input([1, 1], [0.1])], "outputs": [{"name": "nope"}]}),
]


@pytest.mark.parametrize(("what", "body"), BAD, ids=[w for w, _ in BAD])
def test_bad_requests_are_400_with_an_error(servers: Any, what: str, body: dict[str, Any]) -> None:
    t, b = both(servers, "POST", "/v2/models/bump/infer", json=body)
    assert t.status_code == b.status_code == 400, (what, t.text, b.text)
    assert set(t.json()) == set(b.json()) == {"error"}


@pytest.mark.parametrize(
    "content",
    [b"{", b"[]", b'{"inputs": "x"}', json.dumps({"inputs": [x_input([3, 1], [0.1, 0.2])]}).encode()],
    ids=["truncated", "array", "inputs-string", "count-mismatch"],
)
def test_malformed_bodies(servers: Any, content: bytes) -> None:
    t, b = both(servers, "POST", "/v2/models/bump/infer", content=content)
    assert set(t.json()) == set(b.json()) == {"error"}
    assert (t.status_code, b.status_code) == (500, 400), INTENDED["malformed"]


def test_other_datatypes_are_an_intended_difference(servers: Any) -> None:
    body = {"inputs": [x_input([2, 1], [0.1, 0.2], "FP64")]}
    t, b = both(servers, "POST", "/v2/models/bump/infer", json=body)
    assert (t.status_code, b.status_code) == (400, 200), INTENDED["datatypes"]
    assert b.json()["outputs"][0]["datatype"] == "FP32"
