"""Model exports through the queue of requests in `model_exports`, on SQLite and PostgreSQL: the API
asks (202), one worker claims, the answer is kept; failures and deleted versions. The worker's own
SavedModel is checked in tests/e2e/test_saved_model.py."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.jobs.models import Artifact
from app.serving import exports
from app.store.db import session_scope
from tests.conftest import seed_job
from tests.integration.test_hostile_requests import succeeded

PATH = "/v1/models/m/versions/1/artifact"


@pytest.fixture
def job(client: TestClient, db_url: str) -> str:
    job_id = client.post("/v1/jobs", json={**seed_job(n=100), "model_name": "m"}).json()["id"]
    succeeded(db_url, job_id, {"sigma": 0.5})
    with session_scope(db_url) as s:
        s.add(Artifact(job_id=job_id, data=b"keras bytes"))
    return job_id


def test_asked_claimed_once_made_and_kept(client: TestClient, db_url: str, job: str) -> None:
    r = client.get(PATH, params={"format": "saved_model"})
    assert r.status_code == 202 and r.json()["status"] == "pending" and r.headers["Retry-After"] == "1"
    assert client.get(PATH).content == b"keras bytes"  # the default format is unchanged
    with session_scope(db_url) as s:
        claimed = exports.claim(s, 60)
        assert claimed is not None and (claimed.job_id, claimed.version, claimed.keras) == (job, 1, b"keras bytes")
        assert exports.claim(s, 60) is None  # held by its lease
    assert client.get(PATH, params={"format": "saved_model"}).json()["status"] == "running"
    with session_scope(db_url) as s:
        exports.finish(s, job, exports.SAVED_MODEL, data=b"tar bytes")
    r = client.get(PATH, params={"format": "saved_model"})
    assert r.status_code == 200 and r.content == b"tar bytes" and r.headers["content-type"] == "application/x-tar"
    assert 'filename="m-v1.saved_model.tar"' in r.headers["content-disposition"]


def test_an_expired_lease_is_claimed_again_and_a_failure_is_said(client: TestClient, db_url: str, job: str) -> None:
    client.get(PATH, params={"format": "saved_model"})
    with session_scope(db_url) as s:
        assert exports.claim(s, -1) is not None  # its lease is already over: another worker may take it
        assert exports.claim(s, 60) is not None
        exports.finish(s, job, exports.SAVED_MODEL, error="ValueError: no")
    r = client.get(PATH, params={"format": "saved_model"})
    assert r.status_code == 500 and r.json()["error"]["message"].endswith("failed: ValueError: no")


def test_deleting_the_version_deletes_its_exports(client: TestClient, db_url: str, job: str) -> None:
    client.get(PATH, params={"format": "saved_model"})
    assert client.delete("/v1/models/m/versions/1").status_code == 204
    with session_scope(db_url) as s:
        assert exports.claim(s, 60) is None
    assert client.get(PATH, params={"format": "saved_model"}).status_code == 404
