"""The outbox (one row per event), its deliveries (one per event and target) and registered webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.store.db import Base, utcnow


class Webhook(Base):
    """A URL that receives the events it subscribed to, signed with its secret."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(128))  # whsec_<base64>: needed in the clear to sign
    events: Mapped[list[Any]]
    description: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    owner: Mapped[str | None] = mapped_column(String(64))  # the caller that registered it (app.store.caps)


class OutboxEvent(Base):
    """An event, written in the transaction that changed the state it reports. Its id is the
    `webhook-id` every delivery of it carries, so receivers can drop a repeat."""

    __tablename__ = "outbox"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(32), index=True)  # the job or sweep id
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Delivery(Base):
    """One event to one target (`webhook:<id>` or `mlflow`): due at `next_attempt_at`, retried with
    backoff, `done` once the target took it, `dead` once a webhook's attempts ran out."""

    __tablename__ = "outbox_deliveries"
    __table_args__ = (Index("ix_outbox_deliveries_due", "status", "next_attempt_at"),)

    event_id: Mapped[str] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"), primary_key=True)
    target: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
