"""Worker processes registered with their heartbeat."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.store.db import Base, utcnow


class Worker(Base):
    """A worker process (`host:pid`), its device and what it is running."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    device: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    current_jobs: Mapped[list[Any]] = mapped_column(default=list)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobTotal(Base):
    """A running total of the jobs table (jobs by state, epochs, durations), kept by triggers."""

    __tablename__ = "job_totals"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float]
