"""HTTP routes for sweeps."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.http.deps import ReadSessionDep, SessionDep, SettingsDep
from app.http.quota import CallerDep
from app.http.responses import ERRORS
from app.sweeps import service
from app.sweeps.schemas import SweepCreated, SweepList, SweepOut, SweepRequest

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"])
MAX_ROWS = 10_000  # rows of a sweep in one answer
MAX_STRIDE = 1_000_000


@router.post("", response_model=SweepCreated, status_code=201, summary="Submit a sweep", responses=ERRORS)
def create(req: SweepRequest, session: SessionDep, settings: SettingsDep, caller: CallerDep) -> SweepCreated:
    """One job per point: the cartesian product of `grid`, or each of `points`. Every job is
    validated before any is created; jobs that can share a compiled model train together."""
    return service.create(session, req, settings, caller)


@router.get("", response_model=SweepList, summary="List sweeps, newest first", responses=ERRORS)
def list_sweeps(
    session: ReadSessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50, page_token: str | None = None
) -> SweepList:
    """Each sweep with its jobs counted by status; pass `next_page_token` back as `page_token`."""
    return service.list_sweeps(session, limit, page_token)


@router.get("/{sweep_id}", response_model=SweepOut, summary="Get a sweep", responses=ERRORS)
def get(
    sweep_id: str,
    session: ReadSessionDep,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_ROWS, description="rows in one answer")] = MAX_ROWS,
    page_token: str | None = None,
    stride: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_STRIDE,
            description="every `stride`-th job in point order, from the first (1: every job): a sample "
            "spread over a sweep larger than one answer, for charts; `limit` and `page_token` apply to it",
        ),
    ] = 1,
) -> Response:
    """Counts by status and a row per job with its grid values, status, learned params and final
    metrics: every row for sweeps of up to `limit` (default 10,000) jobs, else pages. A finished
    sweep's whole answer is kept in memory (`BUMPFIT_SWEEP_CACHE_MB`) and sent again until a job of
    it changes."""
    # Already the response model's shape (SweepOut), serialized once: not validated again row by row.
    answers = request.app.state.sweep_answers
    return Response(service.get(session, sweep_id, limit, page_token, stride, answers), media_type="application/json")
