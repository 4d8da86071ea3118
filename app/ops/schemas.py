"""The operations API's resources."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class WorkerOut(BaseModel):
    """A worker process, its device, state and current jobs."""

    id: str
    device: str
    status: str
    current_jobs: list[str]
    started_at: datetime
    heartbeat_at: datetime
    alive: bool = Field(description="heartbeat within the last lease period and not stopped")


class WorkerList(BaseModel):
    """Every worker that has registered."""

    workers: list[WorkerOut]


class Health(BaseModel):
    """The process answers."""

    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    """The database answers and is at the latest migration."""

    status: str = Field(examples=["ready"])
    migration: str
