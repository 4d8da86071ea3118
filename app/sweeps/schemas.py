"""Sweep request and resource schemas.

A sweep's base, grid and points stay plain JSON at run time: each job is the base with its point's
dotted paths set, checked as a job request only then (so a base may leave out what every point
sets, and errors name the point). The OpenAPI document still types them: the base as a
`JobTemplate`, each point as a `SweepPoint` whose keys are the job request's dotted paths, each
typed as that field of the job request, and a grid as a `SweepGrid` of lists of those.
"""

from __future__ import annotations

import json
import types
import typing
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    TypeAdapter,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema
from typing_extensions import TypedDict

from app.jobs.fields import Bounded, NonNegative
from app.jobs.models import JobStatus
from app.jobs.resource import JobError, Metrics, Params, Progress
from app.jobs.schemas import FUNCTION_DEFAULTS, NONNEGATIVE, JobRequest, SyntheticData

EXAMPLE: dict[str, Any] = {
    "base": {"data": {"kind": "synthetic", "function": "bump", "n": 100000}, "training": {"epochs": 3}},
    "grid": {"data.params.sigma": [0.1, 0.2, 0.3]},
}


class DocumentedAs:
    """Validated and serialized as the annotated type (plain JSON: requests keep their per-point
    checks and messages, stored values go back as they are); documented as `doc`'s schema."""

    def __init__(self, doc: Any) -> None:
        self.doc = doc

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return handler(source)

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return handler(TypeAdapter(self.doc).core_schema)


def _field_type(field: FieldInfo) -> Any:
    """A job request field's type with its constraints and description, without its default."""
    metadata = [*field.metadata, *([Field(description=field.description)] if field.description else [])]
    return Annotated[(field.annotation, *metadata)] if metadata else field.annotation


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The models a field's type holds (the branches of a union, an optional's model)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, Annotated):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    return []


