"""The operations API's resources."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class WorkerOut(BaseModel):
    """A worker process, its device, state and current jobs."""

    id: str
    device: str
    status: str
    current_jobs: list[Any]
    started_at: datetime
    heartbeat_at: datetime
    alive: bool = Field(description="heartbeat within the last lease period and not stopped")
