"""End to end with real processes: `bumpfit serve` with its workers on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pytest

import workers.layers  # noqa: F401 - registers the layers for load_model
from app.model import functions
from tests.conftest import Service, seed_job, wait_for

pytestmark = pytest.mark.slow
LONG = {"n": 400_000, "epochs": 12}  # a job that runs for seconds, to interrupt it mid-way


@pytest.fixture
def service(db_url: str, tmp_path: Path) -> Iterator[Service]:
    svc = Service(
        db_url, workers=1, log=tmp_path / "serve.log", env={"BUMPFIT_LEASE_SECONDS": "2", "BUMPFIT_POLL_SECONDS": "0.1"}
    )
    yield svc
    svc.stop()


def test_seed_job_trains_serves_and_exports(service: Service, tmp_path: Path) -> None:
    r = service.http.post("/v1/jobs", json=seed_job(sigma=0.5, n=20000, epochs=3))
    assert r.status_code == 201
    job = service.wait_job(r.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    sigma = job["params"]["sigma"]
    assert abs(sigma - 0.5) < 1e-2 and job["attempts"] == 1 and job["device"] == "CPU:0"
    assert job["metrics"]["r2"] > 0.99 and job["progress"] == {"epoch": 3, "epochs": 3}
    history = service.http.get(f"/v1/jobs/{job['id']}/history").json()["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3] and history[-1]["params"]["sigma"] == sigma
    x = np.linspace(-1.2, 1.2, 49).astype(np.float32)
    pred = service.http.post(f"/v1/models/{job['id']}:predict", json={"instances": x.tolist()}).json()
    np.testing.assert_allclose(pred["predictions"], functions.bump(np, x, np.float32(sigma)), rtol=1e-6)
    blob = service.http.get(f"/v1/models/{job['id']}/versions/1/artifact")
    assert blob.status_code == 200
    path = tmp_path / "model.keras"
    path.write_bytes(blob.content)
    keras_pred = keras.saving.load_model(path).predict(x[:, None], verbose=0)[:, 0]
    np.testing.assert_allclose(pred["predictions"], keras_pred, rtol=1e-6, atol=1e-38)


def test_events_stream_ends_with_the_finished_job(service: Service) -> None:
    job_id = service.http.post("/v1/jobs", json=seed_job(n=5000, epochs=2)).json()["id"]
    with service.http.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = [line for line in stream.iter_lines() if line.startswith("event:")]
    assert events[-1] == "event: end" and "event: progress" in events


@pytest.mark.heavy  # 15-35 s on 2 slow cores; .ci/run runs it after the README's command (pytest -m heavy)
def test_killed_worker_job_is_reclaimed_and_succeeds(service: Service) -> None:
    job_id = service.http.post("/v1/jobs", json=seed_job(**LONG)).json()["id"]
    job = service.wait_job(job_id, until=("running",))
    wait_for(lambda: service.http.get(f"/v1/jobs/{job_id}").json()["progress"]["epoch"] >= 2, 60, "epoch 2")
    os.kill(int(job["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
    done = service.wait_job(job_id, timeout=180)
    assert done["status"] == "succeeded" and done["attempts"] == 2
    assert done["worker"] != job["worker"]
    history = service.http.get(f"/v1/jobs/{job_id}/history").json()["history"]
    assert [h["epoch"] for h in history] == list(range(1, LONG["epochs"] + 1))


def test_cancel_queued_running_and_finished(service: Service) -> None:
    running = service.http.post("/v1/jobs", json=seed_job(**LONG)).json()["id"]
    queued = service.http.post("/v1/jobs", json=seed_job(n=5000, epochs=1, batch_size=16)).json()["id"]
    service.wait_job(running, until=("running",))
    assert service.http.post(f"/v1/jobs/{queued}:cancel").json()["status"] == "cancelled"
    assert service.http.post(f"/v1/jobs/{running}:cancel").status_code == 202
    job = service.wait_job(running, timeout=60)
    assert job["status"] == "cancelled" and job["progress"]["epoch"] < LONG["epochs"]
    assert service.http.post(f"/v1/jobs/{running}:cancel").status_code == 409
    assert service.http.get(f"/v1/jobs/{queued}").json()["attempts"] == 0


@pytest.mark.heavy  # 15-35 s on 2 slow cores; .ci/run runs it after the README's command (pytest -m heavy)
def test_sigterm_hands_running_jobs_back_and_a_restart_finishes_them(db_url: str, tmp_path: Path) -> None:
    svc = Service(db_url, workers=1, log=tmp_path / "a.log")
    # long enough to be stopped mid-way (SIGTERM waits for the epoch's end), short enough to finish after
    job_id = svc.http.post("/v1/jobs", json=seed_job(n=200_000, epochs=6)).json()["id"]
    wait_for(lambda: svc.http.get(f"/v1/jobs/{job_id}").json()["progress"]["epoch"] >= 1, 60, "epoch 1")
    svc.stop()
    assert svc.proc.returncode == 0
    svc2 = Service(db_url, workers=1, log=tmp_path / "b.log")
    try:
        mid = svc2.http.get(f"/v1/jobs/{job_id}").json()
        assert mid["status"] in ("queued", "running")
        job = svc2.wait_job(job_id, timeout=120)
        assert job["status"] == "succeeded" and job["attempts"] == 1
    finally:
        svc2.stop()


@pytest.mark.heavy  # minutes on 2 cores: .ci/run runs it after the README's command (pytest -m heavy)
def test_many_jobs_on_several_workers_each_run_exactly_once(db_url: str, tmp_path: Path) -> None:
    svc = Service(db_url, workers=3, log=tmp_path / "serve.log")
    try:
        # different batch sizes give different fuse keys, so the jobs spread over the workers (three
        # keys: each is a compile in every worker that claims it)
        ids = [
            svc.http.post(
                "/v1/jobs", json=seed_job(sigma=0.2 + 0.05 * i, n=2000, epochs=2, batch_size=16 + i % 3)
            ).json()["id"]
            for i in range(12)
        ]
        jobs = [svc.wait_job(i, timeout=180) for i in ids]
        assert all(j["status"] == "succeeded" and j["attempts"] == 1 for j in jobs)
        assert len({j["worker"] for j in jobs}) >= 2
        workers = svc.http.get("/v1/workers").json()["workers"]
        assert sum(w["alive"] and w["device"] == "CPU:0" for w in workers) == 3
        for j in jobs:
            rows = svc.http.get(f"/v1/jobs/{j['id']}/history").json()["history"]
            assert [r["epoch"] for r in rows] == [1, 2]
    finally:
        svc.stop()


def test_sweep_jobs_train_fused_and_learn_what_they_learn_alone(service: Service) -> None:
    alone = service.http.post("/v1/jobs", json=seed_job(sigma=0.4, n=8000, epochs=2)).json()["id"]
    alone_job = service.wait_job(alone)
    base = seed_job(n=8000, epochs=2)
    r = service.http.post("/v1/sweeps", json={"base": base, "grid": {"data.params.sigma": [0.2, 0.3, 0.4]}})
    assert r.status_code == 201
    sweep_id = r.json()["id"]
    wait_for(lambda: service.http.get(f"/v1/sweeps/{sweep_id}").json()["done"], 120, "the sweep")
    sweep = service.http.get(f"/v1/sweeps/{sweep_id}").json()
    assert sweep["counts"] == {"succeeded": 3}
    rows = {row["point"]["data.params.sigma"]: row for row in sweep["jobs"]}
    assert abs(rows[0.4]["params"]["sigma"] - alone_job["params"]["sigma"]) <= 1e-5
    for sigma, row in rows.items():
        assert abs(row["params"]["sigma"] - sigma) < 1e-2 and row["metrics"]["r2"] > 0.99
    started = {service.http.get(f"/v1/jobs/{row['id']}").json()["started_at"] for row in rows.values()}
    assert len(started) == 1  # one claim took all three: they trained as one compiled model


def test_early_stopping_ends_a_job_early_with_its_best_epoch(service: Service) -> None:
    early = {"patience": 2}
    r = service.http.post("/v1/jobs", json=seed_job(sigma=0.4, n=4000, epochs=60, early_stopping=early))
    job = service.wait_job(r.json()["id"])
    assert job["status"] == "succeeded", job
    stopped = job["stopped_epoch"]
    assert stopped is not None and stopped < 60 and job["progress"]["epoch"] == stopped
    history = service.http.get(f"/v1/jobs/{job['id']}/history").json()["history"]
    assert [h["epoch"] for h in history] == list(range(1, stopped + 1))
    best = min(history, key=lambda h: h["loss"])
    assert job["params"] == best["params"] and abs(job["params"]["sigma"] - 0.4) < 1e-2


@pytest.mark.heavy  # 15-35 s on 2 slow cores; .ci/run runs it after the README's command (pytest -m heavy)
def test_a_fused_job_that_stops_early_succeeds_while_the_others_train_on(service: Service) -> None:
    never_better = {"min_delta": 1e6, "patience": 1}  # no epoch improves by 1e6: stops after epoch 2
    base = seed_job(n=20000, epochs=400)
    points = [{"training.early_stopping": never_better}, {"training.early_stopping": None}]
    sweep = service.http.post("/v1/sweeps", json={"base": base, "points": points}).json()
    early, long = sweep["jobs"]
    done = service.wait_job(early)
    assert done["status"] == "succeeded" and done["stopped_epoch"] == 2 and done["metrics"]["loss"] is not None
    other = service.http.get(f"/v1/jobs/{long}").json()
    assert other["status"] == "running" and other["started_at"] == done["started_at"]  # one group
    assert service.http.post(f"/v1/models/{early}:predict", json={"instances": [0.0]}).status_code == 200
    service.http.post(f"/v1/jobs/{long}:cancel")
    assert service.wait_job(long)["status"] == "cancelled"
