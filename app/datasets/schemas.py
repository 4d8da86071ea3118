"""The datasets API's resources."""

from __future__ import annotations

from pydantic import BaseModel


class DatasetOut(BaseModel):
    """An uploaded dataset: use its id as `{"data": {"kind": "dataset", "id": ...}}`."""

    id: str
    filename: str
    n: int
    features: int
    sha256: str
