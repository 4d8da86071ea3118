"""The queue's SQL in one place: enqueue notice, claim, heartbeat, fenced writes, reap.

The jobs table is the queue. A claim takes a lease token; every later write by the worker is
fenced by `lease_token = token AND status = 'running'`, so a worker that lost its lease (it was
reaped, or the job was cancelled) changes nothing.
"""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.jobs.models import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, Artifact, HistoryRow, Job

CHANNEL = "bumpfit_jobs"  # PostgreSQL NOTIFY channel that wakes idle workers


def is_postgres(session: Session) -> bool:
    """True when the session talks to PostgreSQL."""
    return session.get_bind().dialect.name == "postgresql"


def notify(session: Session) -> None:
    """Wake idle workers once this transaction commits (PostgreSQL; SQLite workers poll)."""
    if is_postgres(session):
        session.execute(text("SELECT pg_notify(:c, '')"), {"c": CHANNEL})


def claim(session: Session, worker: str, devices: tuple[str, ...], limit: int,
          lease_seconds: float) -> tuple[str, list[Job]]:
    """Claim up to `limit` queued jobs that share the oldest queued job's fuse key.

    One statement: PostgreSQL skips rows other workers hold (FOR UPDATE SKIP LOCKED); SQLite
    runs it inside the immediate (write-locked) transaction. The attempt is counted here.
    """
    token = uuid.uuid4().hex
    now = utcnow()
    pg = is_postgres(session)
    head = select(Job.fuse_key).where(Job.status == QUEUED, Job.device_request.in_(devices))
    head = head.order_by(Job.seq).limit(1)
    if pg:
        head = head.with_for_update(skip_locked=True)
    batch = select(Job.seq).where(
        Job.status == QUEUED, Job.device_request.in_(devices), Job.fuse_key == head.scalar_subquery()
    ).order_by(Job.seq).limit(limit)
    if pg:
        batch = batch.with_for_update(skip_locked=True)
    stmt = (
        update(Job)
        .where(Job.seq.in_(batch))
        .values(status=RUNNING, lease_token=token, lease_expires_at=now + timedelta(seconds=lease_seconds),
                attempts=Job.attempts + 1, worker=worker, started_at=now, progress_epoch=0)
        .returning(Job)
        .execution_options(synchronize_session=False)
    )
    jobs = sorted(session.scalars(stmt).all(), key=lambda j: j.seq)
    return token, jobs


def finite(value: Any) -> Any:
    """`value` with every NaN or infinity (a diverged epoch's loss or parameters) as None: JSON
    has no such numbers and PostgreSQL refuses them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def _owned(job_id: str, token: str) -> Any:
    return and_(Job.id == job_id, Job.lease_token == token, Job.status == RUNNING)


def heartbeat(session: Session, token: str, lease_seconds: float) -> dict[str, bool]:
    """Renew the lease of every job still held under `token`: {job id: cancel requested}."""
    stmt = (
        update(Job)
        .where(Job.lease_token == token, Job.status == RUNNING)
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
        .returning(Job.id, Job.cancel_requested)
        .execution_options(synchronize_session=False)
    )
    return {row.id: row.cancel_requested for row in session.execute(stmt)}


def update_fenced(session: Session, job_id: str, token: str, **values: Any) -> bool:
    """Write `values` to the job only if this worker still holds it; False if it does not."""
    stmt = update(Job).where(_owned(job_id, token)).values(**values)
    return session.execute(stmt.execution_options(synchronize_session=False)).rowcount == 1  # type: ignore[attr-defined]


def clear_history(session: Session, job_id: str, token: str) -> bool:
    """Drop history left by an earlier attempt, if this worker holds the job."""
    if not update_fenced(session, job_id, token, progress_epoch=0):
        return False
    session.execute(delete(HistoryRow).where(HistoryRow.job_id == job_id))
    return True


def add_history(session: Session, job_id: str, token: str, row: dict[str, Any]) -> bool:
    """Record one finished epoch and the job's progress, fenced; False if the job was lost.

    The fenced UPDATE locks the job row until commit, so the insert after it is fenced too.
    """
    row = finite(row)
    if not update_fenced(session, job_id, token, progress_epoch=row["epoch"], params=row["params"]):
        return False
    session.execute(insert(HistoryRow).values(job_id=job_id, timestamp=utcnow(), **row))
    return True


def finish(session: Session, job_id: str, token: str, status: str, *, params: Any = None,
           metrics: Any = None, warnings: list[Any] | None = None, error: Any = None,
           artifact: bytes | None = None) -> bool:
    """End a held job as succeeded, failed or cancelled; a success becomes the next model version."""
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "lease_token": None,
                              "lease_expires_at": None, "error": error}
    if params is not None:
        values["params"] = finite(params)
    if metrics is not None:
        values["metrics"] = finite(metrics)
    if warnings is not None:
        values["warnings"] = warnings
    if status == SUCCEEDED:
        name = select(Job.model_name).where(Job.id == job_id).scalar_subquery()
        other = Job.__table__.alias("other")
        values["model_version"] = (
            select(func.coalesce(func.max(other.c.model_version), 0) + 1)
            .where(other.c.model_name == name).scalar_subquery()
        )
    if not update_fenced(session, job_id, token, **values):
        return False
    if artifact is not None:
        session.add(Artifact(job_id=job_id, data=artifact))
    return True


def hand_back(session: Session, job_id: str, token: str) -> bool:
    """Return a held job to the queue without counting the attempt (worker shutting down)."""
    return update_fenced(session, job_id, token, status=QUEUED, lease_token=None, lease_expires_at=None,
                         worker=None, attempts=Job.attempts - 1, progress_epoch=0)


def reap(session: Session) -> dict[str, int]:
    """Settle running jobs whose lease expired: requeue, or cancel, or fail after max attempts."""
    now = utcnow()
    expired = and_(Job.status == RUNNING, Job.lease_expires_at < now)
    free = {"lease_token": None, "lease_expires_at": None}
    counts = {}
    stmt = update(Job).where(expired, Job.cancel_requested).values(status=CANCELLED, finished_at=now, **free)
    counts["cancelled"] = session.execute(stmt).rowcount  # type: ignore[attr-defined]
    stmt = update(Job).where(expired, Job.attempts >= Job.max_attempts).values(
        status=FAILED, finished_at=now, **free,
        error={"type": "worker_lost", "message": "the worker running this job stopped responding on "
               "every attempt (max_attempts reached); check the worker logs for a crash"})
    counts["failed"] = session.execute(stmt).rowcount  # type: ignore[attr-defined]
    stmt = update(Job).where(expired).values(status=QUEUED, worker=None, progress_epoch=0, **free)
    counts["requeued"] = session.execute(stmt).rowcount  # type: ignore[attr-defined]
    if counts["requeued"]:
        notify(session)
    return counts
