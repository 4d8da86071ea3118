"""The worker registry's reads: which workers are alive."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from app.db import session_scope, utcnow
from app.ops.models import Worker


def alive(worker: Worker, now: datetime, lease_seconds: float) -> bool:
    """A worker is alive while it has not stopped and its heartbeat is younger than one lease."""
    return worker.status != "stopped" and (now - worker.heartbeat_at).total_seconds() < lease_seconds


def host_worker_alive(url: str, host: str, lease_seconds: float) -> bool:
    """True when a worker on `host` (ids are `host:pid`) is alive: a container's health check."""
    with session_scope(url, readonly=True) as s:
        rows = s.scalars(select(Worker).where(Worker.id.startswith(f"{host}:", autoescape=True)))
        now = utcnow()
        return any(alive(w, now, lease_seconds) for w in rows)
