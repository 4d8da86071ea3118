"""Deleting what users no longer need: finished jobs, model versions, datasets, and the optional
retention of finished jobs and delivered events. Services never commit; a label keeps what it
points at."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.datasets.models import Dataset
from app.errors import Conflict, NotFound
from app.jobs import service as jobs
from app.jobs.models import FINISHED, Artifact, HistoryRow, Job, JobStatus
from app.outbox.models import Delivery, OutboxEvent
from app.serving import labels
from app.serving import service as serving
from app.serving.models import ModelExport, ModelLabel
from app.store.db import utcnow


def _refuse_labelled(session: Session, job: Job, what: str | None = None) -> None:
    """409 while a label points at the job's model version; `what` names the job when it is not the
    version itself that is being deleted."""
    held = labels.of_jobs(session, [job.id])
    if held:
        names = ", ".join(str(h["label"]) for h in held)
        version = f"version {job.model_version} of model {job.model_name!r}"
        problem = (
            f"{what} is {version}, which label(s) {names} point at" if what else f"label(s) {names} point at {version}"
        )
        raise Conflict(
            f"{problem}; move or delete the label(s) first (DELETE /v1/models/{job.model_name}/labels/LABEL)",
            details={"labels": held},
        )


def _dataset_ids(session: Session, where: ColumnElement[bool]) -> set[str]:
    """The datasets that the jobs matching `where` train on."""
    data = Job.spec["data"]
    return set(session.scalars(select(data["id"].as_string()).where(where, data["kind"].as_string() == "dataset")))


def _remove(session: Session, job_ids: list[str]) -> None:
    """Delete jobs with their history and artifacts, and the inline data no other job uses."""
    used = _dataset_ids(session, Job.id.in_(job_ids))
    try:
        with session.begin_nested():
            session.execute(delete(HistoryRow).where(HistoryRow.job_id.in_(job_ids)))
            session.execute(delete(Artifact).where(Artifact.job_id.in_(job_ids)))
            session.execute(delete(ModelExport).where(ModelExport.job_id.in_(job_ids)))
            session.execute(delete(Job).where(Job.id.in_(job_ids)))
    except IntegrityError:  # a label was set on one of them meanwhile; its foreign key holds the job
        raise Conflict("a label now points at this job's model version; delete the label first") from None
    if used:
        still = _dataset_ids(session, Job.spec["data"]["id"].as_string().in_(used))
        session.execute(delete(Dataset).where(Dataset.inline, Dataset.id.in_(used - still)))


def delete_job(session: Session, job_id: str) -> None:
    """Delete a finished job with its history, artifact, model version and inline data (once no
    other job of its sweep uses it); 409 while it is queued or running, or while a label points at
    its model version."""
    job = jobs.get(session, job_id)
    if job.status not in FINISHED:
        raise Conflict(
            f"job {job_id} is {job.status}; only finished jobs can be deleted (cancel it first)",
            details={"status": job.status},
        )
    _refuse_labelled(session, job, f"job {job_id}")
    _remove(session, [job_id])


def delete_version(session: Session, name: str, version: int) -> None:
    """Delete a model version and its artifact, as MLflow's delete_model_version does: the job that
    trained it stays (its parameters, metrics and history), no longer a version. The number is
    never given to another job. 409 while a label points at the version."""
    job = serving.version_job(session, name, version)
    _refuse_labelled(session, job)
    session.execute(delete(Artifact).where(Artifact.job_id == job.id))
    session.execute(delete(ModelExport).where(ModelExport.job_id == job.id))
    # Negated rather than cleared: the next version is max(|version|) + 1, so numbers are not reused.
    session.execute(update(Job).where(Job.id == job.id).values(model_version=-version))


def delete_dataset(session: Session, dataset_id: str) -> None:
    """Delete a dataset; 409 while a queued or running job trains on it. Finished jobs that used it
    keep their results; their data can no longer be sampled."""
    if session.get(Dataset, dataset_id) is None:
        raise NotFound(f"no dataset with id {dataset_id!r}")
    users = list(
        session.scalars(
            select(Job.id)
            .where(
                Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)),
                Job.spec["data"]["kind"].as_string() == "dataset",
                Job.spec["data"]["id"].as_string() == dataset_id,
            )
            .limit(10)
        )
    )
    if users:
        raise Conflict(
            f"dataset {dataset_id} is used by queued or running job(s) {', '.join(users)}; "
            "cancel them or wait until they finish",
            details={"jobs": users},
        )
    session.execute(delete(Dataset).where(Dataset.id == dataset_id))


def expire(session: Session, days: float, batch: int = 1000) -> int:
    """Delete up to `batch` finished jobs that ended more than `days` ago and that no label keeps
    (BUMPFIT_RETENTION_DAYS); returns how many."""
    labelled = select(ModelLabel.job_id)
    ids = list(
        session.scalars(
            select(Job.id)
            .where(
                Job.status.in_(FINISHED),
                Job.finished_at < utcnow() - timedelta(days=days),
                Job.id.not_in(labelled),
            )
            .order_by(Job.seq)
            .limit(batch)
        )
    )
    if ids:
        _remove(session, ids)
    return len(ids)


def expire_events(session: Session, days: float, batch: int = 1000) -> int:
    """Delete up to `batch` outbox events written more than `days` ago that no target waits for any
    more (each delivery done, or dead after its attempts), with their deliveries (the same
    BUMPFIT_RETENTION_DAYS); returns how many."""
    waiting = select(Delivery.event_id).where(Delivery.status == "pending")
    old = OutboxEvent.created_at < utcnow() - timedelta(days=days)
    ids = list(session.scalars(select(OutboxEvent.id).where(old, OutboxEvent.id.not_in(waiting)).limit(batch)))
    if ids:
        session.execute(delete(Delivery).where(Delivery.event_id.in_(ids)))
        session.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(ids)))
    return len(ids)
