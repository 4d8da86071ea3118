"""Job request and resource schemas: the contract's field names and defaults."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from app import families
from app.jobs.fields import Bounded, Finite, LearningRate, ModelName, NonNegative, Strict, struct_f32
from app.jobs.models import JobStatus

FUNCTION_DEFAULTS: dict[str, dict[str, float]] = {name: f.target for name, f in families.FAMILIES.items()}
NONNEGATIVE = families.nonnegative()


class BumpLayer(Strict):
    """exp(-sigma / (sigma - x^2)) inside the support, 0 outside; trainable sigma >= 0."""

    type: Literal["bump"] = "bump"
    sigma_init: NonNegative | None = Field(
        None, description="null: drawn uniformly from [0.01, 0.1) with the training seed"
    )
    per_feature: bool = Field(False, description="one sigma per input feature instead of one")


class GaussianLayer(Strict):
    """a * exp(-b * (x - c)^2) with trainable a, b >= 0, c."""

    type: Literal["gaussian"]
    a_init: Bounded = 1.0
    b_init: NonNegative = 1.0
    c_init: Bounded = 0.0
    per_feature: bool = False


def _layer_type(value: Any) -> Any:
    """The layer's type tag; a layer object without one is a bump, as the contract's default."""
    if isinstance(value, dict):
        return value.get("type", "bump")
    return getattr(value, "type", None)


Layer = Annotated[
    Annotated[BumpLayer, Tag("bump")] | Annotated[GaussianLayer, Tag("gaussian")],
    Discriminator(
        _layer_type, custom_error_type="invalid_layer", custom_error_message="needs type 'bump' or 'gaussian'"
    ),
]


class SyntheticData(Strict):
    """x uniform on x_range, y = function(x; params) plus Gaussian noise."""

    kind: Literal["synthetic"]
    function: Literal["bump", "gaussian"] = "bump"
    params: dict[str, Bounded] | None = Field(None, description="default: sigma 0.5, or a 1, b 1, c 0")
    n: int = Field(100_000, ge=1)
    x_range: Annotated[tuple[Bounded, Bounded], Field(strict=False)] = (-1.0, 1.0)  # a JSON array
    noise_std: NonNegative = 0.0
    seed: int | None = Field(None, ge=0, lt=2**63)

    @field_validator("x_range")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] >= v[1]:
            raise ValueError("min must be less than max")
        if struct_f32(v[0]) >= struct_f32(v[1]):
            raise ValueError("min and max are the same number in float32; widen the range")
        return v

    @model_validator(mode="after")
    def _params(self) -> SyntheticData:
        expected = FUNCTION_DEFAULTS[self.function]
        params = {**expected, **(self.params or {})}
        unknown = set(params) - set(expected)
        if unknown:
            raise ValueError(f"params: {self.function} takes {sorted(expected)}, not {sorted(unknown)}")
        negative = [k for k in NONNEGATIVE & set(params) if params[k] < 0]
        if negative:
            raise ValueError(f"params.{negative[0]} must be >= 0")
        self.params = params
        return self


class InlineData(Strict):
    """Data sent in the request: x and y of equal length, items numbers or lists of numbers."""

    kind: Literal["inline"]
    x: list[Bounded | list[Bounded]]
    y: list[Bounded | list[Bounded]]


class DatasetData(Strict):
    """An uploaded dataset, by id."""

    kind: Literal["dataset"]
    id: str


def _data_kind(value: Any) -> Any:
    return value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)


Data = Annotated[
    Annotated[SyntheticData, Tag("synthetic")]
    | Annotated[InlineData, Tag("inline")]
    | Annotated[DatasetData, Tag("dataset")],
    Discriminator(
        _data_kind,
        custom_error_type="invalid_data",
        custom_error_message="needs kind 'synthetic', 'inline' or 'dataset'",
    ),
]


class EarlyStopping(Strict):
    """Keras's EarlyStopping (mode min, no baseline), per job: stop once `monitor` has not improved
    by more than `min_delta` for `patience` epochs, counting from epoch `start_from_epoch` + 1."""

    monitor: Literal["loss", "val_loss"] = Field("loss", description="val_loss needs validation_split > 0")
    min_delta: NonNegative = Field(0.0, description="the least decrease that counts as an improvement")
    patience: int = Field(5, ge=0, le=100_000, description="epochs without improvement before stopping")
    restore_best_weights: bool = Field(True, description="end with the best epoch's parameters, loss and metrics")
    start_from_epoch: int = Field(0, ge=0, le=100_000, description="epochs of warm-up before monitoring")


class Training(Strict):
    """Optimizer and loop settings; the defaults are the seed's (Adam 1e-3, batch 32)."""

    optimizer: Literal["adam", "sgd", "rmsprop"] = "adam"
    learning_rate: LearningRate = Field(0.001, description="a normal positive float32 number, at most 100")
    epochs: int = Field(5, ge=1, le=100_000)
    batch_size: int = Field(32, ge=1, le=1_000_000)
    loss: Literal["mse", "mae", "huber"] = "mse"
    validation_split: Finite = Field(0.0, ge=0, lt=1)
    shuffle: bool = Field(True, description="reshuffle the training data every epoch, as Keras fit")
    seed: int | None = Field(None, ge=0, lt=2**63, description="null: drawn at submission")
    early_stopping: EarlyStopping | None = Field(
        None, description="null: train every epoch; else `epochs` is the most, as with Keras's EarlyStopping"
    )


class JobRequest(Strict):
    """A training job: layer, data, training settings, device and an optional model name."""

    layer: Layer = Field(default_factory=BumpLayer)
    data: Data
    training: Training = Field(default_factory=Training)
    device: Literal["auto", "cpu", "gpu"] = "auto"
    model_name: ModelName | None = None

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "data": {"kind": "synthetic", "function": "bump", "params": {"sigma": 0.5}, "n": 100000},
                    "training": {"epochs": 3},
                }
            ]
        },
    )


class Progress(BaseModel):
    """Finished epochs out of the total."""

    epoch: int
    epochs: int


class ModelRef(BaseModel):
    """The model version a job is (or will be, once it succeeds)."""

    name: str
    version: int | None


class JobOut(BaseModel):
    """A job resource."""

    id: str
    status: JobStatus
    spec: dict[str, Any]
    progress: Progress
    params: dict[str, Any] | None
    metrics: dict[str, Any] | None
    warnings: list[Any]
    error: dict[str, Any] | None
    attempts: int
    stopped_epoch: int | None = Field(
        None, description="the last epoch run when early stopping ended the job before `epochs`; else null"
    )
    worker: str | None
    device: str | None
    sweep_id: str | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    model: ModelRef


class JobList(BaseModel):
    """One page of jobs, newest first."""

    jobs: list[JobOut]
    next_page_token: str | None


class HistoryItem(BaseModel):
    """One finished epoch."""

    epoch: int
    loss: float | None
    val_loss: float | None
    params: dict[str, Any]
    seconds: float | None = Field(None, description="wall time of the epoch")
    timestamp: datetime


class History(BaseModel):
    """Every finished epoch of a job, in order."""

    history: list[HistoryItem]
