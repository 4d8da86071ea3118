"""Sweep request and resource schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.jobs.schemas import Progress

EXAMPLE: dict[str, Any] = {
    "base": {"data": {"kind": "synthetic", "function": "bump", "n": 100000}, "training": {"epochs": 3}},
    "grid": {"data.params.sigma": [0.1, 0.2, 0.3]},
}


class SweepRequest(BaseModel):
    """A base job request and either a grid (cartesian product) or a list of points.

    Keys are dotted paths into the job request, such as `data.params.sigma` or `training.epochs`.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]})  # type: ignore[list-item]

    base: dict[str, Any] = Field(description="a job request (POST /v1/jobs body)")
    grid: dict[str, list[Any]] | None = None
    points: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> SweepRequest:
        if (self.grid is None) == (self.points is None):
            raise ValueError("give exactly one of grid or points")
        if self.grid is not None and (not self.grid or any(not v for v in self.grid.values())):
            raise ValueError("grid needs at least one key, each with at least one value")
        if self.points is not None and not self.points:
            raise ValueError("points must not be empty")
        return self


class SweepCreated(BaseModel):
    """The new sweep and its job ids, in point order."""

    id: str
    jobs: list[str]


class SweepRow(BaseModel):
    """One job of a sweep: its point, state and results."""

    id: str
    point: dict[str, Any]
    status: str
    progress: Progress
    params: dict[str, Any] | None
    metrics: dict[str, Any] | None
    error: dict[str, Any] | None


class SweepOut(BaseModel):
    """A sweep with counts by status and a row per job (a page of rows past `limit` jobs)."""

    id: str
    created_at: datetime
    counts: dict[str, int] = Field(description="jobs by status, over the whole sweep")
    done: bool = Field(description="every job of the sweep has finished")
    request: dict[str, Any] = Field(description="the sweep request: `base` and `grid`; `points` are in the rows")
    jobs: list[SweepRow] = Field(description="rows in point order, from `page_token` on, at most `limit`")
    next_page_token: str | None = Field(None, description="pass as `page_token` for the next rows; null: no more")


class SweepSummary(BaseModel):
    """A sweep in a list: its size and its jobs by status."""

    id: str
    created_at: datetime
    job_count: int
    counts: dict[str, int] = Field(description="jobs by status (deleted jobs are not counted)")
    done: bool


class SweepList(BaseModel):
    """A page of sweeps, newest first."""

    sweeps: list[SweepSummary]
    next_page_token: str | None = None
