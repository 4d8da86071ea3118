"""Job request and resource schemas: the contract's field names and defaults."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict

from app import families
from app.jobs.fields import Bounded, Finite, LearningRate, ModelName, NonNegative, Strict, struct_f32
from app.jobs.models import JobStatus
from app.jobs.network import ClassificationLoss, MetricName, Network, NetworkSpec, RegressionLoss

FUNCTION_DEFAULTS: dict[str, dict[str, float]] = {name: f.target for name, f in families.FAMILIES.items()}
NONNEGATIVE = families.nonnegative()
# The contract's enumerations, shared by the requests and the resources that echo stored requests
# (a value dropped from a request must stay readable in the rows stored before).
Function = Literal["bump", "gaussian"]
Optimizer = Literal["adam", "sgd", "rmsprop"]
Loss = RegressionLoss | ClassificationLoss
Normalize = Literal["standard"]
Monitor = Literal["loss", "val_loss"]
Device = Literal["auto", "cpu", "gpu"]


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
    function: Function = "bump"
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
    normalize: Normalize | None = Field(
        None, description="networks: standardise x with the training split's statistics"
    )


class DatasetData(Strict):
    """An uploaded dataset, by id."""

    kind: Literal["dataset"]
    id: str
    target: list[str] | None = Field(
        None, min_length=1, max_length=1024, description="networks: the names of y's columns in a table"
    )
    features: list[str] | None = Field(
        None, min_length=1, max_length=1024, description="networks: x's columns (default: every other column)"
    )
    normalize: Normalize | None = Field(
        None, description="networks: standardise x with the training split's statistics"
    )


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

    monitor: Monitor = Field("loss", description="val_loss needs validation_split > 0")
    min_delta: NonNegative = Field(0.0, description="the least decrease that counts as an improvement")
    patience: int = Field(5, ge=0, le=100_000, description="epochs without improvement before stopping")
    restore_best_weights: bool = Field(True, description="end with the best epoch's parameters, loss and metrics")
    start_from_epoch: int = Field(0, ge=0, le=100_000, description="epochs of warm-up before monitoring")


class Training(Strict):
    """Optimizer and loop settings; the defaults are the seed's (Adam 1e-3, batch 32)."""

    optimizer: Optimizer = "adam"
    learning_rate: LearningRate = Field(0.001, description="a normal positive float32 number, at most 100")
    epochs: int = Field(5, ge=1, le=100_000)
    batch_size: int = Field(32, ge=1, le=1_000_000)
    loss: Loss = Field("mse", description="the classification losses need a network (`model`)")
    metrics: list[MetricName] = Field(
        default_factory=list, max_length=16, description="networks: Keras metric names, per epoch on both splits"
    )
    validation_split: Finite = Field(0.0, ge=0, lt=1)
    shuffle: bool = Field(True, description="reshuffle the training data every epoch, as Keras fit")
    seed: int | None = Field(None, ge=0, lt=2**63, description="null: drawn at submission")
    early_stopping: EarlyStopping | None = Field(
        None, description="null: train every epoch; else `epochs` is the most, as with Keras's EarlyStopping"
    )


class JobRequest(Strict):
    """A training job: a layer or a network (`model`), data, training settings, device and an
    optional model name."""

    layer: Layer | None = Field(None, description="one element-wise layer (null: a bump, unless `model` is given)")
    model: Network | None = Field(None, description="a network of layers instead of `layer`")
    data: Data
    training: Training = Field(default_factory=Training)
    device: Device = "auto"
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

    @field_validator("layer", mode="before")
    @classmethod
    def _not_null(cls, v: Any) -> Any:
        if v is None:  # leaving it out means a bump; null is a mistake
            raise ValueError("needs type 'bump' or 'gaussian'")
        return v

    @model_validator(mode="after")
    def _one_model(self) -> JobRequest:
        if self.model is not None:
            if self.layer is not None:
                raise ValueError("give either layer or model, not both")
            return self
        if self.layer is None:
            self.layer = BumpLayer()
            self.model_fields_set.discard("layer")  # a default, not what the client sent (the fingerprint)
        t, d = self.training, self.data
        if t.loss not in ("mse", "mae", "huber"):
            raise ValueError(f"training.loss {t.loss} needs a network: give model.layers")
        if t.metrics:
            raise ValueError("training.metrics needs a network (a layer job reports loss, mae and r2)")
        if getattr(d, "target", None) or getattr(d, "features", None) or getattr(d, "normalize", None):
            raise ValueError("data.target, data.features and data.normalize need a network: give model.layers")
        return self


# -- resources ----------------------------------------------------------------------------------
# What the API sends back describes stored rows. The stored JSON is validated as TypedDicts (plain
# dicts, cheap for a page of 1,000 jobs) that take what the service and the workers wrote: lax
# types, unknown keys kept rather than refused, and the keys the workers read with a fallback
# (`per_feature`, `features`, `shuffle`, `early_stopping`) optional, so no stored row becomes a 500.
Lenient = with_config(ConfigDict(extra="allow"))


@Lenient
class BumpLayerSpec(TypedDict):
    """The bump layer as the job runs it."""

    type: Literal["bump"]
    sigma_init: Annotated[float | None, Field(description="null: drawn from [0.01, 0.1) with the training seed")]
    per_feature: NotRequired[Annotated[bool, Field(description="one sigma per input feature instead of one")]]


@Lenient
class GaussianLayerSpec(TypedDict):
    """The gaussian layer as the job runs it."""

    type: Literal["gaussian"]
    a_init: float
    b_init: float
    c_init: float
    per_feature: NotRequired[bool]


