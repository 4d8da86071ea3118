"""Job resource schemas: what the API sends back about stored jobs (the requests: `app.jobs.schemas`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict

from app.jobs.models import JobStatus
from app.jobs.network import NetworkSpec
from app.jobs.schemas import NORMALIZE_TARGET, Device, Function, Loss, Monitor, Optimizer

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
    normalize_target: NotRequired[Annotated[str | None, Field(description=NORMALIZE_TARGET)]]
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
    normalize_target: NotRequired[str | None]


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
