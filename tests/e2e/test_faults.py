"""Faults with real processes: a job that kills its worker every time, PostgreSQL restarting under a
running service, and SQLite with several workers under concurrent submissions (longer database
outages: test_outages.py)."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import postgres
from tests.conftest import Service, seed_job, wait_for

pytestmark = pytest.mark.slow


@pytest.mark.heavy  # minutes on 2 cores: .ci/run runs it after the README's command (pytest -m heavy)
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


@pytest.mark.heavy  # 15-35 s on 2 slow cores; .ci/run runs it after the README's command (pytest -m heavy)
def test_postgresql_restart_gives_503_then_the_service_recovers(tmp_path: Path) -> None:
    # A server of the test's own: stopping the session's (or the machine's) would fail other tests.
    with postgres.throwaway() as pg:
        restart_under_a_running_service(pg, tmp_path)


def restart_under_a_running_service(pg: postgres.Throwaway, tmp_path: Path) -> None:
    """Stop `pg` under a service that finished a job, expect 503s, start it, and expect a job to succeed."""
    svc = Service(pg.url, workers=1, log=tmp_path / "serve.log", env={"BUMPFIT_LEASE_SECONDS": "20"})
    try:
        first = svc.http.post("/v1/jobs", json=seed_job(n=2000, epochs=1)).json()["id"]
        assert svc.wait_job(first)["status"] == "succeeded"
        pg.stop()
        try:
            assert svc.http.get("/readyz").status_code == 503
            down = svc.http.get("/v1/jobs")
            assert down.status_code == 503 and down.json()["error"]["type"] == "unavailable"
            assert svc.http.post("/v1/jobs", json=seed_job()).status_code == 503
        finally:
            pg.start()
        wait_for(lambda: svc.http.get("/readyz").status_code == 200, 60, "readyz after the restart")
        second = svc.http.post("/v1/jobs", json=seed_job(n=2000, epochs=1)).json()["id"]
        assert svc.wait_job(second, timeout=90)["status"] == "succeeded"
    finally:
        svc.stop()


@pytest.mark.heavy  # minutes on 2 cores: .ci/run runs it after the README's command (pytest -m heavy)
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
