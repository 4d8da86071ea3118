"""Keras layers for the layer families of `app.model.families` (modelled on keras' PReLU).

Each family's layer reads its parameters, starting values, constraints and math from the
registry: the math is `app.model.functions` run on `keras.ops`, the same code the API serves with NumPy.
Importing this module registers the layers, so `keras.saving.load_model` opens bumpfit models.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import constraints, initializers, ops, regularizers

from app.model import families


class _ParamLayer(keras.layers.Layer):  # type: ignore[misc]  # Keras has no type hints
    """Element-wise layer with one value per parameter, or one per input feature.

    With `members=K` it holds K independent parameter sets and maps inputs of shape
    (K, batch, features): the fused form that trains a sweep's jobs in one compiled step.
    """

    FAMILY = ""  # the name of its family in app.model.families
    PARAMS: tuple[str, ...] = ()

    def __init__(self, per_feature: bool = False, members: int | None = None, **kwargs: Any) -> None:
        specs = {
            p: (
                kwargs.pop(f"{p}_initializer", None),
                kwargs.pop(f"{p}_regularizer", None),
                kwargs.pop(f"{p}_constraint", None),
            )
            for p in self.PARAMS
        }
        super().__init__(**kwargs)
        self.per_feature = per_feature
        self.members = members
        self.supports_masking = True
        self._specs = {
            p: (
                initializers.get(i or self.default_initializer(p)),
                regularizers.get(r),
                constraints.get(c if c is not None else self.default_constraint(p)),
            )
            for p, (i, r, c) in specs.items()
        }

    def default_initializer(self, name: str) -> Any:
        """The family's starting value, or its draw range, when no initializer is given."""
        family = families.get(self.FAMILY)
        if name in family.draws:
            return initializers.RandomUniform(*family.draws[name])
        return initializers.Constant(family.inits[name])

    def default_constraint(self, name: str) -> Any:
        """>= 0 where the family's math needs it, when no constraint is given."""
        return constraints.NonNeg() if name in families.get(self.FAMILY).nonnegative else None

    def call(self, inputs: Any) -> Any:
        return self.apply(inputs, *(ops.convert_to_tensor(getattr(self, p)) for p in self.PARAMS))

    def apply(self, inputs: Any, *params: Any) -> Any:
        """The layer's function of `inputs` with the given parameter values (tensors, in `PARAMS`
        order): what `call` computes, for a caller that read the parameters already (a loop over time)."""
        return families.get(self.FAMILY).math(ops, inputs, *params)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        shape: tuple[int, ...] = (input_shape[-1],) if self.per_feature else (1,)  # type: ignore[assignment]
        if self.members is not None:
            # A stack of independent models trained together: inputs (members, batch, features).
            shape = (self.members, 1, *shape)
        for name, (init, reg, con) in self._specs.items():
            setattr(
                self,
                name,
                self.add_weight(
                    name=name, shape=shape, initializer=init, regularizer=reg, constraint=con, trainable=True
                ),
            )

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config["per_feature"] = self.per_feature
        config["members"] = self.members
        for name, (init, reg, con) in self._specs.items():
            config[f"{name}_initializer"] = initializers.serialize(init)
            config[f"{name}_regularizer"] = regularizers.serialize(reg)
            config[f"{name}_constraint"] = constraints.serialize(con)
        return config


@keras.saving.register_keras_serializable(package="bumpfit")
class BumpLayer(_ParamLayer):
    """exp(-sigma / (sigma - x^2)) where |x| < sigma and x^2 < sigma, else 0; trainable sigma >= 0.

    Finite output and gradients for every finite x and sigma >= 0 (see app.model.functions.bump).
    """

    FAMILY, PARAMS = "bump", families.get("bump").params


@keras.saving.register_keras_serializable(package="bumpfit")
class GaussianLayer(_ParamLayer):
    """a * exp(-b * (x - c)^2) with trainable a, b >= 0 and c (defaults 1, 1, 0)."""

    FAMILY, PARAMS = "gaussian", families.get("gaussian").params


LAYERS: dict[str, type[_ParamLayer]] = {"bump": BumpLayer, "gaussian": GaussianLayer}


def layer_for(name: str) -> type[_ParamLayer]:
    """The Keras layer class of a family; a family registered without one gets a generated layer
    (`<Name>Layer`, registered for `.keras` files like the two above)."""
    if name not in LAYERS:
        family = families.get(name)
        cls = type(
            f"{name.title()}Layer",
            (_ParamLayer,),
            {"FAMILY": name, "PARAMS": family.params, "__doc__": f"The {name} family's layer."},
        )
        LAYERS[name] = keras.saving.register_keras_serializable(package="bumpfit")(cls)
    return LAYERS[name]


def build_model(layer_type: str, features: int, params: dict[str, Any], per_feature: bool) -> keras.Model:
    """A one-layer model holding the given parameter values, ready to save as `.keras`."""
    layer = layer_for(layer_type)(per_feature=per_feature, name=layer_type)
    model = keras.Sequential([keras.Input(shape=(features,)), layer])
    set_params(model, params)
    return model


def set_params(model: keras.Model, params: dict[str, Any]) -> None:
    """Put parameter values (a number each, or a list each when per feature) into a built model."""
    layer = model.layers[0]
    for name, value in params.items():
        getattr(layer, name).assign(ops.reshape(ops.convert_to_tensor(value, "float32"), (-1,)))


@keras.saving.register_keras_serializable(package="bumpfit")
class Standardize(keras.layers.Layer):  # type: ignore[misc]  # Keras has no type hints
    """Keras's `Normalization` formula, (x - mean) / max(sqrt(variance), epsilon), or its inverse
    with `invert=True`, whose mean and variance are weights: every `.keras` file of one network
    shape has the same config, so the artifact writer patches only the weights
    (`workers.engine.export`). Keras's own layer keeps given statistics in its config."""

    def __init__(self, invert: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.invert = invert

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        shape = (input_shape[-1],)
        self.mean = self.add_weight(name="mean", shape=shape, initializer="zeros", trainable=False)
        self.variance = self.add_weight(name="variance", shape=shape, initializer="ones", trainable=False)

    def call(self, inputs: Any) -> Any:
        scale = ops.maximum(ops.sqrt(self.variance), keras.backend.epsilon())
        return inputs * scale + self.mean if self.invert else (inputs - self.mean) / scale

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "invert": self.invert}


# The hard thresholds' layers subclass _ParamLayer: imported last, they register beside the two above.
from workers import hard  # noqa: E402,F401
