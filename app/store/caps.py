"""Caps per caller counted in the database: queued jobs, webhooks, stored upload bytes. Each is
checked in the transaction that creates the rows, before anything is created, and its error names its
setting (docs/access.md); `None` is no cap. Free of the HTTP shell: the workers, which expire jobs
through the job services that check these caps, do not import FastAPI."""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.datasets.models import Dataset
from app.errors import Conflict, TooLarge, TooMany
from app.http.auth import Caller
from app.jobs.models import Job, JobStatus
from app.outbox.models import Webhook


def who(caller: Caller) -> str:
    """The caller in an error message: its key's id, or its address."""
    return f"key {caller.key_id}" if caller.key_id else f"client address {caller.id.removeprefix('addr:')}"


def _hold(session: Session, caller: Caller) -> None:
    """On PostgreSQL, take the caller's advisory lock until the transaction ends, so two requests of one
    caller cannot both pass a cap (SQLite writers already take turns on the process's write lock)."""
    if session.get_bind().dialect.name == "postgresql":
        lock = int.from_bytes(hashlib.sha256(caller.id.encode()).digest()[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": lock})


def check_queued(session: Session, caller: Caller, adding: int, limit: int | None) -> None:
    """TooMany (429) when `adding` more queued jobs would take the caller past `limit`."""
    if limit is None:
        return
    _hold(session, caller)
    where = (Job.owner == caller.id, Job.status == JobStatus.QUEUED)
    queued = session.scalar(select(func.count()).select_from(Job).where(*where)) or 0
    if queued + adding > limit:
        raise TooMany(
            f"{who(caller)} has {queued} queued jobs: {adding} more would pass the limit of {limit} "
            "(BUMPFIT_MAX_QUEUED_JOBS); submit again once some have started",
            details={"limit": "max_queued_jobs", "max": limit, "queued": queued, "adding": adding},
        )


def check_webhooks(session: Session, caller: Caller, limit: int | None) -> None:
    """Conflict (409) when the caller already has `limit` webhooks."""
    if limit is None:
        return
    _hold(session, caller)
    count = session.scalar(select(func.count()).select_from(Webhook).where(Webhook.owner == caller.id)) or 0
    if count >= limit:
        raise Conflict(
            f"{who(caller)} has {count} webhooks, the limit (BUMPFIT_MAX_WEBHOOKS is {limit}); delete one first",
            details={"limit": "max_webhooks", "max": limit, "webhooks": count},
        )


def check_dataset_bytes(session: Session, caller: Caller, adding: int, limit: int | None) -> None:
    """TooLarge (413) when storing `adding` more bytes of uploads would take the caller past `limit`."""
    if limit is None:
        return
    _hold(session, caller)
    mine = (Dataset.owner == caller.id, Dataset.inline.is_(False))
    used = session.scalar(select(func.coalesce(func.sum(func.length(Dataset.data)), 0)).where(*mine)) or 0
    if used + adding > limit:
        raise TooLarge(
            f"file: {who(caller)} stores {used} bytes of datasets: {adding} more would pass the limit of {limit} "
            "bytes (BUMPFIT_MAX_DATASET_BYTES); delete a dataset first",
            details=[{"loc": "file", "msg": "over BUMPFIT_MAX_DATASET_BYTES", "max": limit, "used": used}],
        )
