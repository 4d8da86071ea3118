"""Writing events into the outbox, inside the transaction that changed the state they report (called
by `app.store.queue` and `app.serving.labels`). Delivery is `app.outbox.dispatch`'s, after commit."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.jobs.models import FINISHED, Job, JobStatus
from app.outbox.models import Delivery, OutboxEvent, Webhook
from app.settings import get_settings
from app.store.db import utcnow

JOB_EVENTS: dict[str, str] = {
    status: f"job.{status}" for status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
}
SWEEP_DONE = "sweep.done"
LABELS = "model.labels"  # a model's labels changed: MLflow's aliases follow
WEBHOOK_EVENTS = (*JOB_EVENTS.values(), SWEEP_DONE)
MLFLOW = "mlflow"
ROWS_PER_INSERT = 500  # events (or deliveries) a multi-row INSERT carries: bound parameters stay few


def _mlflow() -> bool:
    return bool(get_settings().mlflow_tracking_uri)


def _job_data(job: Any) -> dict[str, Any]:
    model = {"name": job.model_name, "version": job.model_version} if job.status == JobStatus.SUCCEEDED else None
    return {
        "id": job.id,
        "status": job.status,
        "sweep_id": job.sweep_id,
        "model": model,
        "metrics": job.metrics,
        "error": job.error,
    }


def ended(session: Session, job_ids: Iterable[str]) -> None:
    """Record the end of each of these jobs that has ended, and of each sweep they finished, where a
    webhook or MLflow will deliver it (with neither, a group's end writes and reads nothing more)."""
    ids = list(job_ids)
    targets = _targets(session) if ids else {}
    if not targets:
        return
    cols = (Job.id, Job.status, Job.model_name, Job.model_version, Job.metrics, Job.error, Job.sweep_id)
    jobs = [j for j in session.execute(select(*cols).where(Job.id.in_(ids))) if j.status in JOB_EVENTS]
    events = [(f"msg_{j.id}_{j.status}", JOB_EVENTS[j.status], j.id, _job_data(j)) for j in jobs]
    for sweep in sorted({j.sweep_id for j in jobs if j.sweep_id}):
        events.extend(sweep_done(session, sweep))
    _write(session, events, targets)


def sweep_done(session: Session, sweep_id: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """The sweep's `sweep.done` event once none of its jobs is queued or running (else nothing)."""
    counts = dict(
        session.execute(select(Job.status, func.count()).where(Job.sweep_id == sweep_id).group_by(Job.status)).all()
    )
    if not counts or any(s not in FINISHED for s in counts):
        return []
    data = {"id": sweep_id, "jobs": {str(k): int(v) for k, v in counts.items()}}
    return [(f"msg_{sweep_id}_done", SWEEP_DONE, sweep_id, data)]


def labels_changed(session: Session, model_name: str) -> None:
    """A model's labels changed: MLflow, when on, sets its aliases to match."""
    if _mlflow():
        event = (f"msg_{uuid.uuid4().hex}", LABELS, model_name[:32], {"name": model_name})
        _write(session, [event], _targets(session))


def _targets(session: Session) -> dict[str, list[str]]:
    """Event type -> where its deliveries go: each webhook that subscribed to it, and MLflow when on."""
    targets: dict[str, list[str]] = {}
    for hook_id, kinds in session.execute(select(Webhook.id, Webhook.events)).tuples():
        for kind in kinds:
            targets.setdefault(kind, []).append(f"webhook:{hook_id}")
    if _mlflow():
        for kind in (*WEBHOOK_EVENTS, LABELS):
            targets.setdefault(kind, []).append(MLFLOW)
    return targets


def _write(session: Session, events: list[tuple[str, str, str, dict[str, Any]]], targets: dict[str, list[str]]) -> None:
    """Insert the events that have somewhere to go (an id already there is skipped: each job ends
    once) and their deliveries: one per webhook that subscribed to the type, and one for MLflow when
    it is on (`targets`, as `_targets` reads them). Multi-row statements, so a group's end costs as
    many statements whatever its size."""
    events = [e for e in events if targets.get(e[1])]
    if not events:
        return
    now = utcnow()
    upsert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stamp = now.isoformat().replace("+00:00", "Z")
    rows = [
        {
            "id": event_id,
            "type": kind,
            "subject": subject,
            "payload": {"type": kind, "timestamp": stamp, "data": data},
            "created_at": now,
        }
        for event_id, kind, subject, data in events
    ]
    kinds = {event_id: kind for event_id, kind, _, _ in events}
    new: list[str] = []
    for i in range(0, len(rows), ROWS_PER_INSERT):
        stmt = upsert(OutboxEvent).values(rows[i : i + ROWS_PER_INSERT]).on_conflict_do_nothing()
        new.extend(session.scalars(stmt.returning(OutboxEvent.id)))
    deliveries = [
        {"event_id": event_id, "target": target, "next_attempt_at": now}
        for event_id in new
        for target in targets[kinds[event_id]]
    ]
    for i in range(0, len(deliveries), ROWS_PER_INSERT):
        session.execute(insert(Delivery).values(deliveries[i : i + ROWS_PER_INSERT]))
