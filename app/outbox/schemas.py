"""Webhook registrations: what a client sends and gets back."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EventType = Literal["job.succeeded", "job.failed", "job.cancelled", "sweep.done"]
ALL_EVENTS: list[EventType] = ["job.succeeded", "job.failed", "job.cancelled", "sweep.done"]


class WebhookRequest(BaseModel):
    """A URL to call when the chosen events happen (all four by default)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"url": "https://ci.example.com/hooks/bumpfit", "events": ["job.succeeded"]}]},
    )

    url: str = Field(max_length=2048, description="http(s) URL, without user or password (the signature authenticates)")
    events: list[EventType] = Field(default_factory=lambda: list(ALL_EVENTS), min_length=1)
    description: str = Field("", max_length=256)


class WebhookOut(BaseModel):
    """A registered webhook."""

    id: str
    url: str
    events: list[EventType]
    description: str
    created_at: datetime


class WebhookCreated(WebhookOut):
    """A new webhook with its signing secret, shown this once: verify each delivery's
    `webhook-signature` with it (Standard Webhooks)."""

    secret: str = Field(description="whsec_<base64>: the Standard Webhooks signing secret")


class WebhookList(BaseModel):
    """Every registered webhook."""

    webhooks: list[WebhookOut]
