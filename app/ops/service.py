"""The worker registry: workers register with a heartbeat; which are alive."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.ops.models import Worker
from app.ops.schemas import WorkerOut
from app.store.db import session_scope, utcnow


def alive(worker: Worker, now: datetime, lease_seconds: float) -> bool:
    """A worker is alive while it has not stopped and its heartbeat is younger than one lease."""
    return worker.status != "stopped" and (now - worker.heartbeat_at).total_seconds() < lease_seconds


def host_worker_alive(url: str, host: str, lease_seconds: float) -> bool:
    """True when a worker on `host` (ids are `host:pid`) is alive: a container's health check."""
    with session_scope(url, readonly=True) as s:
        rows = s.scalars(select(Worker).where(Worker.id.startswith(f"{host}:", autoescape=True)))
        now = utcnow()
        return any(alive(w, now, lease_seconds) for w in rows)


def register(session: Session, worker_id: str, device: str, status: str, current_jobs: list[str]) -> None:
    """Record a worker's state and heartbeat (its row is created on the first call)."""
    row = session.get(Worker, worker_id) or Worker(id=worker_id, device=device, started_at=utcnow())
    row.status, row.current_jobs, row.heartbeat_at = status, list(current_jobs), utcnow()
    session.add(row)


def list_workers(session: Session, lease_seconds: float) -> list[WorkerOut]:
    """Every worker that has registered, oldest first, with whether it is alive."""
    now = utcnow()
    rows = session.scalars(select(Worker).order_by(Worker.started_at))
    fields = [name for name in WorkerOut.model_fields if name != "alive"]
    return [WorkerOut(alive=alive(w, now, lease_seconds), **{f: getattr(w, f) for f in fields}) for w in rows]
