"""Version labels (TensorFlow Serving's version_labels, MLflow's aliases): set, read and remove."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.outbox import events
from app.serving import service
from app.serving.models import ModelLabel
from app.serving.schemas import LABEL_PATTERN, LabelOut
from app.store.db import utcnow


def check_name(label: str) -> None:
    """A label is a word starting with a letter (so never taken for a version number)."""
    if not re.fullmatch(LABEL_PATTERN, label):
        raise InvalidInput.at(
            "label", f"{label[:80]!r} is not a label: a letter, then up to 63 letters, digits, '_', '.' or '-'"
        )


def _out(row: ModelLabel) -> LabelOut:
    return LabelOut(name=row.model_name, label=row.label, version=row.version, updated_at=row.updated_at)


def get(session: Session, name: str, label: str) -> LabelOut:
    """One label of a model, or 404."""
    row = session.get(ModelLabel, (name, label))
    if row is None:
        raise NotFound(f"model {name!r} has no label {label!r}")
    return _out(row)


def put(session: Session, name: str, label: str, version: int) -> LabelOut:
    """Point `label` of model `name` at `version` (created or moved); 404 for an unknown model,
    422 naming `version` when the model has no such version."""
    check_name(label)
    service.get_model(session, name)  # 404 for an unknown model
    try:
        job = service.version_job(session, name, version)
    except NotFound:
        raise InvalidInput.at("version", f"model {name!r} has no version {version}") from None
    row = session.get(ModelLabel, (name, label))
    if row is None:
        row = ModelLabel(model_name=name, label=label, version=version, job_id=job.id)
        session.add(row)
    row.version, row.job_id, row.updated_at = version, job.id, utcnow()
    session.flush()
    events.labels_changed(session, name)
    return _out(row)


def delete(session: Session, name: str, label: str) -> None:
    """Remove a label; 404 if the model has no such label."""
    row = session.get(ModelLabel, (name, label))
    if row is None:
        raise NotFound(f"model {name!r} has no label {label!r}")
    session.delete(row)
    session.flush()
    events.labels_changed(session, name)


def of_jobs(session: Session, job_ids: list[str]) -> list[dict[str, object]]:
    """The labels that point at these jobs' model versions."""
    rows = session.scalars(select(ModelLabel).where(ModelLabel.job_id.in_(job_ids)).order_by(ModelLabel.label))
    return [{"model": r.model_name, "label": r.label, "version": r.version} for r in rows]
