"""An Idempotency-Key's retry matches its job across upgrades: the fingerprint is of what the client
sent, and rows that earlier releases fingerprinted from the filled-in request still match."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.jobs.models import Job
from app.jobs.schemas import JobRequest
from app.jobs.service import digest
from app.store.db import session_scope
from tests.conftest import seed_job

# What the first release (7288e4e) stored as request_hash for seed_job(): its filled-in request,
# without the fields added since (training.early_stopping). Reproduce with, in a checkout of 7288e4e:
#   digest(JobRequest.model_validate(seed_job()).model_dump(mode="json"))
FIRST_RELEASE_HASH = "35407bb870ed4ab3c7e5ba4c0786f6897e6cc19f32e49026c0c5a6d67c8ffc76"


def stored_as(db_url: str, job_id: str, request_hash: str) -> None:
    """Make the job's row as an earlier release wrote it."""
    with session_scope(db_url) as s:
        s.execute(update(Job).where(Job.id == job_id).values(request_hash=request_hash))


def test_the_fingerprint_is_of_the_fields_the_client_sent(client: TestClient, db_url: str) -> None:
    body = seed_job()
    job_id = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "sent"}).json()["id"]
    with session_scope(db_url) as s:
        stored = s.scalars(select(Job.request_hash).where(Job.id == job_id)).one()
    # No default is in it, so a release that adds or changes a default cannot change it.
    assert stored == digest(body)


def test_a_key_stored_by_the_first_release_still_matches_its_retry(client: TestClient, db_url: str) -> None:
    h = {"Idempotency-Key": "from-the-first-release"}
    job_id = client.post("/v1/jobs", json=seed_job(), headers=h).json()["id"]
    stored_as(db_url, job_id, FIRST_RELEASE_HASH)
    again = client.post("/v1/jobs", json=seed_job(), headers=h)
    assert (again.status_code, again.json()["id"]) == (200, job_id)
    other = client.post("/v1/jobs", json=seed_job(sigma=0.7), headers=h)
    assert other.status_code == 409 and "different request body" in other.json()["error"]["message"]


def test_a_key_stored_with_the_filled_in_request_of_a_later_release_still_matches(
    client: TestClient, db_url: str
) -> None:
    h = {"Idempotency-Key": "from-before-0007"}
    job_id = client.post("/v1/jobs", json=seed_job(), headers=h).json()["id"]
    stored_as(db_url, job_id, digest(JobRequest.model_validate(seed_job()).model_dump(mode="json")))
    again = client.post("/v1/jobs", json=seed_job(), headers=h)
    assert (again.status_code, again.json()["id"]) == (200, job_id)
    early = seed_job()
    early["training"]["early_stopping"] = {"patience": 2}
    assert client.post("/v1/jobs", json=early, headers=h).status_code == 409
