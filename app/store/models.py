"""Every ORM model, imported in one place for Alembic and the tests."""

from app.datasets.models import Dataset
from app.jobs.models import Artifact, HistoryRow, Job
from app.ops.models import Worker
from app.outbox.models import Delivery, OutboxEvent, Webhook
from app.serving.models import ModelExport, ModelLabel
from app.store.db import Base
from app.sweeps.models import Sweep

__all__ = [
    "Artifact",
    "Base",
    "Dataset",
    "Delivery",
    "OutboxEvent",
    "Webhook",
    "HistoryRow",
    "Job",
    "ModelExport",
    "ModelLabel",
    "Sweep",
    "Worker",
]
