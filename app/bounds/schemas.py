"""Request and answer bodies of `:bounds` and `:optimize` (docs/bounds.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict

Finite = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Method = Literal["auto", "interval", "linear", "split", "exact"]
METHOD_HELP = (
    "`interval`: interval bounds alone; `linear`: backward linear bounds (CROWN); `split`: linear bounds "
    "refined by splitting the box within the budget; `exact`: split, then a MILP (ReLU networks only); "
    "`auto`: `exact` where the model is a ReLU network, else `split` (a single layer is exact by intervals)"
)


class Box(BaseModel):
    """A box of raw inputs: each feature between its `lower` and `upper` value."""

    model_config = ConfigDict(extra="forbid", strict=True)

    lower: list[Finite] = Field(description="one value per input feature")
    upper: list[Finite] = Field(description="one value per input feature, each >= its lower value")


class Analysis(BaseModel):
    """What both routes take besides the box."""

    model_config = ConfigDict(extra="forbid", strict=True)

    box: Box | None = Field(None, description="default: each feature's min and max on the model's training split")
    method: Method = Field("auto", description=METHOD_HELP)
    budget_s: Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)] | None = Field(
        None, description="seconds to spend at most; default and cap: the setting BUMPFIT_BOUNDS_BUDGET_S"
    )


class BoundsRequest(Analysis):
    """Bounds on every output over a box."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"box": {"lower": [0, 0, 0, 0, 0], "upper": [1, 1, 1, 1, 1]}}, {}]},
    )


class OptimizeRequest(Analysis):
    """The best input for one output, some inputs held fixed."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"output": 0, "goal": "max", "fixed": {"x1": 0.5}}]},
    )

    output: Annotated[int, Strict(), Field(ge=0)] = Field(0, description="the output's index, from 0")
    goal: Literal["max", "min"] = "max"
    fixed: dict[str, Finite] = Field(
        default_factory=dict, description='inputs held at a value, by feature name or index (`"0"`)'
    )


class BoxOut(BaseModel):
    """The box the answer is about."""

    lower: list[float]
    upper: list[float]


class Reached(BaseModel):
    """The least and greatest outputs that inputs in the box were found to give (null: not finite, as
    float32 overflowed there), and those inputs."""

    min: float | None
    max: float | None
    argmin: list[float]
    argmax: list[float]


class OutputBounds(BaseModel):
    """One output: `lower <= f(x) <= upper` for every x in the box, guaranteed (null: unbounded)."""

    lower: float | None
    upper: float | None
    reached: Reached
    gap: float | None = Field(description="(upper - reached.max) + (reached.min - lower): how far from tight")


class Answer(BaseModel):
    """What both answers say about how they were found."""

    model: str
    version: int
    box: BoxOut
    method: str = Field(description="what was used: interval, linear, split or exact (milp)")
    exact: bool = Field(description="true where the bounds are the true range (up to float32 rounding)")
    complete: bool = Field(
        description="false when the budget or the work cap ended the search first: the bounds are still "
        "guaranteed, only looser than they could be"
    )
    budget_s: float


class BoundsResponse(Answer):
    """Guaranteed bounds and reached extremes of each output over the box."""

    outputs: list[OutputBounds]


class OptimizeResponse(Answer):
    """The best input found for one output, what it gives, and how far the true optimum can be from it."""

    output: int
    goal: Literal["max", "min"]
    x: list[float] = Field(description="in the box, with the fixed inputs at their values")
    value: float | None = Field(description="the output at x, as :predict gives it (null: not finite)")
    bound: float | None = Field(description="guaranteed: the optimum is at most this (max) or at least it (min)")
    gap: float | None = Field(description="|bound - value|: the true optimum is within this of value")
