"""Hard thresholds that still learn: the pulse and the step, exact 0/1 in the forward pass, trained
through surrogate gradients (as snnTorch, SpikingJelly and Norse train spiking networks).

The output is `hard + (soft - stop_gradient(soft))`: exactly the hard 0/1 value forward (soft - soft
is 0 in floating point), and soft's gradient backward, with `keras.ops` only, so the same code
trains on TensorFlow and JAX. Both forms of math are `app.model.functions`', which the API serves with.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from app.model import functions
from workers.layers import LAYERS, _ParamLayer

# The least surrogate width of a pulse whose width is null: half the width of a pulse that has shrunk
# to nothing would make its ramps steps again.
MIN_SURROGATE_WIDTH = 1e-3


def surrogate(hard: Any, soft: Any) -> Any:
    """`hard`'s value with `soft`'s gradient."""
    return hard + (soft - ops.stop_gradient(soft))


def no_gradient(hard: Any, inputs: Any, params: list[Any]) -> Any:
    """`hard` with a gradient of 0 (not none, which optimizers refuse) for the inputs and parameters:
    a plain `where`, as the seed says, that still trains the layers around it."""
    return surrogate(hard, 0.0 * (inputs + sum(params)))


class _HardLayer(_ParamLayer):
    """A family layer whose call adds a surrogate's gradient to the family's exact output."""

    OPTIONS: tuple[str, ...] = ()  # the spec's fields this layer is built with (`options`)

    def params(self) -> list[Any]:
        """The parameters as tensors, in the family's order."""
        return [ops.convert_to_tensor(getattr(self, p)) for p in self.PARAMS]

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        return {**config, **{key: getattr(self, key) for key in self.OPTIONS}}


@keras.saving.register_keras_serializable(package="bumpfit")
class PulseLayer(_HardLayer):
    """1 where x_max - width < |x| < x_max, else 0, with trainable x_max, width >= 0. Its gradient is
    that of `app.model.functions.pulse_window` (`surrogate="sigmoid"`), whose ramps at both edges are
    `surrogate_width` wide (None: half the pulse's width as it trains); `"none"` has none."""

    FAMILY, PARAMS = "pulse", ("x_max", "width")
    OPTIONS = ("surrogate", "surrogate_width")

    def __init__(self, surrogate: str = "sigmoid", surrogate_width: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if surrogate not in ("sigmoid", "none"):
            raise ValueError(f"surrogate must be 'sigmoid' or 'none', not {surrogate!r}")
        self.surrogate, self.surrogate_width = surrogate, surrogate_width

    def call(self, inputs: Any) -> Any:
        return self.apply(inputs, *self.params())

    def apply(self, inputs: Any, x_max: Any, width: Any) -> Any:
        hard = functions.pulse(ops, inputs, x_max, width)
        if self.surrogate == "none":
            return no_gradient(hard, inputs, [x_max, width])
        if self.surrogate_width is None:
            ramp = ops.maximum(0.5 * ops.stop_gradient(width), MIN_SURROGATE_WIDTH)
        else:
            ramp = self.surrogate_width
        return surrogate(hard, functions.pulse_window(ops, inputs, x_max, width, ramp))


@keras.saving.register_keras_serializable(package="bumpfit")
class StepLayer(_HardLayer):
    """1 where x > threshold, else 0, with a trainable threshold. Its gradient passes straight
    through (`surrogate="ste"`: 1 for x, -1 for the threshold), is that of
    sigmoid(surrogate_slope * (x - threshold)) (`"sigmoid"`), or is none (`"none"`)."""

    FAMILY, PARAMS = "step", ("threshold",)
    OPTIONS = ("surrogate", "surrogate_slope")

    def __init__(self, surrogate: str = "ste", surrogate_slope: float = 4.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if surrogate not in ("ste", "sigmoid", "none"):
            raise ValueError(f"surrogate must be 'ste', 'sigmoid' or 'none', not {surrogate!r}")
        self.surrogate, self.surrogate_slope = surrogate, surrogate_slope

    def call(self, inputs: Any) -> Any:
        return self.apply(inputs, *self.params())

    def apply(self, inputs: Any, threshold: Any) -> Any:
        hard = functions.step(ops, inputs, threshold)
        if self.surrogate == "ste":
            return surrogate(hard, inputs - threshold)
        if self.surrogate == "sigmoid":
            return surrogate(hard, functions.step_sigmoid(ops, inputs, threshold, self.surrogate_slope))
        return no_gradient(hard, inputs, [threshold])


def options(spec: dict[str, Any]) -> dict[str, Any]:
    """A threshold layer spec's build options (a hard layer's surrogate and its width or slope)."""
    cls = LAYERS.get(spec["type"])
    return {key: spec[key] for key in getattr(cls, "OPTIONS", ()) if key in spec}


LAYERS.update({"pulse": PulseLayer, "step": StepLayer})
