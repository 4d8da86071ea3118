"""The registry of layer families: what each is, written once.

A family names its trainable parameters, their starting values, which must stay >= 0, the
synthetic target's default parameters, its math (from `app.model.functions`, against NumPy or
`keras.ops`) and its label for plots. The API's validation, predictions and synthetic data, the
workers' Keras layers (`workers.layers.layer_for`) and their starting values all read it here.
Adding a family: CONTRIBUTING.md, "Adding a layer family".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.model import functions


@dataclass(frozen=True)
class Family:
    """One layer family: y = math(xp, x, *params), element-wise."""

    name: str
    params: tuple[str, ...]
    math: Callable[..., Any]  # (xp, x, *params in order) -> y
    inits: dict[str, float]  # each parameter's starting value (the request's `<param>_init` default)
    target: dict[str, float]  # a synthetic target's default parameters
    label: str  # the formula, for plots and the dashboard
    nonnegative: frozenset[str] = frozenset()  # kept >= 0 by a constraint (the math relies on it)
    # A starting value drawn from the training seed when a request leaves `<param>_init` null.
    draws: dict[str, tuple[float, float]] = field(default_factory=dict)
    # (xp, lo, hi, *params in order) -> (argmin, argmax) over x in [lo, hi], element-wise: the bounds of
    # a trained model (app.bounds) build the family's interval and linear bounds on it; None: none yet.
    extremes: Callable[..., tuple[Any, Any]] | None = None

    def evaluate(self, xp: Any, x: Any, params: dict[str, Any]) -> Any:
        """The family's function of x with the given parameters."""
        return self.math(xp, x, *(params[p] for p in self.params))

    def initial_values(self, layer: dict[str, Any], size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """A job's starting parameters from its `layer` spec; a null `<param>_init` with a draw range
        is drawn from the job's own seed."""
        out = {}
        for p in self.params:
            value = layer.get(f"{p}_init", self.inits.get(p))
            out[p] = rng.uniform(*self.draws[p], size=size) if value is None else np.full(size, value)
        return out


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add a family to the registry (or replace one of the same name)."""
    FAMILIES[family.name] = family
    return family


def get(name: str) -> Family:
    """The named family; ValueError if there is none."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown layer type {name!r}") from None


def evaluate(xp: Any, layer_type: str, x: Any, params: dict[str, Any]) -> Any:
    """Apply the named layer family to x with the given parameters (`get(layer_type).evaluate`)."""
    return get(layer_type).evaluate(xp, x, params)


def nonnegative() -> set[str]:
    """Parameters that every family using them keeps >= 0."""
    return {p for f in FAMILIES.values() for p in f.nonnegative}


register(
    Family(
        "bump",
        ("sigma",),
        functions.bump,
        inits={},
        target={"sigma": 0.5},
        label="exp(-sigma / (sigma - x²))",
        nonnegative=frozenset({"sigma"}),
        draws={"sigma": (0.01, 0.1)},  # the seed's [0, 0.1) less the draws too small to learn
        extremes=functions.bump_extremes,
    )
)
register(
    Family(
        "gaussian",
        ("a", "b", "c"),
        functions.gaussian,
        inits={"a": 1.0, "b": 1.0, "c": 0.0},
        target={"a": 1.0, "b": 1.0, "c": 0.0},
        label="a·exp(-b (x - c)²)",
        nonnegative=frozenset({"b"}),
        extremes=functions.gaussian_extremes,
    )
)
register(
    Family(
        "pulse",
        ("x_max", "width"),
        functions.pulse,
        inits={"x_max": 1.0, "width": 0.5},
        target={"x_max": 0.9, "width": 0.3},
        label="1 where x_max - width < |x| < x_max, else 0",
        nonnegative=frozenset({"x_max", "width"}),
        extremes=functions.pulse_extremes,
    )
)
register(
    Family(
        "step",
        ("threshold",),
        functions.step,
        inits={"threshold": 0.0},
        target={"threshold": 0.0},
        label="1 where x > threshold, else 0",
        extremes=functions.step_extremes,
    )
)
