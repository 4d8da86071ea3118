"""Model and prediction schemas: TensorFlow Serving's row and columnar formats, model status,
metadata and version labels."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from app.jobs.resource import Metrics, Params

Finite = Annotated[float, Strict(), Field(allow_inf_nan=False)]
SIGNATURE = "serving_default"  # the one signature of every model, as Keras exports it
LABEL_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"  # not a number, so never mistaken for a version


class Version(BaseModel):
    """One trained version of a model: the job that made it and its learned parameters."""

    version: int
    job_id: str
    layer: str
    params: Params
    metrics: Metrics | None
    created_at: datetime | None


class Status(BaseModel):
    """TensorFlow Serving's status of a version: always OK here (every stored version serves)."""

    error_code: str = "OK"
    error_message: str = ""


class VersionStatus(BaseModel):
    """One entry of TensorFlow Serving's `model_version_status`; `version` is a string there too."""

    version: str
    state: Literal["AVAILABLE"] = "AVAILABLE"
    status: Status = Field(default_factory=Status)


class ModelOut(BaseModel):
    """A model name and its versions, oldest first; its labels; TensorFlow Serving's
    `model_version_status`, newest first."""

    name: str
    latest_version: int
    versions: list[Version]
    labels: dict[str, int] = Field(default_factory=dict, description="label -> version")
    model_version_status: list[VersionStatus] = Field(default_factory=list)


class ModelStatus(BaseModel):
    """TensorFlow Serving's `GET /v1/models/{name}/versions/{version}` answer."""

    model_version_status: list[VersionStatus]


class LabelRequest(BaseModel):
    """The version a label points at."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{"version": 1}]})

    version: int = Field(ge=1, le=2**31 - 1)


class LabelOut(BaseModel):
    """A version label of a model."""

    name: str
    label: str
    version: int
    updated_at: datetime


class ModelSpec(BaseModel):
    """TensorFlow Serving's `model_spec`: which model version answered."""

    name: str
    version: str = Field(description="the version number, as a decimal string (an int64 in TensorFlow Serving)")
    signature_name: str = Field(description="empty: the request named no signature")


class Dim(BaseModel):
    """One dimension of a tensor: its size (-1: any), as a decimal string."""

    size: str
    name: str = Field(description="empty")


class TensorShape(BaseModel):
    """A tensor's shape: rows (-1, any number) by features."""

    dim: list[Dim]
    unknown_rank: bool


class TensorInfo(BaseModel):
    """One input or output tensor of a signature."""

    dtype: str = Field(description="DT_FLOAT: float32")
    tensor_shape: TensorShape
    name: str = Field(description="the tensor's name in the SavedModel graph")


class SignatureDef(BaseModel):
    """A signature: its input and output tensors by name (input `x`, output `output_0`)."""

    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]
    method_name: str = Field(description="tensorflow/serving/predict")


class SignatureDefMap(BaseModel):
    """The model's signatures by name: `serving_default`, the one Keras exports."""

    signature_def: dict[str, SignatureDef]


class ModelMetadata(BaseModel):
    """TensorFlow Serving's `metadata`: the `signature_def` metadata field, as its REST API nests it."""

    signature_def: SignatureDefMap


class Metadata(BaseModel):
    """TensorFlow Serving's metadata answer: `model_spec` and the `serving_default` signature."""

    model_spec: ModelSpec
    metadata: ModelMetadata


class ModelList(BaseModel):
    """A page of the models that have at least one succeeded job, by name."""

    models: list[ModelOut]
    next_page_token: str | None = Field(None, description="pass as page_token for the next page; null on the last")


Rows = list[Finite | list[Finite] | list[list[Finite]]]  # a sequence model's instances are (timesteps, features)


class PredictRequest(BaseModel):
    """Rows to predict, in TensorFlow Serving's row format (`instances`) or its columnar format
    (`inputs`, answered as `outputs`): JSON numbers (never strings or booleans), or lists of them for
    multi-feature models (lists of such lists, (timesteps, features), for a sequence model); each
    finite and within float32's range."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        strict=True,
        json_schema_extra={
            "examples": [{"instances": [0.1, 0.2]}, {"signature_name": SIGNATURE, "inputs": [[0.1], [0.2]]}]
        },
    )

    signature_name: Literal["serving_default"] | None = Field(None, description="the one signature: serving_default")
    instances: Rows | None = None
    inputs: Rows | None = Field(None, description="the columnar format: the one input's rows")

    @model_validator(mode="after")
    def _one_format(self) -> PredictRequest:
        if (self.instances is None) == (self.inputs is None):
            raise ValueError("give exactly one of instances (row format) or inputs (columnar format)")
        return self

    @property
    def rows(self) -> tuple[str, list[Any]]:
        """(the field the rows came in, the rows)."""
        return ("instances", self.instances) if self.instances is not None else ("inputs", self.inputs or [])


class PredictResponse(BaseModel):
    """One prediction per instance, shaped like the instance: `predictions` for `instances`,
    `outputs` for `inputs`."""

    predictions: list[float | list[float]] | None = None
    outputs: list[float | list[float]] | None = None
    model: str
    version: int


class ExportPending(BaseModel):
    """A model export that a worker has yet to make (`pending`) or is making (`running`)."""

    status: Literal["pending", "running"]
    message: str
