"""Version labels: a name such as `stable` pointing at one version of a model."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class ModelLabel(Base):
    """TensorFlow Serving's version label (MLflow's alias): `label` of model `model_name` -> a version.
    The job is referenced without cascade, so a labelled version cannot be deleted by accident."""

    __tablename__ = "model_labels"

    model_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    label: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int]
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
