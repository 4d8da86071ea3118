"""The datasets API's resources."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class DatasetOut(BaseModel):
    """An uploaded dataset: use its id as `{"data": {"kind": "dataset", "id": ...}}`."""

    id: str
    filename: str
    n: int
    features: int
    sha256: str
    inline: bool = Field(
        False, description="holds a job's or a sweep's inline data; deleted with the last job that uses it"
    )
    created_at: datetime | None = None
    columns: list[str] | None = Field(
        None, description="a CSV header's column names (x's, then y's); a network's `data.target` names them"
    )
    outputs: int | None = Field(
        None, description="columns of y; 0 for a table (a header of other names): `features` holds every column"
    )
    timesteps: int | None = Field(
        None, description="steps of each sequence where x is (n, timesteps, features), which an `rnn` layer takes"
    )


class DatasetList(BaseModel):
    """A page of datasets, newest first."""

    datasets: list[DatasetOut]
    next_page_token: str | None = None
