"""Webhooks in process, on SQLite and PostgreSQL: registration (URLs checked, a submit key), events
written with the job's end in the same transaction, and the dispatcher's signed deliveries to a real
local receiver, verified with the `standardwebhooks` library, with retries and backoff."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook

from app.http.auth import new_key
from app.jobs.models import Job
from app.main import create_app
from app.outbox.dispatch import Dispatcher, backoff
from app.outbox.models import Delivery, OutboxEvent
from app.settings import Settings
from app.store import queue
from app.store.db import engine_for, session_scope
from tests.conftest import seed_job
from tests.receiver import receiver

READ, READ_ENTRY = new_key("read")
ADMIN, ADMIN_ENTRY = new_key("admin")  # webhooks need admin since issue 34 (submit before)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/x", "url: must start with http:// or https://"),
        ("https://user:pw@example.com/x", "url: must not hold a user or password"),
        ("http:///nohost", "url: has no host"),
        ("https://example.com:port/x", "url: is not a valid URL"),
        ("https://example.com/x#frag", "url: must not have a #fragment"),
    ],
)
def test_bad_urls_are_422_naming_the_url(client: TestClient, url: str, problem: str) -> None:
    r = client.post("/v1/webhooks", json={"url": url})
    assert r.status_code == 422 and r.json()["error"]["message"].startswith(problem)
    assert client.get("/v1/webhooks").json() == {"webhooks": []}


def test_register_list_get_delete(client: TestClient) -> None:
    r = client.post("/v1/webhooks", json={"url": "https://example.com/h", "events": ["sweep.done"]})
    assert r.status_code == 201 and r.json()["secret"].startswith("whsec_")
    hook = r.json()
    assert client.get(f"/v1/webhooks/{hook['id']}").json() == {k: v for k, v in hook.items() if k != "secret"}
    assert "secret" not in client.get("/v1/webhooks").json()["webhooks"][0]
    r = client.post("/v1/webhooks", json={"url": "https://example.com/h", "events": ["job.exploded"]})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"] == "events[0]"
    assert client.delete(f"/v1/webhooks/{hook['id']}").status_code == 204
    assert client.get(f"/v1/webhooks/{hook['id']}").status_code == 404


def test_registration_needs_an_admin_key(db_url: str) -> None:
    keys = f"{READ_ENTRY},{ADMIN_ENTRY}"
    with TestClient(create_app(Settings(database_url=db_url, api_keys=keys))) as c:
        body = {"url": "https://example.com/h"}
        assert c.post("/v1/webhooks", json=body).status_code == 401
        assert c.post("/v1/webhooks", json=body, headers={"Authorization": f"Bearer {READ}"}).status_code == 403
        r = c.post("/v1/webhooks", json=body, headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 201


def run_job(url: str, job_id: str, how: str) -> None:
    """Claim the job as a worker would and end it `how`."""
    with session_scope(url) as s:
        token, jobs = queue.claim(s, "test:1", ("auto", "cpu"), 1, 60)
        assert [j.id for j in jobs] == [job_id]
        if how == "succeeded":
            queue.finish(s, job_id, token, params={"sigma": 0.5}, metrics={"loss": 0.1})
        else:
            queue.fail(s, job_id, token, {"type": "bad_input", "message": "no"})


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings, letting these tests' receivers on 127.0.0.1 through (registration and delivery)."""
    return settings.model_copy(update={"webhook_allow_private": True})


@pytest.fixture
def dispatcher(settings: Settings) -> Iterator[Dispatcher]:
    d = Dispatcher(settings.model_copy(update={"outbox_retry_seconds": 0.01, "webhook_max_attempts": 3}))
    yield d
    d.http.close()


def deliveries(url: str) -> list[Any]:
    with session_scope(url, readonly=True) as s:
        return [tuple(r) for r in s.execute(select(Delivery.target, Delivery.status, Delivery.attempts))]


