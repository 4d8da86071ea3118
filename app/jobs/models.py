"""Jobs (the queue itself), their per-epoch history and their trained artifacts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.store.db import Base, utcnow


class JobStatus(StrEnum):
    """A job's state; the values are what the `status` column stores. `app.store.queue` changes them."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Job(Base):
    """One training job; its row is also its queue entry and, once succeeded, a model version."""

    __tablename__ = "jobs"
    # PostgreSQL keeps 30% of each page free (migration 0012): a running job's update after every
    # epoch touches no indexed column and then goes on the same page with no index entries.
    __table_args__ = (
        UniqueConstraint("model_name", "model_version"),
        Index("ix_jobs_claim", "status", "fuse_key", "seq"),
        # The head of the queue in one index step, however many finished rows come before it.
        Index(
            "ix_jobs_queued", "seq", postgresql_where=text("status = 'queued'"), sqlite_where=text("status = 'queued'")
        ),
    )

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    spec: Mapped[dict[str, Any]]
    request_hash: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    fuse_key: Mapped[str] = mapped_column(String(64))
    device_request: Mapped[str] = mapped_column(String(8))
    sweep_id: Mapped[str | None] = mapped_column(ForeignKey("sweeps.id"), index=True)
    point: Mapped[dict[str, Any] | None]
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[int | None]
    epochs: Mapped[int]
    progress_epoch: Mapped[int] = mapped_column(default=0)
    stopped_epoch: Mapped[int | None]  # the last epoch run when early stopping ended the job early
    params: Mapped[dict[str, Any] | None]
    metrics: Mapped[dict[str, Any] | None]
    warnings: Mapped[list[Any]] = mapped_column(default=list)
    error: Mapped[dict[str, Any] | None]
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int]
    worker: Mapped[str | None] = mapped_column(String(255))
    device: Mapped[str | None] = mapped_column(String(64))
    lease_token: Mapped[str | None] = mapped_column(String(32), index=True)
    lease_expires_at: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    owner: Mapped[str | None] = mapped_column(String(64))  # the caller that submitted it (app.store.caps)


class HistoryRow(Base):
    """One finished epoch of one job."""

    __tablename__ = "job_history"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    loss: Mapped[float | None]
    val_loss: Mapped[float | None]
    seconds: Mapped[float | None]
    params: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any] | None]  # a network's metrics asked, on both splits
    timestamp: Mapped[datetime] = mapped_column(default=utcnow)


class Artifact(Base):
    """The `.keras` file of a succeeded job, written by the worker that trained it."""

    __tablename__ = "artifacts"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    weights: Mapped[bytes | None] = mapped_column(LargeBinary)  # a network's weights as .npz, for the API
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
