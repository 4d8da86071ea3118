"""The job state machine, table-driven: every transition from every state, allowed or refused,
on SQLite and PostgreSQL. A refused transition writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.jobs.models import Job, JobStatus
from app.store import queue
from app.store.db import session_scope, utcnow
from tests.conftest import seed_job

Q, R, S, F, C = JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED
TOKEN = "t" * 32
ERROR = {"type": "test", "message": "test"}

# name -> (the transition, called with the session, the job id and the holder's token)
MOVES: dict[str, Callable[[Session, str, str], Any]] = {
    "claim": lambda s, _id, _tok: queue.claim(s, "w:2", ("auto", "cpu"), 10, 60),
    "finish": lambda s, job_id, tok: queue.finish(s, job_id, tok, params={"sigma": 0.5}, metrics={}),
    "succeed_many": lambda s, job_id, tok: queue.succeed_many(
        s, tok, {job_id: {"params": {"sigma": 0.5}, "metrics": {}, "warnings": []}}
    ),
    "fail": lambda s, job_id, tok: queue.fail(s, job_id, tok, ERROR),
    "stop": lambda s, job_id, tok: queue.stop(s, job_id, tok),
    "cancel": lambda s, job_id, _tok: queue.cancel(s, job_id),
    "hand_back": lambda s, job_id, tok: queue.hand_back(s, job_id, tok),
    "reap": lambda s, _id, _tok: queue.reap(s),
}

# (state before, transition, state after); None: refused, the job keeps its state. For "running",
# the lease has expired so the reaper may act, and the worker still holds the token.
TABLE = [
    (Q, "claim", R),
    (Q, "finish", None),
    (Q, "succeed_many", None),
    (Q, "fail", None),
    (Q, "stop", None),
    (Q, "cancel", C),
    (Q, "hand_back", None),
    (Q, "reap", None),
    (R, "claim", None),
    (R, "finish", S),
    (R, "succeed_many", S),
    (R, "fail", F),
    (R, "stop", C),
    (R, "cancel", None),
    (R, "hand_back", Q),
    (R, "reap", Q),
    *[(done, move, None) for done in (S, F, C) for move in MOVES],
]


@pytest.mark.parametrize(("before", "move", "after"), TABLE, ids=[f"{b}-{m}" for b, m, _ in TABLE])
def test_transition(client: TestClient, db_url: str, before: JobStatus, move: str, after: JobStatus | None) -> None:
    job_id = client.post("/v1/jobs", json=seed_job(n=100, epochs=1)).json()["id"]
    with session_scope(db_url) as s:
        held = {"lease_token": TOKEN, "lease_expires_at": utcnow() - timedelta(seconds=1), "attempts": 1}
        s.execute(update(Job).where(Job.id == job_id).values(status=before, **(held if before == R else {})))
    with session_scope(db_url) as s:
        MOVES[move](s, job_id, TOKEN)
    with session_scope(db_url) as s:
        status = s.scalar(select(Job.status).where(Job.id == job_id))
    assert status == (after or before)
    if after is not None:
        assert after in queue.TRANSITIONS[before]
    if move == "cancel" and before == R:  # a running job is asked to stop, not stopped
        with session_scope(db_url) as s:
            assert s.scalar(select(Job.cancel_requested).where(Job.id == job_id))


def test_every_state_has_its_transitions() -> None:
    assert set(queue.TRANSITIONS) == set(JobStatus)
    assert all(not queue.TRANSITIONS[done] for done in queue.FINISHED)
