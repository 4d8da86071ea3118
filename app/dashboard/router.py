"""The dashboard at `/` (static files, no CDN) and `GET /v1/jobs/{id}/plot.svg`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from app.dashboard.plots import job_svg
from app.errors import NotFound
from app.http.deps import SessionDep, SettingsDep
from app.http.responses import ERRORS
from app.jobs import service
from app.jobs.resource import HistoryItem
from app.model import data as datalib

STATIC = Path(__file__).resolve().parent / "static"
# The dashboard runs its own files only (no inline script or style, no other site) and is never framed.
CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
router = APIRouter()


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    """The dashboard's single page; its views live in the URL fragment (#/jobs/ID, #/models ...)."""
    return FileResponse(STATIC / "index.html", headers=HEADERS)


@router.get("/dashboard/static/{path:path}", include_in_schema=False)
def static(path: str) -> FileResponse:
    """A file of the dashboard (its script, styles and vendored uPlot)."""
    file = (STATIC / path).resolve()
    if not file.is_file() or not file.is_relative_to(STATIC):
        raise NotFound(f"no dashboard file {path!r}")
    return FileResponse(file, headers=HEADERS)


@router.get(
    "/v1/jobs/{job_id}/plot.svg",
    tags=["jobs"],
    summary="Loss and parameter plot (SVG)",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}, "description": "An SVG image"}, **ERRORS},
)
def plot(job_id: str, session: SessionDep) -> Response:
    """The loss curve (log scale) and the parameter trajectory per epoch, for reports and notebooks;
    drawn from the history recorded so far, so it also works while the job runs."""
    job = service.to_out(service.get(session, job_id)).model_dump(mode="json")
    rows = [
        HistoryItem.model_validate(service.history_item(r)).model_dump(mode="json")
        for r in service.history(session, job_id)
    ]
    return Response(
        job_svg(job, rows),
        media_type="image/svg+xml",
        headers={"Content-Disposition": f'inline; filename="{job_id}.svg"'},
    )


class Sample(BaseModel):
    """Rows drawn at random from a job's training data (x and y as the worker builds them)."""

    n: int = Field(description="rows of the whole data")
    x: list[float | list[float]] = Field(description="a number per row, or a list per row with several features")
    y: list[float | list[float]] = Field(description="shaped like x")


@router.get(
    "/v1/jobs/{job_id}/sample",
    response_model=Sample,
    tags=["jobs"],
    summary="A random sample of the job's data",
    responses=ERRORS,
)
def sample(
    job_id: str, session: SessionDep, settings: SettingsDep, size: Annotated[int, Query(ge=1, le=5000)] = 500
) -> Sample:
    """Up to `size` rows of the data the job trains on, to draw the fitted function over."""
    d = service.get(session, job_id).spec["data"]
    arrays = datalib.load(session, d, settings)
    if arrays is None:
        raise NotFound(f"dataset {d['id']!r} of job {job_id} no longer exists")
    x, y = arrays
    rows = np.random.default_rng(0).permutation(len(x))[:size]
    rows.sort()

    def out(a: np.ndarray) -> list[Any]:
        values: list[Any] = a[rows, 0].tolist() if a.shape[1] == 1 else a[rows].tolist()
        return values

    return Sample(n=len(x), x=out(x), y=out(y))
