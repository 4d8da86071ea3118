"""Limits per caller and scopes (issue 34), in process on SQLite and PostgreSQL: the rate limit (429 with
Retry-After), caps on queued jobs, webhooks, stored upload bytes and open event streams (each a 4xx
naming its setting, creating nothing), uploads stored once, event streams that end, the scopes read <
predict < submit < admin, and the access log naming keys by their id."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.datasets.models import Dataset
from app.http.auth import hash_key, new_key
from app.jobs.models import Artifact, Job
from app.main import create_app
from app.outbox.models import Webhook
from app.serving.models import ModelExport
from app.settings import Settings
from app.store.db import session_scope
from tests.conftest import Service, seed_job
from tests.integration.test_hostile_requests import succeeded

KEYS = {scope: new_key(scope) for scope in ("read", "predict", "submit", "admin")}
ENTRIES = ",".join(entry for _, entry in KEYS.values())
OTHER_SUBMIT, OTHER_SUBMIT_ENTRY = new_key("submit")
SMALL = seed_job(n=100, epochs=1)


def bearer(scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[scope][0]}"}


def count(url: str, model: Any) -> int:
    with session_scope(url, readonly=True) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def refused(r: Any, status: int, setting: str) -> dict[str, Any]:
    """The error body of a request refused over a limit, which names its setting."""
    assert r.status_code == status, r.text[:300]
    error: dict[str, Any] = r.json()["error"]
    assert setting in error["message"], error
    return error


@pytest.fixture
def app_with(db_url: str) -> Iterator[Any]:
    """`app_with(**settings)`: an in-process client with those settings (and every scope's key when
    `keys=True`), closed at the end of the test."""
    clients: list[TestClient] = []

    def make(keys: bool = False, **kw: Any) -> TestClient:
        extra = {"api_keys": f"{ENTRIES},{OTHER_SUBMIT_ENTRY}"} if keys else {}
        client = TestClient(create_app(Settings(database_url=db_url, **extra, **kw)))
        clients.append(client.__enter__())
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


# -- the rate ----------------------------------------------------------------------------------------------


def test_past_the_rate_a_key_gets_429_with_retry_after_and_nothing_is_made(app_with: Any, db_url: str) -> None:
    client = app_with(keys=True, rate_limit="2/minute")
    for _ in range(2):
        assert client.post("/v1/jobs", json=SMALL, headers=bearer("submit")).status_code == 201
    r = client.post("/v1/jobs", json=SMALL, headers=bearer("submit"))
    error = refused(r, 429, "BUMPFIT_RATE_LIMIT")
    assert error["type"] == "too_many_requests" and 1 <= int(r.headers["Retry-After"]) <= 60
    assert count(db_url, Job) == 2
    assert client.get("/v1/jobs", headers=bearer("submit")).status_code == 429  # reads count too
    # another key has a rate of its own; open paths are not counted
    assert client.post("/v1/jobs", json=SMALL, headers={"Authorization": f"Bearer {OTHER_SUBMIT}"}).status_code == 201
    assert client.get("/healthz").status_code == 200


def test_without_keys_the_rate_is_counted_per_client_address(app_with: Any, db_url: str) -> None:
    client = app_with(rate_limit="1/minute")
    assert client.post("/v1/jobs", json=SMALL).status_code == 201
    refused(client.post("/v1/jobs", json=SMALL), 429, "client address testclient")
    assert count(db_url, Job) == 1


def test_a_bad_rate_is_a_start_up_error() -> None:
    with pytest.raises(ValueError, match="not a rate"):
        Settings(rate_limit="often")


# -- caps ----------------------------------------------------------------------------------------------------


def test_queued_jobs_are_capped_per_key_sweeps_counted_whole(app_with: Any, db_url: str) -> None:
    client = app_with(keys=True, max_queued_jobs=3)
    sweep = {"base": SMALL, "grid": {"training.seed": [1, 2, 3, 4]}}
    refused(client.post("/v1/sweeps", json=sweep, headers=bearer("submit")), 429, "BUMPFIT_MAX_QUEUED_JOBS")
    assert count(db_url, Job) == 0
    sweep["grid"] = {"training.seed": [1, 2]}
    assert client.post("/v1/sweeps", json=sweep, headers=bearer("submit")).status_code == 201
    first = client.post("/v1/jobs", json=SMALL, headers=bearer("submit")).json()["id"]
    error = refused(client.post("/v1/jobs", json=SMALL, headers=bearer("submit")), 429, "BUMPFIT_MAX_QUEUED_JOBS")
    assert error["details"] == {"limit": "max_queued_jobs", "max": 3, "queued": 3, "adding": 1}
    assert count(db_url, Job) == 3
    other = {"Authorization": f"Bearer {OTHER_SUBMIT}"}  # a cap of its own
    assert client.post("/v1/jobs", json=SMALL, headers=other).status_code == 201
    assert client.post(f"/v1/jobs/{first}:cancel", headers=bearer("submit")).status_code == 202
    assert client.post("/v1/jobs", json=SMALL, headers=bearer("submit")).status_code == 201  # room again


def test_webhooks_are_capped_per_key(app_with: Any, db_url: str) -> None:
    client = app_with(keys=True, max_webhooks=1)
    body = {"url": "https://example.com/h"}
    assert client.post("/v1/webhooks", json=body, headers=bearer("admin")).status_code == 201
    refused(client.post("/v1/webhooks", json=body, headers=bearer("admin")), 409, "BUMPFIT_MAX_WEBHOOKS")
    assert count(db_url, Webhook) == 1


def csv(rows: int) -> bytes:
    return b"x,y\n" + b"".join(f"{i / 10},{i / 20}\n".encode() for i in range(rows))


def test_stored_upload_bytes_are_capped_per_caller(app_with: Any, db_url: str) -> None:
    first = app_with().post("/v1/datasets", files={"file": ("a.csv", csv(50))})
    assert first.status_code == 201
    with session_scope(db_url, readonly=True) as s:
        used = s.scalar(select(func.length(Dataset.data)))
    client = app_with(max_dataset_bytes=used + 10)
    refused(client.post("/v1/datasets", files={"file": ("b.csv", csv(60))}), 413, "BUMPFIT_MAX_DATASET_BYTES")
    assert count(db_url, Dataset) == 1
    again = client.post("/v1/datasets", files={"file": ("a.csv", csv(50))})  # stores nothing: no bytes counted
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]


def test_identical_uploads_are_stored_once(client: TestClient, db_url: str) -> None:
    first = client.post("/v1/datasets", files={"file": ("a.csv", io.BytesIO(csv(20)), "text/csv")})
    second = client.post("/v1/datasets", files={"file": ("copy.csv", io.BytesIO(csv(20)), "text/csv")})
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json() == first.json()  # the first upload, its name included
    assert count(db_url, Dataset) == 1
    third = client.post("/v1/datasets", files={"file": ("a.csv", io.BytesIO(csv(21)), "text/csv")})
    assert third.status_code == 201 and third.json()["id"] != first.json()["id"]
    assert count(db_url, Dataset) == 2


# -- event streams ---------------------------------------------------------------------------------------------


def events(text: str) -> list[str]:
    return [line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event: ")]


@pytest.mark.timeout(60)  # before issue 34 a queued job's stream never ended
def test_a_queued_jobs_stream_ends_after_its_bound(app_with: Any) -> None:
    client = app_with(stream_seconds=1)
    job = client.post("/v1/jobs", json=SMALL).json()
    text = client.get(f"/v1/jobs/{job['id']}/events").text
    assert events(text) == ["progress", "timeout"]
    last = [line for line in text.splitlines() if line.startswith("data: ")][-1]
    assert json.loads(last.removeprefix("data: "))["status"] == "queued"


@pytest.mark.timeout(60)
def test_open_streams_are_capped_per_key(app_with: Any) -> None:
    client = app_with(keys=True, max_streams=1, stream_seconds=1)
    job = client.post("/v1/jobs", json=SMALL, headers=bearer("submit")).json()["id"]
    path = f"/v1/jobs/{job}/events"
    with client.stream("GET", path, headers=bearer("read")) as first:
        assert next(first.iter_lines()) == "event: progress"
        refused(client.get(path, headers=bearer("read")), 429, "BUMPFIT_MAX_STREAMS")
        assert client.get(path, headers=bearer("predict")).status_code == 200  # another key's own
    assert events(client.get(path, headers=bearer("read")).text)[-1] == "timeout"  # given back once closed


# -- scopes ----------------------------------------------------------------------------------------------------


@pytest.fixture
def secured(app_with: Any, db_url: str) -> tuple[TestClient, str]:
    """A client with every scope's key, and a succeeded model `m` (version 1) with its artifact."""
    client = app_with(keys=True)
    job = client.post("/v1/jobs", json={**SMALL, "model_name": "m"}, headers=bearer("submit")).json()["id"]
    succeeded(db_url, job, {"sigma": 0.5})
    with session_scope(db_url) as s:
        s.add(Artifact(job_id=job, data=b"keras bytes"))
    return client, job


