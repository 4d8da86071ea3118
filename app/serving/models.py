"""Version labels (a name such as `stable` pointing at one version of a model) and exports of a
version to other formats."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.store.db import Base, utcnow


class ModelLabel(Base):
    """TensorFlow Serving's version label (MLflow's alias): `label` of model `model_name` -> a version.
    The job is referenced without cascade, so a labelled version cannot be deleted by accident."""

    __tablename__ = "model_labels"

    model_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    label: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int]
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelExport(Base):
    """A model version in another format (a TensorFlow SavedModel), made on request by a worker: the
    API asks (`pending`), an idle worker claims it for a lease (`running`) and writes `data` (`ready`)
    or the reason it could not (`failed`)."""

    __tablename__ = "model_exports"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    format: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    data: Mapped[bytes | None] = mapped_column(LargeBinary)
    error: Mapped[str | None] = mapped_column(Text)
    lease_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
