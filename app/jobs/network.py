"""The request schema of a network (`model.layers`), its losses and metrics, and how its stored
spec is sent back. Limits that bound a network's memory are checked in `app.jobs.service`."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import Discriminator, Field, Tag
from typing_extensions import TypedDict

from app.jobs.fields import Bounded, NonNegative, Strict

ActivationName = Literal[
    "linear",
    "relu",
    "relu6",
    "leaky_relu",
    "sigmoid",
    "hard_sigmoid",
    "tanh",
    "softmax",
    "log_softmax",
    "softplus",
    "softsign",
    "elu",
    "selu",
    "exponential",
    "silu",
    "swish",
    "mish",
]  # Keras's names; app.networks.ACTIVATIONS holds each one's NumPy form (a test checks they match)
RegressionLoss = Literal["mse", "mae", "huber"]
ClassificationLoss = Literal["binary_crossentropy", "sparse_categorical_crossentropy", "categorical_crossentropy"]
# Keras's metric names; `accuracy` means the accuracy of the loss, as in Keras's `compile`.
MetricName = Literal[
    "accuracy",
    "binary_accuracy",
    "sparse_categorical_accuracy",
    "categorical_accuracy",
    "auc",
    "mae",
    "mse",
    "rmse",
    "r2",
]
MAX_LAYERS = 32  # layers in one network
MAX_UNITS = 4096  # units of one dense layer
MAX_PARAMETERS = 1_000_000  # trainable numbers in one network (each fused member holds its own)


class DenseLayer(Strict):
    """A Keras `Dense` layer: activation(x @ kernel + bias); kernel Glorot-uniform, bias zeros."""

    type: Literal["dense"]
    units: int = Field(ge=1, le=MAX_UNITS)
    activation: ActivationName = Field("linear", description="a Keras activation name")
    use_bias: bool = True


class BumpUnits(Strict):
    """bump over each unit of the previous layer: one trainable sigma >= 0 per unit."""

    type: Literal["bump"]
    sigma_init: NonNegative | None = Field(None, description="null: each unit's drawn from [0.01, 0.1) with the seed")


class GaussianUnits(Strict):
    """gaussian over each unit of the previous layer: trainable a, b >= 0 and c per unit."""

    type: Literal["gaussian"]
    a_init: Bounded = 1.0
    b_init: NonNegative = 1.0
    c_init: Bounded = 0.0


class ActivationLayer(Strict):
    """A plain Keras activation (a baseline for the threshold layers)."""

    type: Literal["activation"]
    activation: ActivationName


def _type(value: Any) -> Any:
    return value.get("type") if isinstance(value, dict) else getattr(value, "type", None)


NetworkLayer = Annotated[
    Annotated[DenseLayer, Tag("dense")]
    | Annotated[BumpUnits, Tag("bump")]
    | Annotated[GaussianUnits, Tag("gaussian")]
    | Annotated[ActivationLayer, Tag("activation")],
    Discriminator(
        _type,
        custom_error_type="invalid_layer",
        custom_error_message="needs type 'dense', 'bump', 'gaussian' or 'activation'",
    ),
]
LAYER_TAGS = frozenset({"dense", "bump", "gaussian", "activation"})


class Network(Strict):
    """Layers in order, as a Keras Sequential over the rows of features."""

    layers: list[NetworkLayer] = Field(min_length=1, max_length=MAX_LAYERS)


# -- stored specs ---------------------------------------------------------------------------------


class NetworkLayerSpec(TypedDict, total=False):
    """One layer of a network as the job runs it (the request's fields, defaults filled in)."""

    type: str
    units: int
    activation: str
    use_bias: bool
    sigma_init: float | None
    a_init: float
    b_init: float
    c_init: float


class NetworkSpec(TypedDict):
    """A network as the job runs it."""

    layers: list[NetworkLayerSpec]
    outputs: NotRequired[Annotated[int, Field(description="the last layer's width")]]
