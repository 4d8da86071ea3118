"""The request schema of a network (`model.layers`), its losses and metrics, and how its stored
spec is sent back. Limits that bound a network's memory are checked in `app.jobs.service`."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import Discriminator, Field, Tag
from typing_extensions import TypedDict

from app.jobs.fields import Bounded, NonNegative, Positive, Strict

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
]  # Keras's names; app.model.networks.ACTIVATIONS holds each one's NumPy form (a test checks they match)
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
# Keras's kernel constraints by name (keras.constraints.get), applied after each optimizer step.
KernelConstraint = Literal["unit_norm", "max_norm", "non_neg", "min_max_norm"]
MAX_LAYERS = 32  # layers in one network
MAX_UNITS = 4096  # units of one dense layer
MAX_PARAMETERS = 1_000_000  # trainable numbers in one network (each fused member holds its own)


class DenseLayer(Strict):
    """A Keras `Dense` layer: activation(x @ kernel + bias); kernel Glorot-uniform, bias zeros."""

    type: Literal["dense"]
    units: int = Field(ge=1, le=MAX_UNITS)
    activation: ActivationName = Field("linear", description="a Keras activation name")
    use_bias: bool = True
    weight_norm: bool = Field(
        False, description="w = g * v / ||v|| per unit (Salimans and Kingma), g and v trained; the artifact holds w"
    )
    kernel_constraint: KernelConstraint | None = Field(
        None, description="a Keras constraint on each unit's kernel column, applied after every step"
    )


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


class PulseUnits(Strict):
    """A pulse over each unit: exactly 1 where x_max - width < |x| < x_max, else 0; trainable x_max
    and width >= 0 per unit, trained through a smooth window's gradient (`surrogate`)."""

    type: Literal["pulse"]
    x_max_init: NonNegative = 1.0
    width_init: Positive = 0.5
    surrogate: Literal["sigmoid", "none"] = Field(
        "sigmoid", description="the window whose gradient trains the pulse; none: a plain where, no gradient"
    )
    surrogate_width: Positive | None = Field(
        None, description="each edge's ramp (slope 1/surrogate_width); null: half the pulse's width as it trains"
    )


class StepUnits(Strict):
    """A Heaviside step over each unit: exactly 1 where x > threshold, else 0; trainable threshold per unit."""

    type: Literal["step"]
    threshold_init: Bounded = 0.0
    surrogate: Literal["ste", "sigmoid", "none"] = Field(
        "ste",
        description="ste: the gradient passes straight through (1 for x, -1 for the threshold); "
        "sigmoid: that of sigmoid(surrogate_slope * (x - threshold)); none: no gradient",
    )
    surrogate_slope: Positive = Field(4.0, description="the sigmoid surrogate's slope")


class ActivationLayer(Strict):
    """A plain Keras activation (a baseline for the threshold layers)."""

    type: Literal["activation"]
    activation: ActivationName


def _type(value: Any) -> Any:
    return value.get("type") if isinstance(value, dict) else getattr(value, "type", None)


GateLayer = Annotated[
    Annotated[PulseUnits, Tag("pulse")] | Annotated[BumpUnits, Tag("bump")] | Annotated[GaussianUnits, Tag("gaussian")],
    Discriminator(
        _type,
        custom_error_type="invalid_gate",
        custom_error_message="needs type 'pulse', 'bump' or 'gaussian': a gate is a threshold layer",
    ),
]


class RNNLayer(Strict):
    """A Keras `SimpleRNN` over sequences (x of shape (n, timesteps, features)), optionally gated:
    with a `gate`, h = g * activation(x W + h U + b) + (1 - g) * h, where g is the gate's threshold
    layer over its own x W_g + h U_g + b_g (one set of parameters per unit); it starts open (g = 1)."""

    type: Literal["rnn"]
    units: int = Field(ge=1, le=MAX_UNITS)
    activation: ActivationName = Field("tanh", description="a Keras activation name")
    return_sequences: bool = Field(
        False, description="output every step (n, timesteps, units), not the last (n, units)"
    )
    gate: GateLayer | None = Field(None, description="null, or a threshold layer object: pulse, bump or gaussian")


NetworkLayer = Annotated[
    Annotated[DenseLayer, Tag("dense")]
    | Annotated[RNNLayer, Tag("rnn")]
    | Annotated[BumpUnits, Tag("bump")]
    | Annotated[GaussianUnits, Tag("gaussian")]
    | Annotated[PulseUnits, Tag("pulse")]
    | Annotated[StepUnits, Tag("step")]
    | Annotated[ActivationLayer, Tag("activation")],
    Discriminator(
        _type,
        custom_error_type="invalid_layer",
        custom_error_message="needs type 'dense', 'rnn', 'bump', 'gaussian', 'pulse', 'step' or 'activation'",
    ),
]
LAYER_TAGS = frozenset({"dense", "rnn", "bump", "gaussian", "pulse", "step", "activation"})


class Network(Strict):
    """Layers in order, as a Keras Sequential over the rows of features (or sequences of them: `rnn`)."""

    layers: list[NetworkLayer] = Field(min_length=1, max_length=MAX_LAYERS)


# -- stored specs ---------------------------------------------------------------------------------


class GateSpec(TypedDict, total=False):
    """An rnn layer's gate as the job runs it: a threshold layer's fields."""

    type: str
    sigma_init: float | None
    a_init: float
    b_init: float
    c_init: float
    x_max_init: float
    width_init: float
    surrogate: str
    surrogate_width: float | None


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
    weight_norm: bool
    kernel_constraint: str | None
    x_max_init: float
    width_init: float
    threshold_init: float
    surrogate: str
    surrogate_width: float | None
    surrogate_slope: float
    return_sequences: bool
    gate: GateSpec | None


class NetworkSpec(TypedDict):
    """A network as the job runs it."""

    layers: list[NetworkLayerSpec]
    outputs: NotRequired[Annotated[int, Field(description="the last layer's width")]]
