"""Registering, listing and deleting webhooks. URLs are checked here (form, and the egress policy on
the host as written: its resolved addresses are checked at each delivery); the secret is made here."""

from __future__ import annotations

import base64
import secrets
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.outbox.egress import Policy, Refused
from app.outbox.models import Delivery, Webhook
from app.outbox.schemas import WebhookCreated, WebhookList, WebhookOut, WebhookRequest
from app.store.ids import new_id

PENDING = "pending"


def check_url(url: str, policy: Policy | None = None) -> str:
    """An http(s) URL with a host and no credentials or fragment, whose host `policy` does not refuse
    (public addresses only by default); InvalidInput naming the problem."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise InvalidInput.at("url", f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput.at("url", "must start with http:// or https://")
    if not parts.hostname:
        raise InvalidInput.at("url", "has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput.at("url", "must not hold a user or password; verify the signature instead")
    if parts.fragment:
        raise InvalidInput.at("url", "must not have a #fragment")
    try:
        (policy or Policy()).check_host(parts.hostname)
    except Refused as exc:
        raise InvalidInput.at(
            "url",
            f"must reach a public address: {exc} "
            "(BUMPFIT_WEBHOOK_ALLOW_PRIVATE or BUMPFIT_WEBHOOK_ALLOW_CIDRS let local receivers through)",
        ) from None
    return url


def _out(hook: Webhook) -> WebhookOut:
    return WebhookOut(
        id=hook.id, url=hook.url, events=hook.events, description=hook.description, created_at=hook.created_at
    )


def create(
    session: Session, req: WebhookRequest, policy: Policy | None = None, owner: str | None = None
) -> WebhookCreated:
    """Register a webhook with a fresh signing secret; its URL must pass `policy` (default: public only)."""
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    hook = Webhook(
        id=new_id(),
        url=check_url(req.url, policy),
        secret=secret,
        events=sorted(set(req.events)),
        description=req.description,
        owner=owner,
    )
    session.add(hook)
    session.flush()
    return WebhookCreated(**_out(hook).model_dump(), secret=secret)


def list_all(session: Session) -> WebhookList:
    """Every webhook, oldest first."""
    hooks = session.scalars(select(Webhook).order_by(Webhook.created_at, Webhook.id))
    return WebhookList(webhooks=[_out(h) for h in hooks])


def get(session: Session, webhook_id: str) -> WebhookOut:
    """One webhook, or 404."""
    hook = session.get(Webhook, webhook_id)
    if hook is None:
        raise NotFound(f"no webhook {webhook_id!r}")
    return _out(hook)


def remove(session: Session, webhook_id: str) -> None:
    """Delete a webhook and the deliveries it still had to receive."""
    get(session, webhook_id)
    session.execute(delete(Delivery).where(Delivery.target == f"webhook:{webhook_id}", Delivery.status == PENDING))
    session.execute(delete(Webhook).where(Webhook.id == webhook_id))
