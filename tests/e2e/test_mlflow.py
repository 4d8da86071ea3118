"""The MLflow export against a real `mlflow server` (its own virtual environment, SQLite): a sweep's
jobs become child runs of a parent run, with the spec as params, /history as per-epoch metrics, the
`.keras` file byte for byte and labels as aliases. MLflow is stopped mid-sweep: training goes on,
and once MLflow is back every run arrives, none twice."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from app.outbox.models import Delivery
from app.store.db import session_scope
from tests.conftest import Service, seed_job, wait_for
from tests.mlflow_server import MlflowServer, read_back

# The first run installs `mlflow server` into a venv of its own (minutes); the test itself takes ~5 minutes.
pytestmark = [pytest.mark.slow, pytest.mark.heavy, pytest.mark.timeout(1800)]


@pytest.fixture
def mlflow(tmp_path: Path) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path)
    server.start()
    yield server
    server.stop()


def runs_in(server: MlflowServer) -> int:
    """Runs of jobs MLflow holds now (REST, while the test waits; 0 while it is slow to answer)."""
    try:
        r = httpx.post(f"{server.url}/api/2.0/mlflow/experiments/search", json={"max_results": 10}, timeout=30)
        ids = [e["experiment_id"] for e in r.json().get("experiments", []) if e["name"] == "bumpfit"]
        if not ids:
            return 0
        body = {"experiment_ids": ids, "filter": "tags.`bumpfit.job_id` != ''", "max_results": 100}
        runs = httpx.post(f"{server.url}/api/2.0/mlflow/runs/search", json=body, timeout=30).json().get("runs", [])
    except httpx.HTTPError:
        return 0
    return len(runs)


def pending(url: str) -> int:
    with session_scope(url, readonly=True) as s:
        return int(s.scalar(select(func.count()).select_from(Delivery).where(Delivery.status != "done")) or 0)


def test_a_sweep_reaches_mlflow_through_an_outage(mlflow: MlflowServer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bumpfit.db'}"
    env = {
        "BUMPFIT_MLFLOW_TRACKING_URI": mlflow.url,
        "BUMPFIT_OUTBOX_RETRY_SECONDS": "0.2",
        "BUMPFIT_OUTBOX_RETRY_MAX_SECONDS": "1",
        "BUMPFIT_MAX_FUSE": "1",  # one job at a time, so MLflow can go down between them
        "BUMPFIT_WEBHOOK_ALLOW_PRIVATE": "true",  # the server listens on 127.0.0.1
    }
    service = Service(url, workers=1, env=env, log=tmp_path / "serve.log")
    try:
        base = {**seed_job(n=400, epochs=3), "model_name": "swept"}
        grid = {"data.params.sigma": [0.3, 0.5, 0.7, 0.9]}
        sweep = service.http.post("/v1/sweeps", json={"base": base, "grid": grid}).json()
        wait_for(lambda: runs_in(mlflow) >= 1, 180, "the first run in MLflow", every=1)
        mlflow.stop()
        jobs = [service.wait_job(j) for j in sweep["jobs"]]  # training goes on without MLflow
        assert all(j["status"] == "succeeded" for j in jobs), service.log_tail()
        assert service.http.put("/v1/models/swept/labels/stable", json={"version": 2}).status_code == 200
        assert pending(url) > 0
        mlflow.start()
        wait_for(lambda: pending(url) == 0, 240, "the outbox to drain into MLflow", every=1)

        got = read_back(mlflow.url, "swept")
        assert sorted(got["runs"]) == sorted(sweep["jobs"])
        assert all(len(runs) == 1 for runs in got["runs"].values())  # nothing doubled
        ((parent_id, parent),) = got["parents"].items()
        assert parent == {"sweep": sweep["id"], "status": "FINISHED"}
        for job in jobs:
            (run,) = got["runs"][job["id"]]
            assert run["status"] == "FINISHED" and run["tags"]["mlflow.parentRunId"] == parent_id
            assert run["tags"]["bumpfit.model_version"] == str(job["model"]["version"])
            assert run["params"]["training.epochs"] == "3" and run["params"]["layer.type"] == "bump"
            assert float(run["params"]["data.params.sigma"]) == job["spec"]["data"]["params"]["sigma"]
            history = service.http.get(f"/v1/jobs/{job['id']}/history").json()["history"]
            assert run["history"]["loss"] == [[h["epoch"], h["loss"]] for h in history]
            assert run["history"]["sigma"] == [[h["epoch"], h["params"]["sigma"]] for h in history]
            keras = service.http.get(f"/v1/models/swept/versions/{job['model']['version']}/artifact").content
            assert base64.b64decode(run["keras"]) == keras
        assert got["versions"] == [1, 2, 3, 4]
        assert got["aliases"] == {"stable": "2"}
        # A label moved later follows too.
        assert service.http.put("/v1/models/swept/labels/stable", json={"version": 4}).status_code == 200
        wait_for(lambda: pending(url) == 0, 60, "the alias to move")
        assert read_back(mlflow.url, "swept")["aliases"] == {"stable": "4"}
    finally:
        service.stop()
