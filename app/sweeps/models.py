"""A sweep: one request that created many jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.store.db import Base, utcnow


class Sweep(Base):
    """The request of a sweep; its jobs point back to it."""

    __tablename__ = "sweeps"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    request: Mapped[dict[str, Any]]
    job_count: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Raised by a trigger (migration 0013) whenever a finished job of the sweep changes or goes: an
    # answer built at an older version may be stale (app.sweeps.service.Answers).
    answer_version: Mapped[int] = mapped_column(default=0, server_default=text("0"))
