"""Creating, reading, listing and cancelling jobs. Services never commit: callers do."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.datasets import service as datasets
from app.datasets.models import Dataset
from app.errors import Conflict, InvalidInput, NotFound, TooLarge
from app.http.auth import Caller
from app.jobs import netprep
from app.jobs.fingerprints import digest, fingerprint, older_fingerprints
from app.jobs.models import FINISHED, HistoryRow, Job, JobStatus
from app.jobs.resource import JobList, JobOut
from app.jobs.schemas import JobRequest
from app.model import data as datalib
from app.model import plan
from app.settings import Settings
from app.store import caps, pages, queue
from app.store.db import utcnow
from app.store.ids import new_id


@dataclass
class Shape:
    """What the worker will train on: rows, features, and the train/validation split."""

    n: int
    features: int
    n_train: int
    n_val: int
    inline: tuple[np.ndarray, np.ndarray] | None = None  # the arrays of inline data, validated
    table: netprep.Table | None = None  # a network's x and y
    outputs: int = 0  # a network's output width


def _check_split(req: JobRequest, n: int) -> tuple[int, int]:
    t = req.training
    n_train, n_val = datalib.split(n, t.validation_split)
    if n_train < 1:
        raise InvalidInput.at("training.validation_split", f"leaves no training rows out of {n}")
    if t.validation_split > 0 and n_val < 1:
        raise InvalidInput.at("training.validation_split", f"leaves no validation rows out of {n}")
    if t.early_stopping is not None and t.early_stopping.monitor == "val_loss" and n_val < 1:
        raise InvalidInput.at(
            "training.early_stopping.monitor", "val_loss needs training.validation_split > 0 (no validation rows)"
        )
    return n_train, n_val


def data_shape(session: Session, req: JobRequest, settings: Settings) -> Shape:
    """Validate the data spec against the limits and return its shape; nothing is written."""
    d = req.data
    inline = None
    if plan.is_network(req):
        tab, inline = netprep.table(session, req, settings)
        n = len(tab.x)
        n_train, n_val = _check_split(req, n)
        width = netprep.check(req, tab, n, settings)
        return Shape(n, tab.features, n_train, n_val, inline, tab, width)
    if d.kind == "synthetic":
        if d.n > settings.max_points:
            raise TooLarge.at("data.n", f"{d.n} is more than the limit {settings.max_points}")
        n, features = d.n, 1
    elif d.kind == "inline":
        inline = datalib.pair(
            d.x, d.y, "data", settings.max_inline_points, settings.max_features, max_cells=settings.max_cells
        )
        n, features = inline[0].shape
    else:
        cols = (Dataset.n, Dataset.features, Dataset.outputs, Dataset.timesteps)
        row = session.execute(select(*cols).where(Dataset.id == d.id)).first()
        if row is None:
            raise InvalidInput.at("data.id", f"no dataset with id {d.id!r}; upload one with POST /v1/datasets")
        n, features = row.n, row.features
        if row.timesteps is not None:
            raise InvalidInput.at(
                "data.id",
                f"dataset {d.id!r} holds sequences of {row.timesteps} timesteps: a layer acts on rows; "
                "train a network whose first layer is an rnn (model.layers) on it",
            )
        if row.outputs is not None and row.outputs != features:
            raise InvalidInput.at(
                "data.id",
                f"dataset {d.id!r} has x of {features} columns and y of {row.outputs}: a layer is "
                "element-wise, so y must be shaped like x; train a network (model.layers) on it",
            )
    t = req.training
    n_train, n_val = _check_split(req, n)
    compute = n * t.epochs * features
    if compute > settings.max_compute:
        raise TooLarge.at(
            "training.epochs",
            f"n x epochs x features = {compute} is more than the compute limit {settings.max_compute} per job",
        )
    return Shape(n, features, n_train, n_val, inline)


def fuse_key(req: JobRequest, shape: Shape) -> str:
    """Jobs with equal keys can train together in one compiled model."""
    t = req.training
    if plan.is_network(req):
        steps = shape.table.timesteps if shape.table is not None else None
        return digest(netprep.fuse_key(req, shape.n_train, shape.n_val, shape.features, shape.outputs, steps))
    assert req.layer is not None
    return digest(
        [
            req.layer.type,
            req.layer.per_feature,
            shape.n_train,
            shape.n_val,
            shape.features,
            t.batch_size,
            t.epochs,
            t.optimizer,
            t.learning_rate,
            t.loss,
            t.shuffle,
            req.device,
        ]
    )


def prepare(session: Session, req: JobRequest, settings: Settings) -> tuple[dict[str, Any], str]:
    """Validate a request and fill its defaults: (spec, fuse key). Draws missing seeds. Inline data
    is stored as a dataset that the spec references, so job resources stay small."""
    shape = data_shape(session, req, settings)
    spec = req.model_dump(mode="json", exclude={"data": {"x", "y"}})
    if shape.inline is not None:
        ds = datasets.store_arrays(session, *shape.inline, filename="inline data")
        spec["data"] = datasets.reference(spec["data"], ds)
    if shape.table is not None:
        spec = netprep.spec_of(spec, shape.table, shape.outputs)
    else:  # a single layer's spec as it always was
        spec.pop("model", None)
        spec["training"].pop("metrics", None)
        for key in ("target", "features", "normalize", "normalize_target"):
            spec["data"].pop(key, None)
    if spec["training"]["seed"] is None:
        spec["training"]["seed"] = secrets.randbits(32)
    if spec["data"]["kind"] == "synthetic" and spec["data"]["seed"] is None:
        spec["data"]["seed"] = secrets.randbits(32)
    spec["data"]["n"] = shape.n
    spec["data"]["features"] = shape.features
    return spec, fuse_key(req, shape)


def job_values(req: JobRequest, spec: dict[str, Any], key: str, settings: Settings, **extra: Any) -> dict[str, Any]:
    """A new queued job row for a prepared spec, as column values."""
    job_id = new_id()
    return {
        "id": job_id,
        "status": JobStatus.QUEUED,
        "spec": spec,
        "fuse_key": key,
        "device_request": req.device,
        "model_name": req.model_name or job_id,
        "epochs": req.training.epochs,
        "max_attempts": settings.max_attempts,
        "warnings": [],
        "progress_epoch": 0,
        "attempts": 0,
        "cancel_requested": False,
        "created_at": utcnow(),
        **extra,
    }


def build_job(req: JobRequest, spec: dict[str, Any], key: str, settings: Settings, **extra: Any) -> Job:
    """A new queued job row for a prepared spec."""
    return Job(**job_values(req, spec, key, settings, **extra))


def create(
    session: Session,
    req: JobRequest,
    settings: Settings,
    idempotency_key: str | None = None,
    caller: Caller | None = None,
) -> tuple[Job, bool]:
    """Enqueue a job for `caller` (within its BUMPFIT_MAX_QUEUED_JOBS): (job, created). A repeated
    Idempotency-Key returns the first job."""
    request_hash = fingerprint(req)
    if idempotency_key is not None:
        found = _by_key(session, idempotency_key, req)
        if found is not None:
            return found, False
    if caller is not None:
        caps.check_queued(session, caller, 1, settings.max_queued_jobs)
    spec, key = prepare(session, req, settings)
    owner = caller.id if caller is not None else None
    job = build_job(req, spec, key, settings, request_hash=request_hash, idempotency_key=idempotency_key, owner=owner)
    try:
        with session.begin_nested():
            queue.enqueue(session, [job])
    except IntegrityError:
        # Another request with the same key won the race.
        found = _by_key(session, idempotency_key or "", req)
        if found is None:
            raise
        return found, False
    return job, True


def _by_key(session: Session, key: str, req: JobRequest) -> Job | None:
    """The job submitted with `key`, if any; 409 if it was submitted with another request."""
    job = session.scalar(select(Job).where(Job.idempotency_key == key))
    if job is not None and job.request_hash != fingerprint(req) and job.request_hash not in older_fingerprints(req):
        raise Conflict(f"Idempotency-Key {key!r} was used with a different request body", details={"job_id": job.id})
    return job


def get(session: Session, job_id: str) -> Job:
    """The job, or 404."""
    job = session.scalar(select(Job).where(Job.id == job_id))
    if job is None:
        raise NotFound(f"no job with id {job_id!r}")
    return job


def to_out(job: Job) -> JobOut:
    """The contract's job resource, validated in one call (its stored JSON included)."""
    return JobOut(
        id=job.id,
        status=job.status,
        spec=job.spec,
        progress={"epoch": job.progress_epoch, "epochs": job.epochs},
        params=job.params,
        metrics=job.metrics,
        warnings=job.warnings or [],
        error=job.error,
        attempts=job.attempts,
        stopped_epoch=job.stopped_epoch,
        worker=job.worker,
        device=job.device,
        sweep_id=job.sweep_id,
        cancel_requested=job.cancel_requested,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        model={"name": job.model_name, "version": job.model_version if (job.model_version or 0) > 0 else None},
    )


