"""The constrained values every request schema is built from: finite bounded floats, learning
rates float32 can hold, model names, and the strict base model."""

from __future__ import annotations

import struct
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic import Strict as StrictType

from app.model.functions import DATA_MAX
from app.store.ids import looks_like_id

# Every float of a job request is finite and within +-DATA_MAX, where the training computation it
# feeds stays finite in float32 (see app.model.functions.DATA_MAX).
Finite = Annotated[float, StrictType(), Field(allow_inf_nan=False)]
Bounded = Annotated[Finite, Field(ge=-DATA_MAX, le=DATA_MAX)]
NonNegative = Annotated[Finite, Field(ge=0, le=DATA_MAX)]
Positive = Annotated[Finite, Field(gt=0, le=DATA_MAX)]
# Adam's and RMSprop's updates divide by terms of this size; below float32's smallest normal number
# a learning rate is 0 or subnormal in float32, and training silently does nothing.
FLOAT32_TINY = 1.1754943508222875e-38


def _normal_float32(rate: float) -> float:
    if rate < FLOAT32_TINY:
        raise ValueError("must be at least 1.18e-38: smaller rates are 0 or subnormal in float32")
    return rate


LearningRate = Annotated[Finite, Field(gt=0, le=100), AfterValidator(_normal_float32)]


def _not_an_id(name: str) -> str:
    if looks_like_id(name):
        raise ValueError(
            "has the format of a job id (16 hexadecimal digits), which names that job's model; choose another name"
        )
    return name


ModelName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"), AfterValidator(_not_an_id)]


def struct_f32(v: float) -> float:
    """v rounded to float32, as the workers will see it."""
    return float(struct.unpack("f", struct.pack("f", v))[0])


class Strict(BaseModel):
    """Unknown fields and non-finite numbers are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)
