"""Database errors told apart, and a worker that outlives them: a missing table is a 500 with the
request id and a log line saying what to do; a lost LISTEN connection is reopened; a retention
conflict waits for the next round instead of ending the worker's loop."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, select, text, update

from app.jobs.models import Job
from app.main import create_app
from app.serving.models import ModelLabel
from app.settings import Settings
from app.store import migrate
from app.store.db import engine_for, session_scope, utcnow
from tests.integration.test_queue import claim, finish, submit
from workers.runner import Worker


def test_a_database_without_its_tables_answers_500_with_the_request_id_and_logs_what_to_do(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    migrate.downgrade(db_url, "base")
    try:
        with TestClient(create_app(Settings(database_url=db_url)), raise_server_exceptions=False) as c:
            r = c.get("/v1/jobs")
    finally:
        migrate.upgrade(db_url)
    request_id = r.headers["X-Request-ID"]
    assert r.status_code == 500
    assert r.json()["error"]["details"] == {"request_id": request_id}
    assert request_id in r.json()["error"]["message"]
    assert "SELECT" not in r.text and "jobs" not in r.text  # no SQL, no table names
    logged = [rec for rec in caplog.records if getattr(rec, "request_id", None) == request_id]
    assert any("bumpfit migrate" in rec.getMessage() for rec in logged)


def pg_only(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("LISTEN and concurrent writers: PostgreSQL")


def test_a_lost_listen_connection_is_reopened_and_wakes_the_worker_again(db_url: str) -> None:
    pg_only(db_url)
    worker = Worker(Settings(database_url=db_url, poll_seconds=30))
    worker.ensure_listening()
    first = worker.listener.info.backend_pid
    with engine_for(db_url).begin() as c:  # the server drops the connection, as in a restart
        c.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    start = time.monotonic()
    worker.wait_for_work()
    assert worker.listener is None and time.monotonic() - start < 10  # noticed at once, not after the poll
    deadline = time.monotonic() + 10
    while worker.listener is None and time.monotonic() < deadline:
        worker.ensure_listening()  # with backoff: at most one try per pause
        time.sleep(0.05)
    assert worker.listener is not None and worker.listener.info.backend_pid != first
    with engine_for(db_url).begin() as c:
        c.execute(text("SELECT pg_notify('bumpfit_jobs', '')"))
    start = time.monotonic()
    worker.wait_for_work()
    assert time.monotonic() - start < 10  # woken by the NOTIFY, not the 30 s poll
    worker.close_listener()


def test_a_retention_conflict_waits_for_the_next_round_and_the_worker_goes_on(
    client: TestClient, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    pg_only(db_url)
    (job_id,) = submit(client, 1)
    claim(db_url)
    finish(db_url, job_id, {"sigma": 0.5})
    with session_scope(db_url) as s:  # it finished longer ago than retention keeps
        s.execute(update(Job).where(Job.id == job_id).values(finished_at=utcnow() - timedelta(days=1)))
    other = create_engine(db_url)
    engine = engine_for(db_url)

    def label_meanwhile(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("DELETE FROM jobs"):  # a user labels the version as retention deletes it
            with other.begin() as o:
                o.execute(
                    ModelLabel.__table__.insert().values(model_name=job_id, label="stable", version=1, job_id=job_id)
                )

    worker = Worker(Settings(database_url=db_url, retention_days=0.5))
    event.listen(engine, "before_cursor_execute", label_meanwhile)
    try:
        with caplog.at_level(logging.INFO, "bumpfit.worker"):
            worker.housekeep()  # does not raise
    finally:
        event.remove(engine, "before_cursor_execute", label_meanwhile)
        other.dispose()
    assert any("retention" in r.getMessage() and "label" in r.getMessage() for r in caplog.records)
    with session_scope(db_url) as s:
        assert s.scalar(select(Job.id).where(Job.id == job_id)) == job_id  # kept: the label holds it
        s.execute(ModelLabel.__table__.delete())
    worker.housekeep()  # the next round: no label now, the job is deleted
    with session_scope(db_url) as s:
        assert s.scalar(select(Job.id).where(Job.id == job_id)) is None
