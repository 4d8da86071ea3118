"""Job request schemas: the contract's field names and defaults (the resources: `app.jobs.resource`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from app.jobs.fields import Bounded, Finite, LearningRate, ModelName, NonNegative, Strict, struct_f32
from app.jobs.network import ClassificationLoss, MetricName, Network, RegressionLoss
from app.model import families

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
NORMALIZE_TARGET = (
    "networks with a regression loss: standardise y with the training split's mean and variance "
    "inside the model, so the optimiser sees a target of mean 0 and variance 1; predictions, loss, "
    "metrics and the artifact are in y's own units"
)


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
    normalize_target: Normalize | None = Field(None, description=NORMALIZE_TARGET)

    @field_validator("x", mode="before")
    @classmethod
    def _rows(cls, value: Any) -> Any:
        """Sequences are uploads: a 3-deep x is named as such, not as thousands of non-numbers."""
        if isinstance(value, list) and value and isinstance(value[0], list) and value[0]:
            if isinstance(value[0][0], list):
                raise ValueError(
                    "inline x is rows (n, features); sequences (n, timesteps, features) come as an .npz "
                    "upload (POST /v1/datasets)"
                )
        return value


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
    normalize_target: Normalize | None = Field(None, description=NORMALIZE_TARGET)


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
        given = [f"data.{f}" for f in ("target", "features", "normalize", "normalize_target") if getattr(d, f, None)]
        if given:
            verb = "needs" if len(given) == 1 else "need"
            raise ValueError(f"{' and '.join(given)} {verb} a network: give model.layers")
        return self
