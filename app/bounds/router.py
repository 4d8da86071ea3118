"""HTTP routes that ask a trained model what it can output: `:bounds` and `:optimize`, for the latest
version, a pinned one and a labelled one (as `:predict`). docs/bounds.md says what they guarantee."""

from __future__ import annotations

from fastapi import APIRouter

from app.bounds import service
from app.bounds.schemas import BoundsRequest, BoundsResponse, OptimizeRequest, OptimizeResponse
from app.http.deps import ReadSessionDep, SettingsDep
from app.http.responses import ERRORS
from app.serving import service as serving
from app.serving.router import LabelPath, VersionPath

router = APIRouter(prefix="/v1/models", tags=["models"])
BOUNDS = (
    "Over a box of raw inputs (default: each feature's min and max on the training split), each output's "
    "guaranteed `lower` and `upper` (for every input in the box, float32 rounding included), the extremes "
    "`reached` by inputs found in it, and the `gap` between the two. `method` and `exact` say how; an answer "
    "cut short by the budget is still guaranteed, marked `complete: false`."
)
OPTIMIZE = (
    "The input in the box (with the `fixed` inputs at their values) that gives output `output` its "
    "greatest (`goal: max`) or least value found, that `value` (as :predict gives it), a guaranteed "
    "`bound` on the true optimum, and `gap = |bound - value|`."
)


@router.post(
    "/{name}:bounds",
    response_model=BoundsResponse,
    summary="Bound the latest version",
    description=BOUNDS,
    responses=ERRORS,
)
def bounds_latest(name: str, req: BoundsRequest, session: ReadSessionDep, settings: SettingsDep) -> BoundsResponse:
    """Bounds over a box for the latest version."""
    return service.bounds(session, serving.version_job(session, name, None), req, settings)


@router.post(
    "/{name}/versions/{version}:bounds",
    response_model=BoundsResponse,
    summary="Bound a version",
    description=BOUNDS,
    responses=ERRORS,
)
def bounds_version(
    name: str, version: VersionPath, req: BoundsRequest, session: ReadSessionDep, settings: SettingsDep
) -> BoundsResponse:
    """Bounds over a box for a pinned version."""
    return service.bounds(session, serving.version_job(session, name, version), req, settings)


@router.post(
    "/{name}/labels/{label:label}:bounds",
    response_model=BoundsResponse,
    summary="Bound a labelled version",
    description=BOUNDS,
    responses=ERRORS,
)
def bounds_label(
    name: str, label: LabelPath, req: BoundsRequest, session: ReadSessionDep, settings: SettingsDep
) -> BoundsResponse:
    """Bounds over a box for the version a label points at."""
    job = serving.version_job(session, name, serving.label_version(session, name, label))
    return service.bounds(session, job, req, settings)


@router.post(
    "/{name}:optimize",
    response_model=OptimizeResponse,
    summary="Best input for the latest version",
    description=OPTIMIZE,
    responses=ERRORS,
)
def optimize_latest(
    name: str, req: OptimizeRequest, session: ReadSessionDep, settings: SettingsDep
) -> OptimizeResponse:
    """The best input for the latest version."""
    return service.optimize(session, serving.version_job(session, name, None), req, settings)


@router.post(
    "/{name}/versions/{version}:optimize",
    response_model=OptimizeResponse,
    summary="Best input for a version",
    description=OPTIMIZE,
    responses=ERRORS,
)
def optimize_version(
    name: str, version: VersionPath, req: OptimizeRequest, session: ReadSessionDep, settings: SettingsDep
) -> OptimizeResponse:
    """The best input for a pinned version."""
    return service.optimize(session, serving.version_job(session, name, version), req, settings)


@router.post(
    "/{name}/labels/{label:label}:optimize",
    response_model=OptimizeResponse,
    summary="Best input for a labelled version",
    description=OPTIMIZE,
    responses=ERRORS,
)
def optimize_label(
    name: str, label: LabelPath, req: OptimizeRequest, session: ReadSessionDep, settings: SettingsDep
) -> OptimizeResponse:
    """The best input for the version a label points at."""
    job = serving.version_job(session, name, serving.label_version(session, name, label))
    return service.optimize(session, job, req, settings)
