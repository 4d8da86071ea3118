"""The job state machine: `JobStatus` and every transition, each the only place that writes it.

The jobs table is the queue. A claim takes a lease token; every later write by the worker is
fenced by `lease_token = token AND status = 'running'`, so a worker that lost its lease (it was
reaped, or the job was cancelled) changes nothing. Fenced writes that change no state (a group's
start and epochs) live in `app.store.progress`; waking workers in `app.store.wake`.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, select, update
from sqlalchemy.orm import Session

from app.jobs.models import FINISHED, Artifact, Job, JobStatus
from app.model.data import finite
from app.outbox import events as outbox
from app.store import bulk
from app.store.db import utcnow
from app.store.progress import JOBS, add_epoch, held, held_under, start_group
from app.store.versions import next_version, versions
from app.store.wake import CHANNEL, is_postgres, notify, on_enqueue

__all__ = [
    "CHANNEL",
    "FINISHED",
    "TRANSITIONS",
    "JobStatus",
    "add_epoch",
    "cancel",
    "claim",
    "enqueue",
    "fail",
    "finish",
    "hand_back",
    "heartbeat",
    "held",
    "notify",
    "on_enqueue",
    "reap",
    "start_group",
    "stop",
    "succeed_many",
]

# Every allowed change of state (tests/integration/test_transitions.py checks each, and the refusals).
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED}),  # claim, cancel
    # finish/succeed_many, fail, stop or cancel, reap (cancel/fail/requeue), hand_back
    JobStatus.RUNNING: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.QUEUED}),
    **{done: frozenset() for done in FINISHED},
}


def enqueue(session: Session, jobs: list[Job]) -> None:
    """Queue new job rows and wake idle workers once this transaction commits."""
    for job in jobs:
        job.status = JobStatus.QUEUED
    session.add_all(jobs)
    notify(session)


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
    head = select(Job.fuse_key).where(Job.status == JobStatus.QUEUED, Job.device_request.in_(devices))
    head = head.order_by(Job.seq).limit(1)
    if pg:
        head = head.with_for_update(skip_locked=True)
    batch = (
        select(Job.seq)
        .where(Job.status == JobStatus.QUEUED, Job.device_request.in_(devices), Job.fuse_key == head.scalar_subquery())
        .order_by(Job.seq)
        .limit(limit)
    )
    if pg:
        batch = batch.with_for_update(skip_locked=True)
    stmt = (
        update(Job)
        .where(Job.seq.in_(batch))
        .values(
            status=JobStatus.RUNNING,
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


def heartbeat(session: Session, token: str, lease_seconds: float) -> dict[str, bool]:
    """Renew the lease of every job still held under `token`: {job id: cancel requested}."""
    stmt = update(Job).where(held_under(token)).values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
    rows = session.execute(stmt.returning(Job.id, Job.cancel_requested).execution_options(synchronize_session=False))
    return {row.id: row.cancel_requested for row in rows}


def _owned(job_id: str, token: str) -> Any:
    return and_(Job.id == job_id, held_under(token))


def _count(session: Session, stmt: Any) -> int:
    """Rows an UPDATE changed."""
    return int(session.execute(stmt.execution_options(synchronize_session=False)).rowcount)  # type: ignore[attr-defined]


def _ids(session: Session, stmt: Any) -> list[str]:
    """The ids of the jobs an UPDATE changed."""
    return list(session.scalars(stmt.returning(Job.id).execution_options(synchronize_session=False)))


def _ended() -> dict[str, Any]:
    """What every end of a run writes besides its state: the time, and the lease released."""
    return {"finished_at": utcnow(), "lease_token": None, "lease_expires_at": None}


def succeed_many(session: Session, token: str, results: dict[str, dict[str, Any]]) -> set[str]:
    """End the jobs in `results` still held under `token` as succeeded, each the next version of
    its model, with `params`, `metrics`, `warnings`, `artifact` (a network's `weights` too) and
    `stopped_epoch` (None unless early stopping ended it before its epochs): one query for the
    versions, one `UPDATE ... FROM` for the jobs and one COPY (PostgreSQL) or multi-row INSERTs
    (SQLite) for the artifacts, whatever the group's size. Returns the jobs written. Raises
    IntegrityError when another job of the same model name took a version."""
    owned = set(held(session, token)) & set(results)
    if not owned:
        return owned
    numbers = versions(session, sorted(owned))
    values = [
        {
            "job_id": job_id,
            "params": results[job_id]["params"],  # a NaN goes in as null (bulk.rows)
            "metrics": results[job_id]["metrics"],
            "warnings": results[job_id]["warnings"],
            "stopped_epoch": results[job_id].get("stopped_epoch"),
            "version": numbers[job_id],
        }
        for job_id in sorted(owned)
    ]
    columns = {"job_id": "text", "params": "json", "metrics": "json", "warnings": "json", "stopped_epoch": "int"}
    v = bulk.rows(session, {**columns, "version": "int"}, values)
    session.execute(
        update(JOBS)
        .where(JOBS.c.id == v.c.job_id)
        .values(
            **_ended(),
            status=JobStatus.SUCCEEDED,
            error=None,
            params=v.c.params,
            metrics=v.c.metrics,
            warnings=v.c.warnings,
            stopped_epoch=v.c.stopped_epoch,
            model_version=v.c.version,
        )
        .execution_options(synchronize_session=False)
    )
    now = utcnow()
    artifacts = [
        {
            "job_id": job_id,
            "data": results[job_id]["artifact"],
            "weights": results[job_id].get("weights"),
            "created_at": now,
        }
        for job_id in sorted(owned)
        if results[job_id].get("artifact")
    ]
    bulk.copy_rows(session, cast(Table, Artifact.__table__), artifacts)
    outbox.ended(session, owned)
    return owned


def finish(
    session: Session,
    job_id: str,
    token: str,
    status: str = JobStatus.SUCCEEDED,
    *,
    params: Any = None,
    metrics: Any = None,
    warnings: list[Any] | None = None,
    error: Any = None,
    artifact: bytes | None = None,
    weights: bytes | None = None,
    stopped_epoch: int | None = None,
) -> bool:
    """End a held job (running -> succeeded, failed or cancelled), fenced by its lease; a success
    becomes the next model version. False, and nothing written, if the worker lost the job."""
    if JobStatus(status) not in TRANSITIONS[JobStatus.RUNNING] - {JobStatus.QUEUED}:
        raise ValueError(f"a held job cannot end as {status!r}")
    values: dict[str, Any] = {**_ended(), "status": status, "error": error}
    for name, value in (("params", params), ("metrics", metrics), ("warnings", warnings)):
        if value is not None:
            values[name] = finite(value)
    if status == JobStatus.SUCCEEDED:
        values["model_version"] = next_version(job_id)
        values["stopped_epoch"] = stopped_epoch
    if _count(session, update(Job).where(_owned(job_id, token)).values(**values)) != 1:
        return False
    if artifact is not None:
        session.add(Artifact(job_id=job_id, data=artifact, weights=weights))
    outbox.ended(session, [job_id])
    return True


def fail(session: Session, job_id: str, token: str, error: dict[str, Any], **values: Any) -> bool:
    """End a held job as failed with `error` (bad data, divergence, a training error)."""
    return finish(session, job_id, token, JobStatus.FAILED, error=error, **values)


def stop(session: Session, job_id: str, token: str) -> bool:
    """End a held job whose cancellation was requested, at the end of an epoch."""
    return finish(session, job_id, token, JobStatus.CANCELLED)


def cancel(session: Session, job_id: str) -> bool:
    """Cancel a queued job now, or ask a running one to stop at its next epoch (its worker calls
    `stop`, or the reaper cancels it). False when the job has already finished."""
    stmt = update(Job).where(Job.id == job_id)
    now = {"status": JobStatus.CANCELLED, "finished_at": utcnow(), "cancel_requested": True}
    if _count(session, stmt.where(Job.status == JobStatus.QUEUED).values(**now)):
        outbox.ended(session, [job_id])
        return True
    return _count(session, stmt.where(Job.status == JobStatus.RUNNING).values(cancel_requested=True)) > 0


def hand_back(session: Session, job_id: str, token: str) -> bool:
    """Return a held job to the queue without counting the attempt (worker shutting down)."""
    free = {"lease_token": None, "lease_expires_at": None, "worker": None, "progress_epoch": 0}
    stmt = update(Job).where(_owned(job_id, token))
    return _count(session, stmt.values(status=JobStatus.QUEUED, attempts=Job.attempts - 1, **free)) == 1


WORKER_LOST = {
    "type": "worker_lost",
    "message": "the worker running this job stopped responding on every attempt "
    "(max_attempts reached); check the worker logs for a crash",
}


def reap(session: Session) -> dict[str, int]:
    """Settle running jobs whose lease expired: requeue, or cancel, or fail after max attempts."""
    expired = and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at < utcnow())
    cancelled = _ids(
        session, update(Job).where(expired, Job.cancel_requested).values(status=JobStatus.CANCELLED, **_ended())
    )
    failed = _ids(
        session,
        update(Job)
        .where(expired, Job.attempts >= Job.max_attempts)
        .values(status=JobStatus.FAILED, error=WORKER_LOST, **_ended()),
    )
    outbox.ended(session, cancelled + failed)
    counts = {"cancelled": len(cancelled), "failed": len(failed)}
    requeue = {"lease_token": None, "lease_expires_at": None, "worker": None, "progress_epoch": 0}
    counts["requeued"] = _count(session, update(Job).where(expired).values(status=JobStatus.QUEUED, **requeue))
    if counts["requeued"]:
        notify(session)
    return counts
