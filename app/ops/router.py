"""Health, readiness, Prometheus metrics and the worker registry."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from app.errors import Unavailable
from app.http.deps import SessionDep, SettingsDep
from app.http.responses import ErrorResponse
from app.ops import service
from app.ops.schemas import Health, Readiness, WorkerList
from app.store import migrate

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="Process is up")
async def healthz() -> dict[str, str]:
    """Always 200 while the process serves requests (answered on the event loop, needing no thread)."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Database reachable and migrated",
    responses={503: {"model": ErrorResponse, "description": "Database unreachable or not at the latest migration"}},
)
def readyz(request: Request) -> dict[str, str]:
    """200 when the database answers and its schema is at the latest migration, else 503."""
    url = request.app.state.settings.database_url
    try:
        current = migrate.current(url)
    except SQLAlchemyError as exc:
        raise Unavailable(f"database unreachable: {type(exc).__name__}") from None
    if current != migrate.head():
        raise Unavailable(
            f"database at migration {current}, expected {migrate.head()}; run "
            "`alembic upgrade head` (bumpfit serve does it at start)"
        )
    return {"status": "ready", "migration": current or ""}


@router.get(
    "/metrics", summary="Prometheus metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}}
)
def metrics(request: Request) -> Response:
    """Prometheus text format: jobs by state, queue depth, durations, epochs, predictions, workers."""
    text = b"".join(generate_latest(r) for r in request.app.state.registries)
    return Response(text, media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/v1/workers",
    response_model=WorkerList,
    tags=["workers"],
    summary="List workers",
    operation_id="workers_list",
)
def workers(session: SessionDep, settings: SettingsDep) -> WorkerList:
    """Every worker that has registered, with its last heartbeat; dead ones show `alive: false`."""
    return WorkerList(workers=service.list_workers(session, settings.lease_seconds))
