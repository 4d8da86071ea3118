"""A held group's fenced writes that change no state: its start and each epoch's progress.

Every statement is fenced by the lease: only jobs still `running` under the worker's token are
written, in set-based statements whose count does not grow with the group (`app.store.bulk`: the rows
as one JSON parameter, joined by an `UPDATE ... FROM` or an `INSERT ... SELECT`).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, and_, delete, insert, literal, select, update
from sqlalchemy.orm import Session

from app.jobs.models import HistoryRow, Job, JobStatus
from app.store import bulk
from app.store.db import UTCDateTime, utcnow
from app.store.wake import is_postgres

JOBS = cast(Table, Job.__table__)  # Core statements with one bound parameter set per job


def held_under(token: str) -> Any:
    """The jobs this worker still holds: running under its lease token."""
    return and_(Job.lease_token == token, Job.status == JobStatus.RUNNING)


def start_group(session: Session, token: str, device: str) -> None:
    """Mark every job held under `token` as starting on `device` and drop the history an earlier
    attempt (or a worker that handed the job back) left: two statements for the whole group."""
    held_jobs = held_under(token)
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
    stmt = select(Job.id, Job.cancel_requested).where(held_under(token))
    if is_postgres(session):
        stmt = stmt.with_for_update()
    return {row.id: row.cancel_requested for row in session.execute(stmt)}


def add_epoch(session: Session, token: str, rows: dict[str, dict[str, Any]], again: bool = False) -> dict[str, bool]:
    """Record one finished epoch of the jobs in `rows` still held under `token` (their progress and
    history rows, two multi-row statements whatever their number); returns those jobs as `held`
    does. Jobs not returned were lost and got nothing. `again`: a retry after a failed commit that
    may have landed, so history rows already there are skipped (each epoch's row is written once)."""
    owned = {job_id: cancel for job_id, cancel in held(session, token).items() if job_id in rows}
    fresh = {job_id: rows[job_id] for job_id in owned}
    if again and fresh:
        recorded = session.execute(select(HistoryRow.job_id, HistoryRow.epoch).where(HistoryRow.job_id.in_(fresh)))
        for job_id, epoch in recorded:
            if fresh[job_id]["epoch"] == epoch:
                del fresh[job_id]
    if not fresh:
        return owned
    history = [{"job_id": job_id, **row} for job_id, row in fresh.items()]
    columns = {"job_id": "text", "epoch": "int", "loss": "float", "val_loss": "float", "seconds": "float"}
    v = bulk.rows(session, {**columns, "params": "json", "metrics": "json"}, history)
    session.execute(
        update(JOBS)
        .where(JOBS.c.id == v.c.job_id)
        .values(progress_epoch=v.c.epoch, params=v.c.params)
        .execution_options(synchronize_session=False)
    )
    names = [*columns, "params", "metrics"]
    session.execute(
        insert(HistoryRow).from_select(
            [*names, "timestamp"], select(*(v.c[c] for c in names), literal(utcnow(), UTCDateTime()))
        )
    )
    return owned
