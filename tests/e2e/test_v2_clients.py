"""The Open Inference Protocol (V2) against a real `bumpfit serve`, spoken by the real clients users
run: Triton's `tritonclient.http` (JSON and binary tensors) and KServe's `InferenceRESTClient`.
Models: a bump of one feature, and a gaussian with a parameter per feature over two features."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from tritonclient.utils import InferenceServerException

from tests.conftest import Service, seed_job

pytestmark = pytest.mark.slow
X1 = np.array([[0.0], [0.1], [0.5], [0.9]], dtype=np.float32)
X2 = np.array([[0.0, 0.1], [0.3, -0.2], [1.0, 0.5]], dtype=np.float32)


@pytest.fixture(scope="module")
def models(service: Service) -> dict[str, Any]:
    """Two trained models: `bump` (versions 1 and 2, label `stable` on 1) and `gauss2` (2 features)."""
    http = service.http
    jobs = [
        http.post("/v1/jobs", json={**seed_job(n=2000, epochs=1), "model_name": "bump"}).json()["id"],
        http.post("/v1/jobs", json={**seed_job(sigma=0.3, n=2000, epochs=1), "model_name": "bump"}).json()["id"],
    ]
    x = np.random.default_rng(0).uniform(-1, 1, (200, 2))
    y = np.exp(-((x - 0.2) ** 2)).tolist()
    gauss = {
        "layer": {"type": "gaussian", "per_feature": True},
        "data": {"kind": "inline", "x": x.tolist(), "y": y},
        "training": {"epochs": 1, "seed": 1},
        "model_name": "gauss2",
    }
    jobs.append(http.post("/v1/jobs", json=gauss).json()["id"])
    net = {
        "model": {
            "layers": [
                {"type": "dense", "units": 4},
                {"type": "bump", "sigma_init": 0.5},
                {"type": "dense", "units": 1},
            ]
        },
        "data": {"kind": "inline", "x": x.tolist(), "y": np.exp(-(x**2)).sum(axis=1, keepdims=True).tolist()},
        "training": {"epochs": 1, "seed": 1},
        "model_name": "net",
    }
    r = http.post("/v1/jobs", json=net)
    assert r.status_code == 201, r.text
    jobs.append(r.json()["id"])
    for j in jobs:
        assert service.wait_job(j)["status"] == "succeeded", service.log_tail()
    assert http.put("/v1/models/bump/labels/stable", json={"version": 1}).status_code == 200
    return {"base": service.base, "host": service.base.removeprefix("http://")}


def v1_predict(service: Service, path: str, x: np.ndarray) -> np.ndarray:
    r = service.http.post(f"/v1/models/{path}:predict", json={"instances": x.tolist()})
    assert r.status_code == 200, r.text
    return np.asarray(r.json()["predictions"], dtype=np.float32)


@pytest.fixture
def client(models: dict[str, Any]) -> Iterator[triton.InferenceServerClient]:
    c = triton.InferenceServerClient(models["host"])
    yield c
    c.close()


def test_triton_client_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    assert client.is_model_ready("bump") and client.is_model_ready("bump", "2")
    assert not client.is_model_ready("nope")
    meta = client.get_model_metadata("gauss2")
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}]
    assert meta["outputs"] == [{"name": "output_0", "datatype": "FP32", "shape": [-1, 2]}]
    net = client.get_model_metadata("net")
    assert [t["shape"] for t in net["inputs"] + net["outputs"]] == [[-1, 2], [-1, 1]]
    assert client.get_model_metadata("bump", "stable")["versions"] == ["1", "2"]
    with pytest.raises(InferenceServerException, match="no model 'nope'"):
        client.get_model_metadata("nope")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize(
    ("model", "version", "x"), [("bump", "", X1), ("bump", "stable", X1), ("gauss2", "1", X2), ("net", "1", X2)]
)
def test_triton_client_infers_what_v1_predicts(
    service: Service, client: triton.InferenceServerClient, binary: bool, model: str, version: str, x: np.ndarray
) -> None:
    given = triton.InferInput("x", list(x.shape), "FP32")
    given.set_data_from_numpy(x, binary_data=binary)
    out = triton.InferRequestedOutput("output_0", binary_data=binary)
    result = client.infer(model, [given], model_version=version, outputs=[out], request_id="r1")
    v1 = v1_predict(service, f"{model}/labels/{version}" if version == "stable" else model, x)
    got = result.as_numpy("output_0")
    assert got.dtype == np.float32 and got.shape == (x.shape[0], 1 if model == "net" else x.shape[1])
    np.testing.assert_array_equal(got.reshape(v1.shape), v1)
    response = result.get_response()
    assert response["id"] == "r1" and response["model_name"] == model
    assert response["model_version"] == ("1" if version in ("stable", "1") else "2")
    assert ("parameters" in response["outputs"][0]) == binary


def test_triton_client_default_outputs_come_binary(client: triton.InferenceServerClient) -> None:
    given = triton.InferInput("x", [4], "FP64")
    given.set_data_from_numpy(X1[:, 0].astype(np.float64))
    result = client.infer("bump", [given], model_version="1")
    assert result.get_output("output_0")["parameters"]["binary_data_size"] == 16
    assert result.as_numpy("output_0").shape == (4,)


def test_triton_client_errors(client: triton.InferenceServerClient) -> None:
    wrong = triton.InferInput("x", [2, 1], "FP32")
    wrong.set_data_from_numpy(X2[:, :1].copy()[:2])
    with pytest.raises(InferenceServerException, match=r"shape \[2, 1\] does not match the model's \[-1, 2\]"):
        client.infer("gauss2", [wrong])
    named = triton.InferInput("input", [2, 1], "FP32")
    named.set_data_from_numpy(X1[:2])
    with pytest.raises(InferenceServerException, match="takes one input, 'x'; got 'input'"):
        client.infer("bump", [named])
    with pytest.raises(InferenceServerException, match="no version 9 of model 'bump'"):
        client.infer("bump", [triton.InferInput("x", [1], "FP32").set_data_from_numpy(X1[0])], model_version="9")


def test_v2_errors_have_v2_shape_and_v1_keeps_its_own(service: Service, models: dict[str, Any]) -> None:
    r = service.http.post("/v2/models/bump/infer", json={"inputs": [{"name": "x", "shape": [2], "datatype": "FP32"}]})
    assert r.status_code == 400 and r.json() == {
        "error": "input 'x': no data (give `data`, or `parameters.binary_data_size` and the bytes)"
    }
    assert service.http.get("/v2/models/nope").json() == {"error": "no model 'nope'"}
    assert service.http.get("/v1/models/nope").json()["error"]["type"] == "not_found"


def test_kserve_client(service: Service, models: dict[str, Any]) -> None:
    async def talk() -> None:
        client = InferenceRESTClient(RESTConfig(protocol="v2"))
        try:
            assert await client.is_server_live(models["base"])
            assert await client.is_server_ready(models["base"])
            assert await client.is_model_ready(models["base"], "gauss2")
            assert not await client.is_model_ready(models["base"], "nope")
            for model in ("gauss2", "net"):  # a single layer and a network
                assert await client.is_model_ready(models["base"], model)
                for binary in (False, True):
                    given = InferInput("x", list(X2.shape), "FP32")
                    given.set_data_from_numpy(X2, binary_data=binary)
                    result = await client.infer(models["base"], InferRequest(model, [given], request_id="k"), model)
                    got = result.outputs[0].as_numpy()
                    v1 = v1_predict(service, model, X2)
                    assert got.shape[0] == X2.shape[0]
                    np.testing.assert_array_equal(got.reshape(v1.shape), v1)
                    assert result.id == "k" and result.model_name == model
        finally:
            await client.close()

    asyncio.run(talk())
