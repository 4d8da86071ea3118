"""A 2,000-job sweep through a real `bumpfit serve --workers 2` (not timed: bench/scale.py times it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.jobs.models import HistoryRow, Job
from app.store.db import session_scope
from tests.conftest import Service, wait_for

JOBS, EPOCHS = 2000, 8


@pytest.mark.slow
@pytest.mark.heavy  # minutes on 2 cores: .ci/run runs it after the README's command (pytest -m heavy)
def test_a_2000_job_sweep_runs_every_job_exactly_once_and_each_learns_its_sigma(db_url: str, tmp_path: Path) -> None:
    sigmas = [round(0.2 + 0.6 * i / (JOBS - 1), 6) for i in range(JOBS)]
    body = {
        "base": {
            "data": {"kind": "synthetic", "params": {"sigma": 0.5}, "n": 4000},
            "training": {"epochs": EPOCHS, "learning_rate": 0.003},
        },
        "points": [{"data.params.sigma": s, "data.seed": i, "training.seed": i} for i, s in enumerate(sigmas)],
    }
    svc = Service(db_url, workers=2, log=tmp_path / "serve.log")
    try:
        r = svc.http.post("/v1/sweeps", json=body, timeout=120)
        assert r.status_code == 201, r.text
        sweep_id = r.json()["id"]
        wait_for(lambda: svc.http.get(f"/v1/sweeps/{sweep_id}").json()["done"], 300, "the sweep", every=1)
        rows = svc.http.get(f"/v1/sweeps/{sweep_id}").json()["jobs"]
    finally:
        svc.stop()
    assert [row["point"]["data.params.sigma"] for row in rows] == sigmas
    assert all(row["status"] == "succeeded" for row in rows)
    errors = [abs(row["params"]["sigma"] - row["point"]["data.params.sigma"]) for row in rows]
    assert max(errors) < 2e-2 and sorted(errors)[int(0.99 * JOBS)] < 1e-3
    with session_scope(db_url) as s:
        jobs = s.execute(select(Job.attempts, Job.model_version).where(Job.sweep_id == sweep_id)).all()
        epochs = (
            s.execute(
                select(func.count())
                .select_from(HistoryRow)
                .join(Job)
                .where(Job.sweep_id == sweep_id)
                .group_by(HistoryRow.job_id)
            )
            .scalars()
            .all()
        )
    assert len(jobs) == JOBS and all(a == 1 and v == 1 for a, v in jobs)  # each claimed once, one model each
    assert epochs == [EPOCHS] * JOBS  # one history row per epoch, none written twice
