"""HTTP routes for jobs: submit, read, list, cancel, delete, history and live events."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from app.errors import NotFound
from app.http.deps import SessionDep, SettingsDep
from app.http.quota import CallerDep, ClosingStream
from app.http.responses import ERRORS
from app.jobs import service
from app.jobs.models import FINISHED, JobStatus
from app.jobs.resource import History, HistoryItem, JobList, JobOut
from app.jobs.schemas import JobRequest
from app.store import lifecycle
from app.store.db import session_scope

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
EVENT_POLL_SECONDS = 0.5  # how often the events stream looks for progress


@router.post(
    "",
    response_model=JobOut,
    status_code=201,
    summary="Submit a training job",
    responses={200: {"model": JobOut, "description": "Idempotent replay: the existing job"}, **ERRORS},
)
def submit(
    req: JobRequest,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    caller: CallerDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JobOut:
    """Validate the job, fill in its defaults and queue it. With `Idempotency-Key`, a repeat of the
    same body returns the first job (200) and a different body is refused (409)."""
    job, created = service.create(session, req, settings, idempotency_key, caller)
    if not created:
        response.status_code = 200
    return service.to_out(job)


@router.get("", response_model=JobList, summary="List jobs, newest first", responses=ERRORS)
def list_jobs(
    session: SessionDep,
    status: JobStatus | None = None,
    sweep_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    page_token: str | None = None,
) -> JobList:
    """Filter by status or sweep; pass `next_page_token` back as `page_token` for the next page."""
    return service.list_jobs(session, status, sweep_id, limit, page_token)


@router.get("/{job_id}", response_model=JobOut, summary="Get a job", responses=ERRORS)
def get_job(job_id: str, session: SessionDep) -> JobOut:
    """The job with its status, progress, latest or learned parameters, metrics and error."""
    return service.to_out(service.get(session, job_id))


@router.post("/{job_id}:cancel", response_model=JobOut, status_code=202, summary="Cancel a job", responses=ERRORS)
def cancel_job(job_id: str, session: SessionDep) -> JobOut:
    """A queued job is cancelled at once, a running one at its next epoch boundary; 409 if finished."""
    return service.to_out(service.cancel(session, job_id))


@router.delete("/{job_id}", status_code=204, summary="Delete a finished job", responses=ERRORS)
def delete_job(job_id: str, session: SessionDep) -> Response:
    """Delete a finished job with its history, artifact and model version; 409 while it is queued
    or running (cancel it first) or while a label points at its model version."""
    lifecycle.delete_job(session, job_id)
    return Response(status_code=204)


@router.get("/{job_id}/history", response_model=History, summary="Per-epoch history", responses=ERRORS)
def get_history(job_id: str, session: SessionDep) -> History:
    """One row per finished epoch (loss, val_loss, parameters), written while the job runs."""
    rows = service.history(session, job_id)
    return History(history=[HistoryItem.model_validate(service.history_item(r)) for r in rows])


@router.get(
    "/{job_id}/events",
    summary="Live progress (server-sent events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **ERRORS},
)
async def events(job_id: str, request: Request, settings: SettingsDep, caller: CallerDep) -> StreamingResponse:
    """A `text/event-stream` of `progress` events (the job resource) whenever the job changes,
    ending with an `end` event once it has finished, or a `timeout` event (the job resource) after
    `BUMPFIT_STREAM_SECONDS` while it has not: reconnect to follow on. A caller holds at most
    `BUMPFIT_MAX_STREAMS` streams open at once (429 past it)."""
    url = settings.database_url

    def snapshot() -> str:
        with session_scope(url, readonly=True) as s:
            return service.to_out(service.get(s, job_id)).model_dump_json()

    first = await asyncio.to_thread(snapshot)  # 404 before the stream starts
    give_back = request.app.state.streams.take(caller, settings.max_streams)  # 429 past the cap
    deadline = time.monotonic() + settings.stream_seconds

    async def stream() -> AsyncIterator[str]:
        last, body = None, first
        while not await request.is_disconnected():
            if body != last:
                last = body
                yield f"event: progress\ndata: {body}\n\n"
            if json.loads(body)["status"] in FINISHED:
                yield f"event: end\ndata: {body}\n\n"
                return
            if time.monotonic() >= deadline:
                yield f"event: timeout\ndata: {body}\n\n"
                return
            await asyncio.sleep(min(EVENT_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            try:
                body = await asyncio.to_thread(snapshot)
            except NotFound:
                return

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return ClosingStream(stream(), give_back, media_type="text/event-stream", headers=headers)