def test_signed_deliveries_retried_until_taken(client: TestClient, db_url: str, dispatcher: Dispatcher) -> None:
    with receiver() as rec:
        hook = client.post("/v1/webhooks", json={"url": rec.url, "events": ["job.succeeded", "sweep.done"]}).json()
        other = client.post("/v1/webhooks", json={"url": rec.url, "events": ["job.failed"]}).json()
        sweep = client.post("/v1/sweeps", json={"base": seed_job(n=100), "grid": {"training.epochs": [1, 2]}}).json()
        first, second = sweep["jobs"]
        run_job(db_url, first, "succeeded")
        # Written in the job's own transaction: one event, one delivery to the subscribed hook only.
        assert deliveries(db_url) == [(f"webhook:{hook['id']}", "pending", 0)]
        rec.statuses = [503, 500]
        for _ in range(3):
            dispatcher.run_once()
            with session_scope(db_url) as s:  # skip the backoff's wait
                s.execute(update(Delivery).values(next_attempt_at=Delivery.updated_at))
        assert [r["headers"]["webhook-id"] for r in rec.requests] == [f"msg_{first}_succeeded"] * 3
        assert deliveries(db_url) == [(f"webhook:{hook['id']}", "done", 3)]
        last = rec.requests[-1]
        event = Webhook(hook["secret"]).verify(last["body"], last["headers"])
        assert event["type"] == "job.succeeded" and event["data"]["model"] == {"name": first, "version": 1}
        assert last["path"] == "/hooks?token=abc"
        with pytest.raises(Exception, match="signature"):
            Webhook(other["secret"]).verify(last["body"], last["headers"])
        run_job(db_url, second, "failed")
        assert dispatcher.run_once() == 2  # the failure to `other`, sweep.done to `hook`
        kinds = {json.loads(r["body"])["type"]: r for r in rec.requests[3:]}
        assert set(kinds) == {"job.failed", "sweep.done"}
        done = Webhook(hook["secret"]).verify(kinds["sweep.done"]["body"], kinds["sweep.done"]["headers"])
        assert done["data"] == {"id": sweep["id"], "jobs": {"succeeded": 1, "failed": 1}}


def test_a_dead_receiver_is_given_up_after_max_attempts(
    client: TestClient, db_url: str, dispatcher: Dispatcher
) -> None:
    with receiver() as rec:
        client.post("/v1/webhooks", json={"url": rec.url})
        job = client.post("/v1/jobs", json=seed_job(n=100)).json()["id"]
        assert client.post(f"/v1/jobs/{job}:cancel").status_code == 202
        rec.statuses = [500] * 5
        for _ in range(4):
            dispatcher.run_once()
            with session_scope(db_url) as s:
                s.execute(update(Delivery).values(next_attempt_at=Delivery.updated_at))
        assert len(rec.requests) == 3 and [d[1:] for d in deliveries(db_url)] == [("dead", 3)]
        assert json.loads(rec.requests[0]["body"])["type"] == "job.cancelled"
    with session_scope(db_url, readonly=True) as s:
        assert s.scalar(select(Delivery.last_error)) == "HTTP 500"
        assert s.scalar(select(OutboxEvent.subject)) == job
        assert s.scalar(select(Job.status).where(Job.id == job)) == "cancelled"


def test_backoff_doubles_up_to_its_cap() -> None:
    s = Settings(outbox_retry_seconds=1, outbox_retry_max_seconds=5)
    assert [backoff(s, n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_ends_nobody_listens_for_write_no_event(client: TestClient, db_url: str) -> None:
    only_sweeps = client.post("/v1/webhooks", json={"url": "https://example.com/h", "events": ["sweep.done"]}).json()
    first = client.post("/v1/jobs", json=seed_job(n=100)).json()["id"]
    run_job(db_url, first, "succeeded")  # a job alone: no sweep.done, and no hook takes job.succeeded
    assert client.delete(f"/v1/webhooks/{only_sweeps['id']}").status_code == 204
    second = client.post("/v1/jobs", json=seed_job(n=100)).json()["id"]
    run_job(db_url, second, "failed")  # no webhook at all
    with session_scope(db_url, readonly=True) as s:
        assert s.scalars(select(OutboxEvent.id)).all() == [] and deliveries(db_url) == []
        assert set(s.scalars(select(Job.status).where(Job.id.in_([first, second])))) == {"succeeded", "failed"}


def test_a_round_with_nothing_due_takes_no_write_lock(db_url: str, dispatcher: Dispatcher) -> None:
    """On SQLite the write lock is the workers': an idle dispatcher must not queue for it."""
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite's single write lock")
    rounds: list[int] = []
    with engine_for(db_url).begin() as writer:  # another process's write transaction, held
        writer.execute(update(Job).where(Job.id == "none").values(status="queued"))
        looker = threading.Thread(target=lambda: rounds.append(dispatcher.run_once()), daemon=True)
        looker.start()
        looker.join(timeout=5)
    assert rounds == [0]
