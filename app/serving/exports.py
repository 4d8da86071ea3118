"""Exports of a model version to other formats (a TensorFlow SavedModel): asked for by the API, made
by an idle worker from the version's `.keras` file, kept beside it. The API never imports TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.errors import Forbidden, NotFound
from app.jobs.models import Artifact, Job
from app.serving.models import ModelExport
from app.store.db import utcnow

SAVED_MODEL = "saved_model"  # a tar of a SavedModel directory named by the version number
PENDING, RUNNING, READY, FAILED = "pending", "running", "ready", "failed"


def request(session: Session, job: Job, fmt: str, may_ask: bool = True) -> ModelExport:
    """The export of the job's model in `fmt`, asked for now if it was not before; a caller that may
    not ask for one to be made (`may_ask` false: a read key) gets Forbidden rather than making work."""
    row = session.get(ModelExport, (job.id, fmt))
    if row is None and not may_ask:
        raise Forbidden(
            f"the {fmt} export of {job.model_name} v{job.model_version} is not made yet, and asking a worker "
            "to make it needs a key of scope 'predict' or above; a read key gets exports already made"
        )
    if row is None:
        if session.get(Artifact, job.id) is None:
            raise NotFound(f"job {job.id} has no stored artifact to export")
        row = ModelExport(job_id=job.id, format=fmt, status=PENDING)
        session.add(row)
        session.flush()
    return row


@dataclass
class Claimed:
    """An export a worker now holds: what to make, from which `.keras` file."""

    job_id: str
    format: str
    version: int
    keras: bytes


def claim(session: Session, lease_seconds: float) -> Claimed | None:
    """Take the oldest pending export (or one whose worker's lease ran out) for `lease_seconds`."""
    now = utcnow()
    claimable = or_(
        ModelExport.status == PENDING, (ModelExport.status == RUNNING) & (ModelExport.lease_expires_at < now)
    )
    row = session.scalars(select(ModelExport).where(claimable).order_by(ModelExport.created_at).limit(1)).first()
    if row is None:
        return None
    taken = session.execute(
        update(ModelExport)
        .where(ModelExport.job_id == row.job_id, ModelExport.format == row.format, claimable)
        .values(status=RUNNING, lease_expires_at=now + timedelta(seconds=lease_seconds))
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return None  # another worker took it first
    job = session.scalar(select(Job).where(Job.id == row.job_id))
    blob = session.get(Artifact, row.job_id)
    if job is None or blob is None:
        finish(session, row.job_id, row.format, error="the version's .keras artifact is gone")
        return None
    return Claimed(row.job_id, row.format, abs(job.model_version or 0), blob.data)


def finish(session: Session, job_id: str, fmt: str, data: bytes | None = None, error: str | None = None) -> None:
    """Store a made export, or why it could not be made."""
    session.execute(
        update(ModelExport)
        .where(ModelExport.job_id == job_id, ModelExport.format == fmt)
        .values(status=READY if error is None else FAILED, data=data, error=error, finished_at=utcnow())
    )
