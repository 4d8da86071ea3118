"""HTTP routes for webhooks: register and delete (an admin key when keys are on), list and get (below
admin, URLs without their query string)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.http.auth import Caller
from app.http.deps import SessionDep, SettingsDep
from app.http.quota import CallerDep
from app.http.responses import ERRORS
from app.outbox import service
from app.outbox.egress import Policy
from app.outbox.schemas import WebhookCreated, WebhookList, WebhookOut, WebhookRequest
from app.store.caps import check_webhooks

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.post("", response_model=WebhookCreated, status_code=201, summary="Register a webhook", responses=ERRORS)
def create(req: WebhookRequest, session: SessionDep, settings: SettingsDep, caller: CallerDep) -> WebhookCreated:
    """Call `url` when the chosen events happen: a POST of `{"type", "timestamp", "data"}` signed per
    Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`), retried with backoff
    until it answers 2xx. `url` must reach a public address (loopback, private, link-local and other
    local addresses are 422 unless the service allows them). The secret is returned only here."""
    policy = Policy.of(settings.webhook_allow_private, settings.webhook_allow_cidrs)
    check_webhooks(session, caller, settings.max_webhooks)
    return service.create(session, req, policy, owner=caller.id)


def shown(hook: WebhookOut, caller: Caller) -> WebhookOut:
    """The webhook as `caller` may see it: below `admin`, its URL without the query string, which may
    hold the receiver's token."""
    return hook if caller.allows("admin") else hook.model_copy(update={"url": hook.url.split("?", 1)[0]})


@router.get("", response_model=WebhookList, summary="List webhooks")
def list_webhooks(session: SessionDep, caller: CallerDep) -> WebhookList:
    """Every registered webhook (without secrets; below `admin`, URLs without their query string)."""
    return WebhookList(webhooks=[shown(h, caller) for h in service.list_all(session).webhooks])


@router.get("/{webhook_id}", response_model=WebhookOut, summary="Get a webhook", responses=ERRORS)
def get(webhook_id: str, session: SessionDep, caller: CallerDep) -> WebhookOut:
    """One webhook (without its secret; below `admin`, its URL without the query string)."""
    return shown(service.get(session, webhook_id), caller)


@router.delete("/{webhook_id}", status_code=204, summary="Delete a webhook", responses=ERRORS)
def delete(webhook_id: str, session: SessionDep) -> Response:
    """Stop calling it; deliveries not yet made are dropped."""
    service.remove(session, webhook_id)
    return Response(status_code=204)
