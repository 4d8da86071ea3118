"""API keys (hashed, scoped, required beyond loopback), CORS, and every configurable limit."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.http.auth import hash_key, new_key, parse_keys
from app.main import create_app
from app.settings import Settings
from tests.conftest import ROOT, seed_job

READ, READ_ENTRY = new_key("read")
SUBMIT, SUBMIT_ENTRY = new_key("submit")


@pytest.fixture
def secured(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=db_url, api_keys=f"{READ_ENTRY},{SUBMIT_ENTRY}"))) as c:
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_keys_are_stored_hashed() -> None:
    assert SUBMIT not in SUBMIT_ENTRY and SUBMIT_ENTRY == f"{hash_key(SUBMIT)}:submit"
    with pytest.raises(ValueError, match="bumpfit keys new"):
        parse_keys("plaintext-key:submit")
    with pytest.raises(ValueError):
        parse_keys(f"{hash_key('x')}:root")  # not a scope (admin is one since issue 34)


def test_scopes(secured: TestClient) -> None:
    for headers, status, kind in (
        ({}, 401, "unauthorized"),
        (bearer("bf_wrong"), 401, "unauthorized"),
        ({"Authorization": "Basic abc"}, 401, "unauthorized"),
        (bearer(READ), 403, "forbidden"),
    ):
        r = secured.post("/v1/jobs", json=seed_job(), headers=headers)
        assert r.status_code == status and r.json()["error"]["type"] == kind
    assert secured.get("/v1/jobs").status_code == 401
    assert secured.get("/v1/jobs", headers=bearer(READ)).json()["jobs"] == []
    created = secured.post("/v1/jobs", json=seed_job(), headers=bearer(SUBMIT))
    assert created.status_code == 201
    assert secured.get(f"/v1/jobs/{created.json()['id']}", headers=bearer(SUBMIT)).status_code == 200
    assert secured.post(f"/v1/jobs/{created.json()['id']}:cancel", headers=bearer(READ)).status_code == 403
    for path in ("/healthz", "/readyz", "/metrics", "/"):
        assert secured.get(path).status_code == 200, path


@pytest.mark.parametrize(
    "kwargs",
    [
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        {"json": {"data": {"kind": "telepathy"}}},
    ],
)
def test_keys_are_checked_before_the_body_is_read(secured: TestClient, kwargs: dict) -> None:
    for headers, status in (({}, 401), (bearer(READ), 403)):
        r = secured.post("/v1/jobs", **{**kwargs, "headers": {**kwargs.get("headers", {}), **headers}})
        assert r.status_code == status, r.text[:200]
    r = secured.post("/v1/datasets", files={"file": ("d.csv", b"x,y\n1,2\n")})
    assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"


def test_serve_refuses_a_public_address_without_keys(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "serve",
            "--host",
            "0.0.0.0",
            "--workers",
            "0",
            "--database-url",
            f"sqlite:///{tmp_path}/x.db",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert r.returncode != 0 and "needs API keys" in r.stderr


def test_cors_is_off_unless_configured(db_url: str) -> None:
    preflight = {"Origin": "https://example.org", "Access-Control-Request-Method": "POST"}
    with TestClient(create_app(Settings(database_url=db_url))) as c:
        assert "access-control-allow-origin" not in c.options("/v1/jobs", headers=preflight).headers
    with TestClient(create_app(Settings(database_url=db_url, cors_origins="https://example.org"))) as c:
        r = c.options("/v1/jobs", headers=preflight)
        assert r.headers["access-control-allow-origin"] == "https://example.org"


@pytest.mark.parametrize(
    "limit,value,request_",
    [
        ("max_inline_points", 10, ("post", "/v1/jobs", {"data": {"kind": "inline", "x": [0.0] * 11, "y": [0.0] * 11}})),
        ("max_features", 2, ("post", "/v1/jobs", {"data": {"kind": "inline", "x": [[0.0] * 3], "y": [[0.0] * 3]}})),
        ("max_points", 100, ("post", "/v1/jobs", {"data": {"kind": "synthetic", "n": 101}})),
        (
            "max_compute",
            1000,
            ("post", "/v1/jobs", {"data": {"kind": "synthetic", "n": 101}, "training": {"epochs": 10}}),
        ),
        (
            "max_sweep_jobs",
            2,
            (
                "post",
                "/v1/sweeps",
                {
                    "base": {"data": {"kind": "synthetic", "n": 10}},
                    "points": [{"training.epochs": e} for e in (1, 2, 3)],
                },
            ),
        ),
    ],
)
def test_each_limit_is_configurable_and_named(db_url: str, limit: str, value: int, request_: tuple) -> None:
    method, path, body = request_
    with TestClient(create_app(Settings(database_url=db_url, **{limit: value}))) as c:
        r = getattr(c, method)(path, json=body)
        assert r.status_code == 413, r.text[:300]
        assert "limit" in r.json()["error"]["message"]
        assert c.get("/v1/jobs").json()["jobs"] == []


def test_upload_and_predict_limits(db_url: str) -> None:
    with TestClient(create_app(Settings(database_url=db_url, max_upload_bytes=100, max_predict_instances=3))) as c:
        big = ("x,y\n" + "0.1,0.2\n" * 50).encode()
        r = c.post("/v1/datasets", files={"file": ("d.csv", big)})
        assert r.status_code == 413 and "upload limit of 100 bytes" in r.json()["error"]["message"]
        job = c.post("/v1/jobs", json=seed_job()).json()
        from sqlalchemy import update

        from app.jobs.models import Job
        from app.store.db import session_scope

        with session_scope(db_url) as s:  # a succeeded model without running a worker
            s.execute(update(Job).values(status="succeeded", params={"sigma": 0.5}, model_version=1))
        r = c.post(f"/v1/models/{job['id']}:predict", json={"instances": [0.1] * 4})
        assert r.status_code == 413 and "limit 3" in r.json()["error"]["message"]
        assert c.post(f"/v1/models/{job['id']}:predict", json={"instances": [0.1] * 3}).status_code == 200


def test_asking_a_model_for_bounds_or_an_optimum_needs_the_predict_scope(db_url: str) -> None:
    predict, predict_entry = new_key("predict")
    settings = Settings(database_url=db_url, api_keys=f"{READ_ENTRY},{predict_entry}")
    with TestClient(create_app(settings)) as c:
        for question in (":bounds", ":optimize"):
            assert c.post(f"/v1/models/nope{question}", json={}, headers=bearer(READ)).status_code == 403
            # past the key, the model is looked up: the predict scope may ask
            assert c.post(f"/v1/models/nope{question}", json={}, headers=bearer(predict)).status_code == 404