def _paths(model: type[BaseModel], prefix: str, out: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Every dotted path into `model` -> the types it has (one per model that has the path)."""
    for name, field in model.model_fields.items():
        out.setdefault(prefix + name, []).append(_field_type(field))
        for sub in _models(field.annotation):
            _paths(sub, f"{prefix}{name}.", out)
    if model is SyntheticData:
        for param in sorted({p for target in FUNCTION_DEFAULTS.values() for p in target}):
            number = NonNegative if param in NONNEGATIVE else Bounded
            out.setdefault(f"{prefix}params.{param}", []).append(
                Annotated[number, Field(description=f"the synthetic target's {param}")]
            )
    return out


def _one_type(options: list[Any]) -> Any:
    """One type for a path: the distinct types its models give it, as a union."""
    distinct: dict[str, Any] = {}
    for t in options:
        schema = TypeAdapter(t).json_schema()
        schema.pop("description", None)
        distinct.setdefault(json.dumps(schema, sort_keys=True), t)
    kinds = list(distinct.values())
    return kinds[0] if len(kinds) == 1 else typing.Union[tuple(kinds)]  # noqa: UP007


def _typed_dict(name: str, doc: str, fields: dict[str, Any], min_keys: int = 0) -> Any:
    """A TypedDict of fields known only at import time, for the document (mypy cannot see its keys):
    every key optional, no other key allowed."""
    make: Any = TypedDict
    cls = make(name, fields, total=False)
    cls.__doc__ = doc
    cls.__pydantic_config__ = ConfigDict(
        extra="forbid", json_schema_extra={"minProperties": min_keys} if min_keys else None
    )
    return cls


def _values(t: Any) -> Any:
    """A grid's values for a path of type `t`: a non-empty list of them."""
    return Annotated[list[t], Field(min_length=1)]


PATHS = {path: _one_type(options) for path, options in _paths(JobRequest, "", {}).items()}
JobTemplate = _typed_dict(
    "JobTemplate",
    "A job request (the POST /v1/jobs body) whose fields may each be left out for the points to set. "
    "Each job is this base with its point's dotted paths set, then checked as a job request, so a "
    "value that every point replaces is not checked. In a sweep's answer: the base as it was sent, "
    "with its inline x and y replaced by the dataset they were stored as (the data's other fields kept) "
    "when no point sets data.",
    {name: _field_type(f) for name, f in JobRequest.model_fields.items()},
)
SweepPoint = _typed_dict(
    "SweepPoint",
    "One job's values, by dotted path into the job request (`data.params.sigma`, `training.epochs`, "
    "`layer`): each the type of that field of the job request, set over the base.",
    PATHS,
)
SweepGrid = _typed_dict(
    "SweepGrid",
    "Values to try, by dotted path into the job request: one job per combination (the cartesian "
    "product, the last path varying fastest).",
    {path: _values(t) for path, t in PATHS.items()},
    min_keys=1,
)

Base = Annotated[dict[str, Any], DocumentedAs(JobTemplate)]
Grid = Annotated[dict[str, list[Any]], DocumentedAs(SweepGrid)]
Point = Annotated[dict[str, Any], DocumentedAs(SweepPoint)]


class SweepRequest(BaseModel):
    """A base job request and either a grid (cartesian product) or a list of points.

    Keys are dotted paths into the job request, such as `data.params.sigma` or `training.epochs`.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]})

    base: Base = Field(description="the job request each point is set over; it may leave out what every point sets")
    grid: Grid | None = None
    points: list[Point] | None = Field(None, description="at least one; each job's values")

    @model_validator(mode="after")
    def _one_of(self) -> SweepRequest:
        if (self.grid is None) == (self.points is None):
            raise ValueError("give exactly one of grid or points")
        if self.grid is not None and (not self.grid or any(not v for v in self.grid.values())):
            raise ValueError("grid needs at least one key, each with at least one value")
        if self.points is not None and not self.points:
            raise ValueError("points must not be empty")
        return self


class SweepCreated(BaseModel):
    """The new sweep and its job ids, in point order."""

    id: str
    jobs: list[str]


class SweepRow(BaseModel):
    """One job of a sweep: its point, state and results."""

    # Built from the job's columns without validation (10,000 rows stay quick) and sent as stored;
    # typed in the document as the job resource types them.
    id: str
    point: Point
    status: Annotated[str, DocumentedAs(JobStatus)]
    progress: Progress
    params: Annotated[dict[str, Any] | None, DocumentedAs(Params | None)]
    metrics: Annotated[dict[str, Any] | None, DocumentedAs(Metrics | None)]
    error: Annotated[dict[str, Any] | None, DocumentedAs(JobError | None)]


class SweepRequestEcho(TypedDict):
    """The sweep request as stored: its base (inline x and y replaced by the dataset they were stored
    as, the data's other fields kept, when no point sets data) and its grid (null for a sweep of
    points: each row has its point)."""

    base: Base
    grid: Grid | None


class SweepOut(BaseModel):
    """A sweep with counts by status and a row per job (a page of rows past `limit` jobs)."""

    id: str
    created_at: datetime
    counts: dict[str, int] = Field(description="jobs by status, over the whole sweep")
    done: bool = Field(description="every job of the sweep has finished")
    request: SweepRequestEcho = Field(description="the sweep request: `base` and `grid`; `points` are in the rows")
    jobs: list[SweepRow] = Field(description="rows in point order, from `page_token` on, at most `limit`")
    next_page_token: str | None = Field(None, description="pass as `page_token` for the next rows; null: no more")


class SweepSummary(BaseModel):
    """A sweep in a list: its size and its jobs by status."""

    id: str
    created_at: datetime
    job_count: int
    counts: dict[str, int] = Field(description="jobs by status (deleted jobs are not counted)")
    done: bool


class SweepList(BaseModel):
    """A page of sweeps, newest first."""

    sweeps: list[SweepSummary]
    next_page_token: str | None = None