def list_jobs(
    session: Session, status: str | None, sweep_id: str | None, limit: int, page_token: str | None
) -> JobList:
    """A page of jobs, newest first; `next_page_token` continues it."""
    stmt = select(Job).order_by(Job.seq.desc()).limit(limit + 1)
    if status:
        stmt = stmt.where(Job.status == status)
    if sweep_id:
        stmt = stmt.where(Job.sweep_id == sweep_id)
    if page_token:
        stmt = stmt.where(Job.seq < pages.seq_after(page_token))
    jobs = list(session.scalars(stmt))
    token = str(jobs[limit - 1].seq) if len(jobs) > limit else None
    return JobList(jobs=[to_out(j) for j in jobs[:limit]], next_page_token=token)


def cancel(session: Session, job_id: str) -> Job:
    """Cancel a queued job now, or ask a running one to stop at its next epoch; 409 if finished."""
    job = get(session, job_id)
    if job.status not in FINISHED and queue.cancel(session, job_id):
        session.refresh(job)
        return job
    session.refresh(job)
    raise Conflict(
        f"job {job_id} already finished ({job.status}); only queued or running jobs can be cancelled",
        details={"status": job.status},
    )


def history(session: Session, job_id: str) -> list[HistoryRow]:
    """Every recorded epoch of the job, in order."""
    get(session, job_id)
    return list(session.scalars(select(HistoryRow).where(HistoryRow.job_id == job_id).order_by(HistoryRow.epoch)))


def history_item(row: HistoryRow) -> dict[str, Any]:
    """A history row as the API sends it: a network's metrics beside its loss, as Keras's History."""
    item = {
        "epoch": row.epoch,
        "loss": row.loss,
        "val_loss": row.val_loss,
        "params": row.params,
        "seconds": row.seconds,
        "timestamp": row.timestamp,
    }
    return {**(row.metrics or {}), **item}
