"""HTTP routes for webhooks: register (a submit key when keys are on), list, get, delete."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.deps import SessionDep
from app.outbox import service
from app.outbox.schemas import WebhookCreated, WebhookList, WebhookOut, WebhookRequest
from app.responses import ERRORS

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.post("", response_model=WebhookCreated, status_code=201, summary="Register a webhook", responses=ERRORS)
def create(req: WebhookRequest, session: SessionDep) -> WebhookCreated:
    """Call `url` when the chosen events happen: a POST of `{"type", "timestamp", "data"}` signed per
    Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`), retried with backoff
    until it answers 2xx. The secret is returned only here."""
    return service.create(session, req)


@router.get("", response_model=WebhookList, summary="List webhooks")
def list_webhooks(session: SessionDep) -> WebhookList:
    """Every registered webhook (without secrets)."""
    return service.list_all(session)


@router.get("/{webhook_id}", response_model=WebhookOut, summary="Get a webhook", responses=ERRORS)
def get(webhook_id: str, session: SessionDep) -> WebhookOut:
    """One webhook (without its secret)."""
    return service.get(session, webhook_id)


@router.delete("/{webhook_id}", status_code=204, summary="Delete a webhook", responses=ERRORS)
def delete(webhook_id: str, session: SessionDep) -> Response:
    """Stop calling it; deliveries not yet made are dropped."""
    service.remove(session, webhook_id)
    return Response(status_code=204)
