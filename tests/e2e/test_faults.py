"""Faults with real processes: a job that kills its worker every time, and SQLite with several workers
under concurrent submissions (database outages: test_outages.py)."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Service, seed_job, wait_for

pytestmark = pytest.mark.slow
PG_CLUSTER = ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main"]


def test_a_job_that_kills_its_worker_every_time_fails_after_max_attempts(tmp_path: Path) -> None:
    svc = Service(
        f"sqlite:///{tmp_path}/f.db",
        workers=1,
        log=tmp_path / "serve.log",
        env={"BUMPFIT_MAX_ATTEMPTS": "2", "BUMPFIT_LEASE_SECONDS": "1"},
    )
    try:
        job_id = svc.http.post("/v1/jobs", json=seed_job(n=1_000_000, epochs=40)).json()["id"]
        killed: set[str] = set()

        def kill_or_done() -> bool:
            job = svc.http.get(f"/v1/jobs/{job_id}").json()
            if job["status"] == "running" and job["worker"] not in killed:
                killed.add(job["worker"])
                os.kill(int(job["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
            return job["status"] == "failed"

        wait_for(kill_or_done, 150, "the job to fail after its attempts", every=0.05)
        job = svc.http.get(f"/v1/jobs/{job_id}").json()
        assert job["attempts"] == 2 and len(killed) == 2
        assert job["error"]["type"] == "worker_lost" and "max_attempts" in job["error"]["message"]
        assert svc.http.get(f"/v1/jobs/{job_id}").json()["status"] == "failed"  # not requeued again
    finally:
        svc.stop()


def test_sqlite_with_several_workers_never_shows_database_is_locked(tmp_path: Path) -> None:
    svc = Service(f"sqlite:///{tmp_path}/f.db", workers=3, log=tmp_path / "serve.log")
    statuses: list[int] = []
    try:

        def submit(i: int) -> str:
            with httpx.Client(base_url=svc.base, timeout=60) as http:
                r = http.post("/v1/jobs", json=seed_job(sigma=0.2 + i / 100, n=3000, epochs=2, batch_size=16 + i % 5))
                statuses.append(r.status_code)
                for _ in range(5):
                    statuses.append(http.get("/v1/jobs", params={"limit": 5}).status_code)
                return str(r.json()["id"])

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(submit, range(30)))
        jobs: list[dict[str, Any]] = [svc.wait_job(i, timeout=180) for i in ids]
        assert set(statuses) <= {200, 201}
        assert all(j["status"] == "succeeded" and j["attempts"] == 1 for j in jobs)
        assert "locked" not in (tmp_path / "serve.log").read_text()
    finally:
        svc.stop()
