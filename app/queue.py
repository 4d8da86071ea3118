"""The queue's SQL in one place: enqueue notice, claim, heartbeat, fenced writes, reap.

The jobs table is the queue. A claim takes a lease token; every later write by the worker is
fenced by `lease_token = token AND status = 'running'`, so a worker that lost its lease (it was
reaped, or the job was cancelled) changes nothing.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, event, func, insert, select, text, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.jobs.models import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, Artifact, HistoryRow, Job

CHANNEL = "bumpfit_jobs"  # PostgreSQL NOTIFY channel that wakes idle workers
WAKE = "bumpfit_wake"  # session.info flag: call the wakers once this transaction commits
_wakers: list[Callable[[], None]] = []
JOBS = cast(Table, Job.__table__)  # Core statements with one bound parameter set per job


def is_postgres(session: Session) -> bool:
    """True when the session talks to PostgreSQL."""
    return session.get_bind().dialect.name == "postgresql"


def on_enqueue(waker: Callable[[], None]) -> None:
    """Call `waker` after each commit that queued jobs: how `bumpfit serve` wakes its own workers
    on SQLite, which has no NOTIFY (workers of other processes poll)."""
    _wakers.append(waker)


def notify(session: Session) -> None:
    """Wake idle workers once this transaction commits: NOTIFY on PostgreSQL, else the wakers."""
    if is_postgres(session):
        session.execute(text("SELECT pg_notify(:c, '')"), {"c": CHANNEL})
    else:
        session.info[WAKE] = True


@event.listens_for(Session, "after_commit")
def _wake(session: Session) -> None:
    if session.info.pop(WAKE, False):
        for waker in _wakers:
            waker()


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(WAKE, None)


def claim(
    session: Session, worker: str, devices: tuple[str, ...], limit: int, lease_seconds: float
) -> tuple[str, list[Job]]:
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
    batch = (
        select(Job.seq)
        .where(Job.status == QUEUED, Job.device_request.in_(devices), Job.fuse_key == head.scalar_subquery())
        .order_by(Job.seq)
        .limit(limit)
    )
    if pg:
        batch = batch.with_for_update(skip_locked=True)
    stmt = (
        update(Job)
        .where(Job.seq.in_(batch))
        .values(
            status=RUNNING,
            lease_token=token,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=Job.attempts + 1,
            worker=worker,
            started_at=now,
            progress_epoch=0,
        )
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


def start_group(session: Session, token: str, device: str) -> None:
    """Mark every job held under `token` as starting on `device` and drop the history an earlier
    attempt (or a worker that handed the job back) left: two statements for the whole group."""
    held_jobs = and_(Job.lease_token == token, Job.status == RUNNING)
    session.execute(
        update(Job)
        .where(held_jobs)
        .values(device=device, progress_epoch=0)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        delete(HistoryRow)
        .where(HistoryRow.job_id.in_(select(Job.id).where(held_jobs)))
        .execution_options(synchronize_session=False)
    )


def held(session: Session, token: str) -> dict[str, bool]:
    """Jobs still held under `token`: {job id: cancel requested}. On PostgreSQL the rows stay locked
    until commit (SQLite's write transaction holds the whole database), so writes to these jobs
    later in the same transaction are fenced by this read."""
    stmt = select(Job.id, Job.cancel_requested).where(Job.lease_token == token, Job.status == RUNNING)
    if is_postgres(session):
        stmt = stmt.with_for_update()
    return {row.id: row.cancel_requested for row in session.execute(stmt)}


def add_epoch(session: Session, token: str, rows: dict[str, dict[str, Any]]) -> dict[str, bool]:
    """Record one finished epoch of the jobs in `rows` still held under `token` (their progress and
    history rows, two multi-row statements whatever their number); returns those jobs as `held`
    does. Jobs not returned were lost and got nothing."""
    owned = {job_id: cancel for job_id, cancel in held(session, token).items() if job_id in rows}
    rows = {job_id: finite(rows[job_id]) for job_id in owned}
    if owned:
        session.execute(
            update(JOBS)
            .where(JOBS.c.id == bindparam("job_id"))
            .values(progress_epoch=bindparam("epoch"), params=bindparam("params")),
            [{"job_id": job_id, "epoch": rows[job_id]["epoch"], "params": rows[job_id]["params"]} for job_id in owned],
        )
        now = utcnow()
        session.execute(insert(HistoryRow), [{"job_id": job_id, "timestamp": now, **rows[job_id]} for job_id in owned])
    return owned


def succeed_many(session: Session, token: str, results: dict[str, dict[str, Any]]) -> set[str]:
    """End the jobs in `results` still held under `token` as succeeded, each the next version of
    its model, with `params`, `metrics`, `warnings` and `artifact`: two multi-row statements. Returns
    the jobs written. Raises IntegrityError when another job of the same model name took a version."""
    owned = set(held(session, token)) & set(results)
    if not owned:
        return owned
    other = JOBS.alias("other")
    name = select(JOBS.c.model_name).where(JOBS.c.id == bindparam("job_id")).scalar_subquery()
    version = select(func.coalesce(func.max(other.c.model_version), 0) + 1).where(other.c.model_name == name)
    session.execute(
        update(JOBS)
        .where(JOBS.c.id == bindparam("job_id"))
        .values(
            status=SUCCEEDED,
            finished_at=utcnow(),
            lease_token=None,
            lease_expires_at=None,
            error=None,
            params=bindparam("params"),
            metrics=bindparam("metrics"),
            warnings=bindparam("warnings"),
            model_version=version.scalar_subquery(),
        ),
        [
            {
                "job_id": job_id,
                "params": finite(results[job_id]["params"]),
                "metrics": finite(results[job_id]["metrics"]),
                "warnings": results[job_id]["warnings"],
            }
            for job_id in owned
        ],
    )
    artifacts = [
        {"job_id": job_id, "data": results[job_id]["artifact"]} for job_id in owned if results[job_id].get("artifact")
    ]
    if artifacts:
        session.execute(insert(Artifact), artifacts)
    return owned


def finish(
    session: Session,
    job_id: str,
    token: str,
    status: str,
    *,
    params: Any = None,
    metrics: Any = None,
    warnings: list[Any] | None = None,
    error: Any = None,
    artifact: bytes | None = None,
) -> bool:
    """End a held job as succeeded, failed or cancelled; a success becomes the next model version."""
    values: dict[str, Any] = {
        "status": status,
        "finished_at": utcnow(),
        "lease_token": None,
        "lease_expires_at": None,
        "error": error,
    }
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
            .where(other.c.model_name == name)
            .scalar_subquery()
        )
    if not update_fenced(session, job_id, token, **values):
        return False
    if artifact is not None:
        session.add(Artifact(job_id=job_id, data=artifact))
    return True


def hand_back(session: Session, job_id: str, token: str) -> bool:
    """Return a held job to the queue without counting the attempt (worker shutting down)."""
    return update_fenced(
        session,
        job_id,
        token,
        status=QUEUED,
        lease_token=None,
        lease_expires_at=None,
        worker=None,
        attempts=Job.attempts - 1,
        progress_epoch=0,
    )


def reap(session: Session) -> dict[str, int]:
    """Settle running jobs whose lease expired: requeue, or cancel, or fail after max attempts."""
    now = utcnow()
    expired = and_(Job.status == RUNNING, Job.lease_expires_at < now)
    free = {"lease_token": None, "lease_expires_at": None}
    counts = {}
    stmt = update(Job).where(expired, Job.cancel_requested).values(status=CANCELLED, finished_at=now, **free)
    counts["cancelled"] = session.execute(stmt).rowcount  # type: ignore[attr-defined]
    stmt = (
        update(Job)
        .where(expired, Job.attempts >= Job.max_attempts)
        .values(
            status=FAILED,
            finished_at=now,
            **free,
            error={
                "type": "worker_lost",
                "message": "the worker running this job stopped responding on "
                "every attempt (max_attempts reached); check the worker logs for a crash",
            },
        )
    )
    counts["failed"] = session.execute(stmt).rowcount  # type: ignore[attr-defined]
    stmt = update(Job).where(expired).values(status=QUEUED, worker=None, progress_epoch=0, **free)
    counts["requeued"] = session.execute(stmt).rowcount  # type: ignore[attr-defined]
    if counts["requeued"]:
        notify(session)
    return counts
