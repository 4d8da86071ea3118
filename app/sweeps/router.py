"""HTTP routes for sweeps."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import SessionDep, SettingsDep
from app.responses import ERRORS
from app.sweeps import service
from app.sweeps.schemas import SweepCreated, SweepOut, SweepRequest

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"])


@router.post("", response_model=SweepCreated, status_code=201, summary="Submit a sweep", responses=ERRORS)
def create(req: SweepRequest, session: SessionDep, settings: SettingsDep) -> SweepCreated:
    """One job per point: the cartesian product of `grid`, or each of `points`. Every job is
    validated before any is created; jobs that can share a compiled model train together."""
    return service.create(session, req, settings)


@router.get("/{sweep_id}", response_model=SweepOut, summary="Get a sweep", responses=ERRORS)
def get(sweep_id: str, session: SessionDep) -> SweepOut:
    """A row per job with its grid values, status, learned params and final metrics."""
    return service.get(session, sweep_id)