def test_a_predict_key_predicts_and_infers_and_nothing_more(secured: tuple[TestClient, str], db_url: str) -> None:
    client, job = secured
    predict = bearer("predict")
    assert client.post("/v1/models/m:predict", json={"instances": [0.1]}, headers=predict).status_code == 200
    v2 = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [0.1]}]}
    assert client.post("/v2/models/m/infer", json=v2, headers=predict).status_code == 200
    for scope in ("read",):
        assert client.post("/v1/models/m:predict", json={"instances": [0.1]}, headers=bearer(scope)).status_code == 403
    for method, path, body in (
        ("POST", "/v1/webhooks", {"url": "https://example.com/h"}),
        ("DELETE", f"/v1/jobs/{job}", None),
        ("DELETE", "/v1/models/m/versions/1", None),
        ("PUT", "/v1/models/m/labels/stable", {"version": 1}),
        ("POST", "/v1/jobs", SMALL),
    ):
        r = client.request(method, path, json=body, headers=predict)
        assert r.status_code == 403 and "scope 'predict'" in r.json()["error"]["message"], (method, path)
    assert count(db_url, Webhook) == 0 and count(db_url, Job) == 1


def test_deletes_labels_and_webhooks_need_admin(secured: tuple[TestClient, str], db_url: str) -> None:
    client, job = secured
    for method, path, body in (
        ("POST", "/v1/webhooks", {"url": "https://example.com/h"}),
        ("PUT", "/v1/models/m/labels/stable", {"version": 1}),
        ("DELETE", "/v1/models/m/versions/1", None),
        ("DELETE", f"/v1/jobs/{job}", None),
    ):
        r = client.request(method, path, json=body, headers=bearer("submit"))
        assert r.status_code == 403 and "needs 'admin'" in r.json()["error"]["message"], (method, path)
    assert (
        client.post("/v1/webhooks", json={"url": "https://example.com/h"}, headers=bearer("admin")).status_code == 201
    )
    assert client.put("/v1/models/m/labels/stable", json={"version": 1}, headers=bearer("admin")).status_code == 200


