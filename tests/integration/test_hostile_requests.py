"""Huge numbers, wrong types, unparseable JSON and unexpected errors: a 4xx naming the field, or a
JSON 500 with a request id; never a bare 5xx."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from app.jobs.models import Job
from app.store.db import session_scope
from tests.conftest import seed_job
from tests.integration.hostile import (
    count,
    error,
)

# -- numbers and types ----------------------------------------------------------------------------

BAD_NUMBERS = [
    ({"data": {"kind": "synthetic", "params": {"sigma": 1e300}}}, "data.params.sigma"),
    ({"data": {"kind": "synthetic", "function": "gaussian", "params": {"a": -1e13}}}, "data.params.a"),
    ({"data": {"kind": "synthetic", "x_range": [-1e30, 1e30]}}, "data.x_range[0]"),
    ({"data": {"kind": "synthetic", "x_range": [1.0, 1.00000001]}}, "same number in float32"),
    ({"data": {"kind": "synthetic", "x_range": ["0", 1]}}, "data.x_range[0]: Input should be a valid number"),
    ({"data": {"kind": "synthetic", "noise_std": 1e20}}, "data.noise_std"),
    ({"data": {"kind": "synthetic", "n": True}}, "data.n"),
    ({"data": {"kind": "synthetic"}, "training": {"learning_rate": 1e-39}}, "training.learning_rate: must be at least"),
    ({"data": {"kind": "synthetic"}, "training": {"learning_rate": "0.1"}}, "training.learning_rate"),
    ({"data": {"kind": "synthetic"}, "layer": {"sigma_init": 1e200}}, "layer.sigma_init"),
    ({"data": {"kind": "synthetic"}, "layer": {"type": "gaussian", "b_init": -1}}, "layer.b_init"),
    ({"data": {"kind": "inline", "x": [1, "2"], "y": [1, 2]}}, "data.x[1]: Input should be a valid number"),
    ({"data": {"kind": "inline", "x": [[1, False]], "y": [[1, 2]]}}, "data.x[0][1]"),
    ({"data": {"kind": "inline", "x": [1, 2], "y": [1, 1e13]}}, "data.y[1]"),
    ({"data": {"kind": "synthetic"}, "layer": {"type": "relu"}}, "layer: needs type 'bump' or 'gaussian'"),
    ({"data": {"kind": "telepathy"}}, "data: needs kind 'synthetic', 'inline' or 'dataset'"),
    ({"data": {}}, "data: needs kind 'synthetic', 'inline' or 'dataset'"),
    ({"data": {"kind": "synthetic"}, "layer": None}, "layer: needs type 'bump' or 'gaussian'"),
]


@pytest.mark.parametrize("body,needle", BAD_NUMBERS)
def test_numbers_must_stay_numbers_within_float32_safe_ranges(
    api: TestClient, db: str, body: dict, needle: str
) -> None:
    before = count(db, Job)
    assert needle in error(api.post("/v1/jobs", json=body), 422)
    assert count(db, Job) == before


@pytest.mark.parametrize(
    "raw",
    [
        '{"data": {"kind": "synthetic", "params": {"sigma": 1e400}}}',
        '{"data": {"kind": "synthetic", "n": 1' + "0" * 5000 + "}}",
        "[" * 100_000 + "]" * 100_000,
        '{"data": "\\ud800"}',
        "\xff\xfe",
    ],
)
def test_unparseable_json_is_a_4xx(api: TestClient, raw: str) -> None:
    r = api.post("/v1/jobs", content=raw.encode("utf-8", "surrogatepass"), headers={"content-type": "application/json"})
    assert r.status_code in (400, 422) and set(r.json()["error"]) == {"type", "message", "details"}, r.text[:300]


def test_an_empty_layer_is_a_bump(api: TestClient) -> None:
    r = api.post("/v1/jobs", json={"data": {"kind": "synthetic", "n": 10}, "layer": {}})
    assert r.status_code == 201 and r.json()["spec"]["layer"] == {
        "type": "bump",
        "sigma_init": None,
        "per_feature": False,
    }


def test_sweep_errors_name_the_request_field_not_union_branches(api: TestClient) -> None:
    r = api.post("/v1/sweeps", json={"base": {"data": {"kind": "synthetic"}}, "points": [{"data.n": "x"}]})
    assert error(r, 422) == "points[0]: data.n: Input should be a valid integer"
    r = api.post(
        "/v1/sweeps",
        json={"base": {"data": {"kind": "inline", "x": [1, "a"], "y": [1, 2]}}, "grid": {"training.epochs": [1, 2]}},
    )
    assert error(r, 422).startswith("base.data.x[1]: Input should be a valid number")


def succeeded(url: str, job_id: str, params: dict[str, Any], version: int = 1) -> None:
    """Mark a job succeeded as a worker would, without training it."""
    with session_scope(url) as s:
        s.execute(update(Job).where(Job.id == job_id).values(status="succeeded", params=params, model_version=version))


def test_predict_takes_json_numbers_only(api: TestClient, db: str) -> None:
    job = api.post("/v1/jobs", json=seed_job(n=100)).json()["id"]
    succeeded(db, job, {"sigma": 0.5})
    for instances, needle in (
        (["0.1"], "instances[0]"),
        ([True], "instances[0]"),
        ([[0.1, "x"]], "instances[0]"),
        ([1e300], "instances[0]: values must fit in float32"),
        ([], "non-empty"),
    ):
        assert needle in error(api.post(f"/v1/models/{job}:predict", json={"instances": instances}), 422)
    r = api.post(f"/v1/models/{job}:predict", json={"instances": [0, 0.5, 3.4e38]})
    assert r.status_code == 200 and r.json()["predictions"][1:] == [0.0, 0.0]


def test_a_model_name_cannot_take_over_another_jobs_model(api: TestClient, db: str) -> None:
    victim = api.post("/v1/jobs", json=seed_job(n=100)).json()["id"]
    succeeded(db, victim, {"sigma": 0.25})
    r = api.post("/v1/jobs", json={**seed_job(n=100), "model_name": victim})
    assert "has the format of a job id" in error(r, 422)
    # a row stored before the rule: the job-id name still serves only that job's own model
    thief = api.post("/v1/jobs", json=seed_job(n=100)).json()["id"]
    with session_scope(db) as s:
        s.execute(update(Job).where(Job.id == thief).values(model_name=victim))
    succeeded(db, thief, {"sigma": 0.75}, version=2)
    model = api.get(f"/v1/models/{victim}").json()
    assert [v["job_id"] for v in model["versions"]] == [victim]
    assert api.post(f"/v1/models/{victim}:predict", json={"instances": [0.0]}).json()["predictions"] == [
        pytest.approx(math.exp(-1), rel=1e-6)
    ]


# -- errors nobody expected -------------------------------------------------------------------------


def test_an_unexpected_error_is_a_json_500_with_a_request_id(
    api: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from app.jobs import service

    def boom(*_: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service, "list_jobs", boom)
    with caplog.at_level(logging.ERROR, logger="bumpfit.api"):
        r = api.get("/v1/jobs")
    request_id = r.headers["x-request-id"]
    assert r.status_code == 500 and r.json()["error"]["type"] == "internal_error"
    assert r.json()["error"]["details"] == {"request_id": request_id} and request_id in r.json()["error"]["message"]
    assert "secret internals" not in r.text and "Traceback" not in r.text
    record = next(rec for rec in caplog.records if getattr(rec, "request_id", None) == request_id)
    assert record.exc_info and "secret internals" in str(record.exc_info[1])
