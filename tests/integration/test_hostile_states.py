"""Every route answers for a job in every state; inline data is stored once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.datasets.models import Dataset
from app.jobs.models import Job
from app.main import create_app
from app.settings import Settings
from app.store import queue
from app.store.db import session_scope, utcnow
from tests.conftest import Service, seed_job
from tests.integration.hostile import (
    CANCELLED,
    FAILED,
    count,
    error,
)

# -- every route, every state -------------------------------------------------------------------------


def make_states(url: str, client: TestClient) -> dict[str, str]:
    """One job in each state a job can be in, as the workers and the reaper leave them."""
    ids = {
        s: client.post("/v1/jobs", json=seed_job(n=200, sigma=0.1 * (i + 1))).json()["id"]
        for i, s in enumerate(("cancelled", "diverged", "reclaimed", "running", "queued"))
    }
    inline = client.post("/v1/jobs", json={"data": {"kind": "inline", "x": [0.1, 0.2, 0.3], "y": [1, 2, 3]}})
    ids["inline"] = inline.json()["id"]
    client.post(f"/v1/jobs/{ids['cancelled']}:cancel")
    with session_scope(url) as s:
        token, _ = queue.claim(s, "w:1", ("auto", "cpu"), 3, 60)  # diverged, reclaimed, running
    with session_scope(url) as s:
        nan, inf = float("nan"), float("inf")
        for epoch, loss, sigma in ((1, 0.5, 0.2), (2, inf, nan), (3, nan, inf)):
            assert ids["diverged"] in queue.add_epoch(
                s,
                token,
                {
                    ids["diverged"]: {
                        "epoch": epoch,
                        "loss": loss,
                        "val_loss": nan,
                        "seconds": 0.1,
                        "params": {"sigma": sigma},
                    }
                },
            )
        assert ids["running"] in queue.add_epoch(
            s,
            token,
            {ids["running"]: {"epoch": 1, "loss": 0.1, "val_loss": None, "seconds": 0.1, "params": {"sigma": 0.3}}},
        )
        queue.finish(
            s,
            ids["diverged"],
            token,
            FAILED,
            params={"sigma": nan},
            error={"type": "diverged", "message": "training diverged in epoch 2"},
        )
        s.execute(update(Job).where(Job.id == ids["reclaimed"]).values(lease_expires_at=utcnow() - timedelta(1)))
    with session_scope(url) as s:
        queue.reap(s)
    return ids


def test_every_route_answers_for_a_job_in_every_state(db_url: str) -> None:
    with TestClient(create_app(Settings(database_url=db_url))) as client:
        ids = make_states(db_url, client)
        statuses = {k: client.get(f"/v1/jobs/{v}").json()["status"] for k, v in ids.items()}
        assert statuses == {
            "cancelled": CANCELLED,
            "diverged": FAILED,
            "reclaimed": "queued",
            "running": "running",
            "queued": "queued",
            "inline": "queued",
        }
        for state, job_id in ids.items():
            for path in ("", "/history", "/plot.svg", "/sample?size=10"):
                r = client.get(f"/v1/jobs/{job_id}{path}")
                assert r.status_code == 200, (state, path, r.text[:300])
            if statuses[state] in ("cancelled", "failed"):
                events = client.get(f"/v1/jobs/{job_id}/events").text
                assert events.startswith("event: progress") and "event: end" in events
        history = client.get(f"/v1/jobs/{ids['diverged']}/history").json()["history"]
        assert [(h["loss"], h["params"]["sigma"]) for h in history] == [(0.5, 0.2), (None, None), (None, None)]
        assert client.get(f"/v1/jobs/{ids['diverged']}").json()["params"] == {"sigma": None}
        svg = client.get(f"/v1/jobs/{ids['diverged']}/plot.svg").text
        assert "failed, epoch 3/3" in svg and "<polyline" in svg


def test_events_of_an_unfinished_job_start_at_once(db: str) -> None:
    service = Service(db, workers=0)
    try:
        job = service.http.post("/v1/jobs", json=seed_job(n=100)).json()["id"]
        with service.http.stream("GET", f"/v1/jobs/{job}/events", timeout=5) as r:
            first = next(r.iter_lines())
        assert r.status_code == 200 and first == "event: progress"
    finally:
        service.stop()


# -- data stored once ---------------------------------------------------------------------------------


def test_inline_data_is_stored_once_and_jobs_reference_it(api: TestClient, db: str) -> None:
    x = np.random.default_rng(0).uniform(-1, 1, 2000)
    y = np.exp(-x * x)
    base = {"data": {"kind": "inline", "x": x.tolist(), "y": y.tolist()}, "training": {"epochs": 1}}
    before = count(db, Dataset)
    r = api.post("/v1/sweeps", json={"base": base, "grid": {"training.seed": list(range(1000))}})
    assert r.status_code == 201, r.text[:300]
    assert count(db, Dataset) == before + 1
    listing = api.get("/v1/jobs", params={"sweep_id": r.json()["id"], "limit": 1000})
    assert len(listing.json()["jobs"]) == 1000 and len(listing.content) < 1_000_000
    data = {j["spec"]["data"]["id"] for j in listing.json()["jobs"]}
    assert len(data) == 1 and listing.json()["jobs"][0]["spec"]["data"] == {
        "kind": "dataset",
        "id": data.pop(),
        "n": 2000,
        "features": 1,
    }
    assert api.get(f"/v1/sweeps/{r.json()['id']}").json()["request"]["base"]["data"]["kind"] == "dataset"
    sample = api.get(f"/v1/jobs/{r.json()['jobs'][0]}/sample", params={"size": 5000}).json()
    np.testing.assert_array_equal(sample["x"], x.astype(np.float32))
    np.testing.assert_array_equal(sample["y"], y.astype(np.float32))
    bad = {"base": {**base, "data": {**base["data"], "y": [1.0]}}, "grid": {"training.seed": [1, 2]}}
    assert "x has 2000 rows but y has 1" in error(api.post("/v1/sweeps", json=bad), 422)
    assert count(db, Dataset) == before + 1


def test_workers_load_a_referenced_dataset_as_the_inline_arrays(api: TestClient, db: str) -> None:
    pytest.importorskip("keras")
    from workers.runner import load_member

    x, y = [[0.1, 0.2], [0.3, 0.4]], [[1.0, 2.0], [3.0, 4.5]]
    job_ids = api.post(
        "/v1/sweeps", json={"base": {"data": {"kind": "inline", "x": x, "y": y}}, "grid": {"training.seed": [1, 2]}}
    ).json()["jobs"]
    single = api.post("/v1/jobs", json={"data": {"kind": "inline", "x": x, "y": y}}).json()["id"]
    cache: dict[str, Any] = {}
    with session_scope(db, readonly=True) as s:
        for job_id in [*job_ids, single]:
            member = load_member(s, s.scalar(select(Job).where(Job.id == job_id)), Settings(), cache)
            np.testing.assert_array_equal(member.x, np.array(x, dtype=np.float32))
            np.testing.assert_array_equal(member.y, np.array(y, dtype=np.float32))
    assert len(cache) == 2  # the sweep's one dataset, read once, and the single job's
