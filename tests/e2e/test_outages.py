"""Database outages under a running service on PostgreSQL: a pause, never a failure. The outage is a
TCP proxy cut in front of the database (tests/outage.py), so the server other tests share stays up."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Service, seed_job, wait_for
from tests.outage import Proxy

SECRETS = ("postgresql", "psycopg", "SELECT", "127.0.0.1", "connection")  # never in an answer during an outage


def progress(svc: Service, job_id: str) -> int:
    """The job's finished epochs."""
    return int(svc.http.get(f"/v1/jobs/{job_id}").json()["progress"]["epoch"])


def check_unavailable(svc: Service, job_id: str) -> None:
    """During the outage every route that needs the database answers 503 JSON, naming no internals."""
    answers = [
        svc.http.get(f"/v1/jobs/{job_id}"),
        svc.http.get("/v1/jobs"),
        svc.http.post("/v1/jobs", json=seed_job()),
        svc.http.get("/readyz"),
    ]
    for r in answers:
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["error"]["type"] == "unavailable" and body["error"]["message"], body
        assert not any(s.lower() in r.text.lower() for s in SECRETS), r.text


def ride_out(svc: Service, proxy: Proxy, job_id: str, seconds: float) -> None:
    """Cut the database for `seconds` once the job has trained a few epochs, checking the API
    answers 503 JSON throughout."""
    wait_for(lambda: progress(svc, job_id) >= 3, 120, f"job {job_id} to train 3 epochs")
    proxy.cut()
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            check_unavailable(svc, job_id)
            time.sleep(min(2.0, max(0.0, end - time.monotonic())))
    finally:
        proxy.restore()


def check_succeeded_once(svc: Service, job_id: str, epochs: int, timeout: float = 120) -> dict[str, Any]:
    """The job succeeded, no error, each epoch's history row once."""
    job = svc.wait_job(job_id, timeout=timeout)
    assert job["status"] == "succeeded", f"{job}\n{svc.log_tail()}"
    assert job["error"] is None and job["model"]["version"] is not None
    history = svc.http.get(f"/v1/jobs/{job_id}/history").json()["history"]
    assert [h["epoch"] for h in history] == list(range(1, epochs + 1))
    return dict(job)


def outage_service(pg_server_url: str, tmp_path: Path, lease: float) -> tuple[Proxy, Service]:
    """A one-worker service reaching PostgreSQL through a proxy that the test can cut."""
    proxy = Proxy(pg_server_url)
    env = {"BUMPFIT_LEASE_SECONDS": str(lease), "BUMPFIT_POLL_SECONDS": "0.2"}
    return proxy, Service(proxy.via, workers=1, log=tmp_path / "serve.log", env=env)


@pytest.mark.slow
def test_an_outage_of_two_leases_pauses_a_running_job_which_then_succeeds(pg_server_url: str, tmp_path: Path) -> None:
    proxy, svc = outage_service(pg_server_url, tmp_path, lease=2)
    try:
        job_id = svc.http.post("/v1/jobs", json=seed_job(n=2000, epochs=30)).json()["id"]
        ride_out(svc, proxy, job_id, seconds=5)
        job = check_succeeded_once(svc, job_id, 30)
        assert job["attempts"] == 1  # held through the outage, not reaped and retrained
        assert "database unreachable" in svc.log.read_text()  # type: ignore[union-attr]
        after = svc.http.post("/v1/jobs", json=seed_job(n=2000, epochs=2)).json()["id"]
        check_succeeded_once(svc, after, 2)
    finally:
        svc.stop()
        proxy.close()


@pytest.mark.heavy
@pytest.mark.timeout(1200)
def test_outages_of_8_30_and_45_seconds_with_a_lease_of_20_each_end_succeeded(
    pg_server_url: str, tmp_path: Path
) -> None:
    proxy, svc = outage_service(pg_server_url, tmp_path, lease=20)
    try:
        for seconds in (8, 30, 45):
            job_id = svc.http.post("/v1/jobs", json=seed_job(n=2000, epochs=100)).json()["id"]
            ride_out(svc, proxy, job_id, seconds)
            check_succeeded_once(svc, job_id, 100, timeout=300)
            with httpx.Client(base_url=svc.base, timeout=30) as http:
                assert http.get("/readyz").status_code == 200
        after = svc.http.post("/v1/jobs", json=seed_job(n=2000, epochs=2)).json()["id"]
        check_succeeded_once(svc, after, 2)
    finally:
        svc.stop()
        proxy.close()
