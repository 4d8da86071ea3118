"""The HTTP API in-process on SQLite and PostgreSQL: validation, idempotency, cancel, listing,
sweeps expansion, datasets and predictions. No worker runs here."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.jobs.models import Job
from app.main import create_app
from app.settings import Settings
from app.store import queue
from app.store.db import session_scope
from tests.conftest import seed_job


def count_jobs(url: str) -> int:
    with session_scope(url, readonly=True) as s:
        return int(s.scalar(select(func.count()).select_from(Job)) or 0)


def error(resp: Any, status: int) -> str:
    assert resp.status_code == status, resp.text[:500]
    body = resp.json()["error"]
    assert set(body) == {"type", "message", "details"}
    return str(body["message"])


def test_submit_fills_defaults(client: TestClient) -> None:
    r = client.post("/v1/jobs", json={"data": {"kind": "synthetic"}})
    assert r.status_code == 201
    job = r.json()
    assert job["status"] == "queued" and job["attempts"] == 0 and job["progress"] == {"epoch": 0, "epochs": 5}
    spec = job["spec"]
    assert spec["layer"] == {"type": "bump", "sigma_init": None, "per_feature": False}
    assert spec["data"]["params"] == {"sigma": 0.5} and spec["data"]["n"] == 100000
    assert spec["training"]["optimizer"] == "adam" and spec["training"]["batch_size"] == 32
    assert isinstance(spec["training"]["seed"], int) and spec["device"] == "auto"
    assert job["model"] == {"name": job["id"], "version": None}
    assert client.get(f"/v1/jobs/{job['id']}").json()["id"] == job["id"]
    assert spec["training"]["early_stopping"] is None and job["stopped_epoch"] is None


def test_early_stopping_round_trips_into_the_spec_with_keras_defaults(client: TestClient) -> None:
    body = {"data": {"kind": "synthetic"}, "training": {"epochs": 30, "early_stopping": {"patience": 2}}}
    job = client.post("/v1/jobs", json=body).json()
    assert job["spec"]["training"]["early_stopping"] == {
        "monitor": "loss",
        "min_delta": 0.0,
        "patience": 2,
        "restore_best_weights": True,
        "start_from_epoch": 0,
    }
    assert job["progress"] == {"epoch": 0, "epochs": 30} and job["stopped_epoch"] is None
    val = {
        "monitor": "val_loss",
        "min_delta": 1e-6,
        "patience": 0,
        "restore_best_weights": False,
        "start_from_epoch": 3,
    }
    body = {"data": {"kind": "synthetic"}, "training": {"validation_split": 0.1, "early_stopping": val}}
    got = client.get(f"/v1/jobs/{client.post('/v1/jobs', json=body).json()['id']}").json()
    assert got["spec"]["training"]["early_stopping"] == val
    assert "stopped_epoch" in client.get("/v1/jobs").json()["jobs"][0]


BAD_SPECS = [
    ({"data": {"kind": "synthetic", "n": 0}}, 422, "data.n: Input should be greater than or equal to 1"),
    ({"data": {"kind": "synthetic", "x_range": [1, -1]}}, 422, "data.x_range: min must be less than max"),
    ({"data": {"kind": "synthetic", "noise_std": -1}}, 422, "noise_std"),
    ({"data": {"kind": "synthetic", "params": {"sigma": -1}}}, 422, "params.sigma must be >= 0"),
    ({"data": {"kind": "synthetic", "params": {"mu": 1}}}, 422, "not ['mu']"),
    ({"data": {"kind": "synthetic", "n": 10**9}}, 413, "data.n"),
    ({"data": {"kind": "inline", "x": [], "y": []}}, 422, "data.x"),
    ({"data": {"kind": "inline", "x": [1, 2], "y": [1]}}, 422, "x has 2 rows but y has 1"),
    ({"data": {"kind": "inline", "x": [[1, 2], [3]], "y": [[1, 2], [3]]}}, 422, "ragged"),
    ({"data": {"kind": "inline", "x": [[1, 2], 3], "y": [1, 2]}}, 422, "ragged"),
    ({"data": {"kind": "inline", "x": [[1, 2]], "y": [1]}}, 422, "shaped like x"),
    ({"data": {"kind": "dataset", "id": "nope"}}, 422, "no dataset with id 'nope'"),
    ({"data": {"kind": "telepathy"}}, 422, "data"),
    ({}, 422, "data"),
    ({"data": {"kind": "synthetic"}, "layer": {"type": "relu"}}, 422, "layer"),
    ({"data": {"kind": "synthetic"}, "layer": {"type": "bump", "sigma_init": -0.1}}, 422, "sigma_init"),
    ({"data": {"kind": "synthetic"}, "training": {"learning_rate": 0}}, 422, "learning_rate"),
    ({"data": {"kind": "synthetic"}, "training": {"epochs": 0}}, 422, "epochs"),
    ({"data": {"kind": "synthetic"}, "training": {"validation_split": 1}}, 422, "validation_split"),
    ({"data": {"kind": "synthetic"}, "training": {"optimiser": "adam"}}, 422, "optimiser"),
    ({"data": {"kind": "synthetic"}, "device": "tpu"}, 422, "device"),
    ({"data": {"kind": "synthetic"}, "model_name": "a b/c"}, 422, "model_name"),
    ({"data": {"kind": "synthetic", "n": 2_000_000}, "training": {"epochs": 10000}}, 413, "compute limit"),
    (
        {"data": {"kind": "inline", "x": [1.0], "y": [1.0]}, "training": {"validation_split": 0.5}},
        422,
        "leaves no training rows",
    ),
    (
        {"data": {"kind": "synthetic"}, "training": {"early_stopping": {"patience": -1}}},
        422,
        "training.early_stopping.patience: Input should be greater than or equal to 0",
    ),
    ({"data": {"kind": "synthetic"}, "training": {"early_stopping": {"min_delta": -0.1}}}, 422, "min_delta"),
    ({"data": {"kind": "synthetic"}, "training": {"early_stopping": {"start_from_epoch": 1.5}}}, 422, "start_from"),
    ({"data": {"kind": "synthetic"}, "training": {"early_stopping": {"monitor": "r2"}}}, 422, "early_stopping.monitor"),
    ({"data": {"kind": "synthetic"}, "training": {"early_stopping": {"baseline": 1}}}, 422, "early_stopping.baseline"),
    (
        {"data": {"kind": "synthetic"}, "training": {"early_stopping": {"monitor": "val_loss"}}},
        422,
        "training.early_stopping.monitor: val_loss needs training.validation_split > 0",
    ),
]


@pytest.mark.parametrize("body,status,needle", BAD_SPECS)
def test_bad_specs_are_refused_naming_the_field_and_change_nothing(
    client: TestClient, db_url: str, body: dict, status: int, needle: str
) -> None:
    assert needle in error(client.post("/v1/jobs", json=body), status)
    assert count_jobs(db_url) == 0


@pytest.mark.parametrize(
    "raw",
    [
        '{"data": {"kind": "inline", "x": [NaN], "y": [1]}}',
        '{"data": {"kind": "inline", "x": [1], "y": [Infinity]}}',
        '{"data": {"kind": "synthetic", "params": {"sigma": NaN}}}',
        "not json",
    ],
)
def test_non_finite_numbers_and_broken_json_are_refused(client: TestClient, db_url: str, raw: str) -> None:
    error(client.post("/v1/jobs", content=raw, headers={"content-type": "application/json"}), 422)
    assert count_jobs(db_url) == 0


def test_body_without_json_content_type_says_so(client: TestClient) -> None:
    r = client.post(
        "/v1/jobs",
        content='{"data": {"kind": "synthetic"}}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert "Content-Type: application/json" in error(r, 422)


def test_oversized_body_is_413(db_url: str) -> None:
    body = {"data": {"kind": "inline", "x": list(range(500)), "y": list(range(500))}}
    with TestClient(create_app(Settings(database_url=db_url, max_body_bytes=1000))) as small:
        assert "larger than the limit" in error(small.post("/v1/jobs", json=body), 413)
        chunked = small.post(
            "/v1/jobs",
            content=iter([b"{" + b" " * 600, b" " * 600 + b"}"]),
            headers={"content-type": "application/json"},
        )
        assert "larger than the limit" in error(chunked, 413)
    assert count_jobs(db_url) == 0


def test_a_created_job_is_committed_before_the_response_is_sent(db_url: str) -> None:
    """A client that reads right after its 201 must find the job (the commit may not trail the response)."""
    app = create_app(Settings(database_url=db_url))
    body = json.dumps(seed_job()).encode()
    seen: list[tuple[int, int]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":  # what the database holds as the client hears back
            seen.append((message["status"], await asyncio.to_thread(count_jobs, db_url)))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/jobs",
        "raw_path": b"/v1/jobs",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    with TestClient(app):  # runs the app's startup
        asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    assert seen == [(201, 1)]


def test_idempotency_key(client: TestClient, db_url: str) -> None:
    h = {"Idempotency-Key": "k-1"}
    first = client.post("/v1/jobs", json=seed_job(), headers=h)
    again = client.post("/v1/jobs", json=seed_job(), headers=h)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert "different request body" in error(client.post("/v1/jobs", json=seed_job(sigma=0.7), headers=h), 409)
    assert count_jobs(db_url) == 1


def test_cancel_queued_then_finished_is_409(client: TestClient) -> None:
    job_id = client.post("/v1/jobs", json=seed_job()).json()["id"]
    r = client.post(f"/v1/jobs/{job_id}:cancel")
    assert r.status_code == 202 and r.json()["status"] == "cancelled"
    assert "already finished" in error(client.post(f"/v1/jobs/{job_id}:cancel"), 409)
    assert "no job" in error(client.post("/v1/jobs/nope:cancel"), 404)


def test_cancel_running_sets_flag_for_the_worker(client: TestClient, db_url: str) -> None:
    job_id = client.post("/v1/jobs", json=seed_job()).json()["id"]
    with session_scope(db_url) as s:
        queue.claim(s, "w:1", ("auto", "cpu"), 10, 60)
    r = client.post(f"/v1/jobs/{job_id}:cancel")
    assert r.status_code == 202 and r.json()["status"] == "running" and r.json()["cancel_requested"]


def test_list_filters_and_pages(client: TestClient) -> None:
    ids = [client.post("/v1/jobs", json=seed_job(sigma=0.1 * i)).json()["id"] for i in range(1, 6)]
    client.post(f"/v1/jobs/{ids[0]}:cancel")
    page1 = client.get("/v1/jobs", params={"limit": 2}).json()
    page2 = client.get("/v1/jobs", params={"limit": 2, "page_token": page1["next_page_token"]}).json()
    page3 = client.get("/v1/jobs", params={"limit": 2, "page_token": page2["next_page_token"]}).json()
    assert [j["id"] for j in page1["jobs"] + page2["jobs"] + page3["jobs"]] == ids[::-1]
    assert page3["next_page_token"] is None
    assert [j["id"] for j in client.get("/v1/jobs", params={"status": "cancelled"}).json()["jobs"]] == [ids[0]]
    error(client.get("/v1/jobs", params={"status": "bogus"}), 422)
    error(client.get("/v1/jobs", params={"page_token": "x"}), 422)
    error(client.get("/v1/jobs", params={"page_token": "9" * 30}), 422)


def test_sweep_grid_is_cartesian_and_validated_before_creating(client: TestClient, db_url: str) -> None:
    base = seed_job()
    r = client.post(
        "/v1/sweeps", json={"base": base, "grid": {"data.params.sigma": [0.1, 0.2], "training.epochs": [1, 2, 3]}}
    )
    assert r.status_code == 201
    sweep = r.json()
    assert len(sweep["jobs"]) == 6
    got = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert [row["point"] for row in got["jobs"]][:3] == [
        {"data.params.sigma": 0.1, "training.epochs": e} for e in (1, 2, 3)
    ]
    assert got["counts"] == {"queued": 6} and not got["done"]
    listed = client.get("/v1/jobs", params={"sweep_id": sweep["id"]}).json()["jobs"]
    assert len(listed) == 6
    bad = client.post(
        "/v1/sweeps", json={"base": base, "points": [{"data.params.sigma": 0.3}, {"data.params.sigma": -1}]}
    )
    assert "points[1]" in error(bad, 422)
    assert count_jobs(db_url) == 6
    error(client.post("/v1/sweeps", json={"base": base}), 422)
    error(client.post("/v1/sweeps", json={"base": base, "grid": {"data.params.sigma": list(range(20000))}}), 413)
    assert "no sweep" in error(client.get("/v1/sweeps/nope"), 404)


def test_dataset_upload_csv_and_npz(client: TestClient) -> None:
    csv = "x,y\n0.1,0.2\n0.3,0.4\n"
    r = client.post("/v1/datasets", files={"file": ("d.csv", csv.encode(), "text/csv")})
    assert r.status_code == 201 and r.json()["n"] == 2 and r.json()["features"] == 1
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((5, 2)), y=np.ones((5, 2)))
    r2 = client.post("/v1/datasets", files={"file": ("d.npz", buf.getvalue())})
    assert r2.status_code == 201 and r2.json()["features"] == 2
    job = client.post("/v1/jobs", json={"data": {"kind": "dataset", "id": r2.json()["id"]}})
    assert job.status_code == 201 and job.json()["spec"]["data"]["n"] == 5


@pytest.mark.parametrize(
    "name,content,needle",
    [
        ("d.csv", b"x,y\n1,nan\n", "NaN"),
        ("d.csv", b"x,y\n1,2\n3\n", "different numbers of columns"),
        ("d.csv", b"x,y\n1,abc\n", "must be a number"),
        ("d.csv", b"x,y\n", "no data rows"),
        ("d.csv", b"x\n1\n", "CSV needs columns"),
        ("d.npz", b"not a zip", "not a readable .npz"),
    ],
)
def test_bad_uploads_are_refused(client: TestClient, name: str, content: bytes, needle: str) -> None:
    assert needle in error(client.post("/v1/datasets", files={"file": (name, content)}), 422)


def test_unknown_ids_are_404(client: TestClient) -> None:
    for path in ("/v1/jobs/nope", "/v1/jobs/nope/history", "/v1/models/nope", "/v1/datasets/nope"):
        error(client.get(path), 404)
    error(client.post("/v1/models/nope:predict", json={"instances": [1]}), 404)


def test_readyz_and_openapi(client: TestClient) -> None:
    assert client.get("/readyz").json()["status"] == "ready"
    paths = client.get("/openapi.json").json()["paths"]
    for p in (
        "/v1/jobs",
        "/v1/jobs/{job_id}:cancel",
        "/v1/sweeps",
        "/v1/models/{name}:predict",
        "/v1/models/{name}/versions/{version}/artifact",
        "/v1/datasets",
        "/metrics",
    ):
        assert p in paths