LayerSpec = Annotated[BumpLayerSpec | GaussianLayerSpec, Field(discriminator="type")]


@Lenient
class SyntheticDataSpec(TypedDict):
    """Synthetic data with its defaults filled in: the target's parameters and the data seed."""

    kind: Literal["synthetic"]
    function: Function
    params: Annotated[dict[str, float], Field(description="the target's parameters, defaults filled in")]
    n: int
    x_range: tuple[float, float]
    noise_std: float
    seed: Annotated[int, Field(description="the data seed (drawn at submission when the request left it null)")]
    features: NotRequired[Annotated[int, Field(description="columns of x: 1")]]


@Lenient
class DatasetDataSpec(TypedDict):
    """A stored dataset: an upload, or the request's inline data, stored once and referenced."""

    kind: Literal["dataset"]
    id: str
    n: Annotated[int, Field(description="rows of the dataset")]
    features: NotRequired[Annotated[int, Field(description="columns of x")]]
    columns: NotRequired[Annotated[list[str], Field(description="networks: the names of x's columns, in order")]]
    target: NotRequired[Annotated[list[str], Field(description="networks: the names of y's columns, in order")]]
    normalize: NotRequired[str | None]
    outputs: NotRequired[Annotated[int, Field(description="columns of y (networks)")]]


@Lenient
class InlineDataSpec(TypedDict):
    """Inline data kept in the spec: jobs submitted before inline data was stored as a dataset."""

    kind: Literal["inline"]
    x: list[float | list[float]]
    y: list[float | list[float]]
    n: int
    features: NotRequired[int]
    normalize: NotRequired[str | None]


DataSpec = Annotated[SyntheticDataSpec | DatasetDataSpec | InlineDataSpec, Field(discriminator="kind")]


@Lenient
class EarlyStoppingSpec(TypedDict):
    """Early stopping as the job runs it."""

    monitor: Monitor
    min_delta: float
    patience: int
    restore_best_weights: bool
    start_from_epoch: int


@Lenient
class TrainingSpec(TypedDict):
    """Training settings with the defaults filled in and the training seed drawn."""

    optimizer: Optimizer
    learning_rate: float
    epochs: int
    batch_size: int
    loss: Loss
    metrics: NotRequired[list[str]]
    validation_split: float
    shuffle: NotRequired[bool]
    seed: Annotated[int, Field(description="the training seed (drawn at submission when the request left it null)")]
    early_stopping: NotRequired[Annotated[EarlyStoppingSpec | None, Field(description="null: every epoch is trained")]]


@Lenient
class JobSpec(TypedDict):
    """The job request as stored and trained: every default filled in, seeds drawn, inline data
    replaced by the dataset it was stored as, and the data's rows (`n`) and `features` added."""

    layer: NotRequired[Annotated[LayerSpec, Field(description="a single-layer job's layer")]]
    model: NotRequired[Annotated[NetworkSpec, Field(description="a network job's layers")]]
    data: DataSpec
    training: TrainingSpec
    device: Device
    model_name: Annotated[str | None, Field(description="as requested; the model is `model.name`")]


# A learned parameter: one number, or one per input feature (`per_feature`); null where training
# diverged (JSON has no NaN or infinity).
ParamValue = float | list[float | None] | None
Params = Annotated[
    dict[str, ParamValue | dict[str, list[float | None]]],
    Field(
        description="by the layer's parameter name (sigma; a, b, c): a number, or a list with per_feature; "
        "a network's by threshold layer name, each parameter a list with one value per unit"
    ),
]


@Lenient
class Metrics(TypedDict, total=False):
    """A succeeded job's final loss, mae and r2 on its training rows, and `val_`-prefixed on its
    validation rows when it has any; null where a value is not finite."""

    loss: float | None
    mae: float | None
    r2: float | None
    val_loss: float | None
    val_mae: float | None
    val_r2: float | None


@Lenient
class JobWarning(TypedDict):
    """Something training noticed that did not fail the job, with the fix."""

    type: Annotated[str, Field(description="zero_gradient or sparse_support")]
    parameter: Annotated[str, Field(description="the parameter concerned, such as sigma")]
    epoch: Annotated[str, Field(description="the epoch it was first seen in, as a decimal string")]
    message: str


@Lenient
class JobError(TypedDict):
    """Why a job failed."""

    type: Annotated[
        str,
        Field(
            description="bad_input (its data cannot be trained on), diverged, training_error, or worker_lost "
            "(its worker stopped responding on every attempt)"
        ),
    ]
    message: str


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

    # No json_schema_serialization_defaults_required here: pydantic would mark the TypedDicts'
    # optional keys (Metrics) required with it.
    id: str
    status: JobStatus
    spec: JobSpec
    progress: Progress
    params: Params | None = Field(
        description="the learned parameters once succeeded, before that the last finished epoch's; "
        "null until an epoch has finished"
    )
    metrics: Metrics | None = Field(description="once succeeded")
    warnings: list[JobWarning]
    error: JobError | None = Field(description="once failed")
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
    """One finished epoch; a network's row adds each metric it asked (`accuracy`, and
    `val_accuracy` with a validation split), as Keras's History does."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True, extra="allow")

    epoch: int
    loss: float | None
    val_loss: float | None
    params: Params
    seconds: float | None = Field(None, description="wall time of the epoch")
    timestamp: datetime


class History(BaseModel):
    """Every finished epoch of a job, in order."""

    history: list[HistoryItem]
