"""BUMPFIT_RETENTION_DAYS through a real `bumpfit serve`: its worker deletes old finished jobs that
no label keeps, at its lease reaps."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from app.jobs.models import Job
from app.store import migrate
from app.store.db import session_scope, utcnow
from tests.conftest import Service, seed_job, wait_for


@pytest.mark.heavy  # minutes on 2 cores: .ci/run runs it after the README's command (pytest -m heavy)
def test_the_worker_deletes_old_unlabelled_finished_jobs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bumpfit.db'}"
    migrate.upgrade(url)
    svc = Service(url, workers=1, log=tmp_path / "serve.log", env={"BUMPFIT_RETENTION_DAYS": "30"})
    try:
        ids = [
            svc.http.post("/v1/jobs", json={**seed_job(n=200, epochs=1, sigma=s), "model_name": "kept"}).json()["id"]
            for s in (0.3, 0.5, 0.7)
        ]
        # One fused group: which job gets which version is the group's order, not the submission's.
        versions = {job_id: svc.wait_job(job_id)["model"]["version"] for job_id in ids}
        old, labelled, recent = ids
        label = {"version": versions[labelled]}
        assert svc.http.put("/v1/models/kept/labels/prod", json=label).status_code == 200
        with session_scope(url) as s:
            s.execute(update(Job).where(Job.id.in_([old, labelled])).values(finished_at=utcnow() - timedelta(days=31)))
        try:
            wait_for(lambda: svc.http.get(f"/v1/jobs/{old}").status_code == 404, 30, "retention to delete the old job")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{svc.log_tail()}") from None
        assert svc.http.get(f"/v1/jobs/{labelled}").status_code == 200
        assert svc.http.get(f"/v1/jobs/{recent}").status_code == 200
        kept = [v["version"] for v in svc.http.get("/v1/models/kept").json()["versions"]]
        assert kept == sorted([versions[labelled], versions[recent]])
    finally:
        svc.stop()
