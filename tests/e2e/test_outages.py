"""Database outages under a running service on PostgreSQL: a pause, never a failure. The outage is a
TCP proxy cut in front of the database (tests/outage.py), so the server other tests share stays up."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.jobs.models import HistoryRow, Job
from app.store.db import session_scope
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


@pytest.mark.heavy  # 15-35 s on 2 slow cores; .ci/run runs it after the README's command (pytest -m heavy)
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
@pytest.mark.timeout(900)  # about 3 minutes of outages and training
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


SWEEP_JOBS, SWEEP_EPOCHS = 2000, 8


@pytest.mark.heavy
@pytest.mark.timeout(900)  # about 3 minutes of outages and training
@pytest.mark.timeout(1500)
def test_a_2000_job_sweep_through_a_worker_killed_and_an_outage_longer_than_a_lease_succeeds_once_each(
    pg_server_url: str, tmp_path: Path
) -> None:
    proxy = Proxy(pg_server_url)
    env = {"BUMPFIT_LEASE_SECONDS": "15", "BUMPFIT_POLL_SECONDS": "0.2"}
    svc = Service(proxy.via, workers=2, log=tmp_path / "serve.log", env=env)
    body = {
        "base": {
            "data": {"kind": "synthetic", "params": {"sigma": 0.5}, "n": 2000},
            "training": {"epochs": SWEEP_EPOCHS},
        },
        "points": [{"data.params.sigma": 0.2 + 0.6 * i / SWEEP_JOBS, "training.seed": i} for i in range(SWEEP_JOBS)],
    }
    try:
        r = svc.http.post("/v1/sweeps", json=body, timeout=120)
        assert r.status_code == 201, r.text
        sweep_id = r.json()["id"]

        def running_worker() -> int | None:
            jobs = svc.http.get("/v1/jobs", params={"status": "running", "limit": 1}).json()["jobs"]
            if jobs and jobs[0]["progress"]["epoch"] >= 1:
                return int(jobs[0]["worker"].rsplit(":", 1)[1])
            return None

        wait_for(lambda: running_worker() is not None, 300, "a group to train its first epoch")
        os.kill(running_worker() or 0, signal.SIGKILL)  # a worker dies mid-group, as in a crash
        wait_for(lambda: running_worker() is not None, 300, "the other worker to train")
        proxy.cut()  # then the database is away for more than a lease
        time.sleep(25)
        proxy.restore()
        wait_for(lambda: svc.http.get(f"/v1/sweeps/{sweep_id}").json()["done"], 1200, "the sweep", every=2)
    finally:
        svc.stop()
        proxy.close()
    with session_scope(pg_server_url) as s:
        jobs = s.execute(select(Job.status, Job.model_version, Job.error).where(Job.sweep_id == sweep_id)).all()
        epochs = s.execute(
            select(func.count(), func.count(func.distinct(HistoryRow.epoch)), func.max(HistoryRow.epoch))
            .join(Job)
            .where(Job.sweep_id == sweep_id)
            .group_by(HistoryRow.job_id)
        ).all()
    assert len(jobs) == SWEEP_JOBS
    assert all(status == "succeeded" and version == 1 and error is None for status, version, error in jobs)
    assert len(epochs) == SWEEP_JOBS and all(tuple(e) == (SWEEP_EPOCHS,) * 3 for e in epochs)  # each epoch once
