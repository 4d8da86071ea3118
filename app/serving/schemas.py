"""Model and prediction schemas (TensorFlow Serving's row format)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict

Finite = Annotated[float, Strict(), Field(allow_inf_nan=False)]


class Version(BaseModel):
    """One trained version of a model: the job that made it and its learned parameters."""

    version: int
    job_id: str
    layer: str
    params: dict[str, Any]
    metrics: dict[str, Any] | None
    created_at: datetime | None


class ModelOut(BaseModel):
    """A model name and its versions, oldest first."""

    name: str
    latest_version: int
    versions: list[Version]


class ModelList(BaseModel):
    """Every model that has at least one succeeded job."""

    models: list[ModelOut]


class PredictRequest(BaseModel):
    """Rows to predict: JSON numbers (never strings or booleans), or lists of them for
    multi-feature models; each finite and within float32's range."""

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, strict=True, json_schema_extra={"examples": [{"instances": [0.1, 0.2]}]}
    )

    instances: list[Finite | list[Finite]]


class PredictResponse(BaseModel):
    """One prediction per instance, shaped like the instance."""

    predictions: list[float | list[float]]
    model: str
    version: int
