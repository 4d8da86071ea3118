"""The datasets API's resources."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class DatasetOut(BaseModel):
    """An uploaded dataset: use its id as `{"data": {"kind": "dataset", "id": ...}}`."""

    id: str
    filename: str
    n: int
    features: int
    sha256: str
    created_at: datetime | None = None


class DatasetList(BaseModel):
    """A page of datasets, newest first."""

    datasets: list[DatasetOut]
    next_page_token: str | None = None