def test_a_read_key_sees_webhook_urls_without_their_query(app_with: Any) -> None:
    client = app_with(keys=True)
    url = "https://example.com/hooks/bumpfit?token=s3cret&x=1"
    hook = client.post("/v1/webhooks", json={"url": url}, headers=bearer("admin")).json()
    for scope in ("read", "predict", "submit"):
        listed = client.get("/v1/webhooks", headers=bearer(scope)).json()["webhooks"]
        one = client.get(f"/v1/webhooks/{hook['id']}", headers=bearer(scope)).json()
        assert [h["url"] for h in listed] == [one["url"]] == ["https://example.com/hooks/bumpfit"], scope
    assert client.get(f"/v1/webhooks/{hook['id']}", headers=bearer("admin")).json()["url"] == url


def test_a_read_keys_get_of_a_saved_model_makes_no_work(secured: tuple[TestClient, str], db_url: str) -> None:
    client, job = secured
    path, saved = "/v1/models/m/versions/1/artifact", {"format": "saved_model"}
    r = client.get(path, params=saved, headers=bearer("read"))
    assert r.status_code == 403 and "'predict'" in r.json()["error"]["message"]
    assert count(db_url, ModelExport) == 0  # nothing asked of a worker
    assert client.get(path, headers=bearer("read")).content == b"keras bytes"  # the .keras file as before
    assert client.get(path, params=saved, headers=bearer("predict")).status_code == 202
    assert count(db_url, ModelExport) == 1
    assert client.get(path, params=saved, headers=bearer("read")).status_code == 202  # asked already: waits
    with session_scope(db_url) as s:
        s.execute(ModelExport.__table__.update().values(status="ready", data=b"tar bytes"))
    assert client.get(path, params=saved, headers=bearer("read")).content == b"tar bytes"


def test_existing_entries_stay_valid_and_keys_new_makes_each_scope(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from app.cli import main
    from app.http.auth import parse_keys

    old = f"{hash_key('a')}:read,{hash_key('b')}:submit"
    assert parse_keys(old) == {hash_key("a"): "read", hash_key("b"): "submit"}
    for scope in ("read", "predict", "submit", "admin"):
        out = CliRunner().invoke(main, ["keys", "new", "--scope", scope])
        assert out.exit_code == 0 and f":{scope}" in out.output, out.output


# -- the log ---------------------------------------------------------------------------------------------------


def test_the_access_log_names_the_key_by_its_id_never_the_key(tmp_path: Path) -> None:
    key, entry = KEYS["read"]
    log = tmp_path / "serve.log"
    service = Service(f"sqlite:///{tmp_path / 'db.sqlite'}", workers=0, env={"BUMPFIT_API_KEYS": entry}, log=log)
    try:
        assert service.http.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    finally:
        service.stop()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "uvicorn.access" and "/v1/jobs" in line["message"]]
    assert access and access[-1]["key"] == hash_key(key)[:8]
    assert key not in log.read_text()
