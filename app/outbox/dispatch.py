"""Delivering the outbox after commit: a thread of `bumpfit serve` claims due deliveries for a lease,
makes them (a signed webhook POST, or the MLflow export), and marks each done or due again later with
exponential backoff. Training never waits on it; several dispatchers never make the same delivery at
once (the lease), and a receiver drops a repeat after a crash by its `webhook-id`."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook as Signer

from app import __version__
from app.db import session_scope, utcnow
from app.outbox.events import MLFLOW
from app.outbox.models import Delivery, OutboxEvent, Webhook
from app.settings import Settings, public_url

log = logging.getLogger("bumpfit.outbox")
LEASE_SECONDS = 120.0  # a claimed delivery is due again after this if its dispatcher died
BATCH = 20  # deliveries claimed at a time
IDLE_SECONDS = 0.5  # wait between looks when nothing is due


class Retry(Exception):
    """The target could not take the event now; try again after the backoff."""


def backoff(settings: Settings, attempts: int) -> float:
    """Seconds before the next attempt after `attempts` failed ones: doubling, capped."""
    return float(min(settings.outbox_retry_seconds * 2 ** max(attempts - 1, 0), settings.outbox_retry_max_seconds))


def due(now: datetime) -> Select[str, str, datetime]:
    """The deliveries due at `now`."""
    return select(Delivery.event_id, Delivery.target, Delivery.next_attempt_at).where(
        Delivery.status == "pending", Delivery.next_attempt_at <= now
    )


def claim(session: Session, now: datetime) -> list[tuple[str, str]]:
    """Take up to BATCH due deliveries for a lease: [(event id, target)]."""
    taken = []
    for event_id, target, at in session.execute(due(now).order_by(Delivery.next_attempt_at).limit(BATCH)).all():
        stmt = (
            update(Delivery)
            .where(Delivery.event_id == event_id, Delivery.target == target, Delivery.status == "pending")
            .where(Delivery.next_attempt_at == at)
            .values(next_attempt_at=now + timedelta(seconds=LEASE_SECONDS), attempts=Delivery.attempts + 1)
        )
        if session.execute(stmt.execution_options(synchronize_session=False)).rowcount == 1:  # type: ignore[attr-defined]
            taken.append((event_id, target))
    return taken


def send_webhook(settings: Settings, hook: Webhook, event: OutboxEvent, http: httpx.Client) -> None:
    """POST the event, signed per Standard Webhooks; Retry unless the receiver answers 2xx."""
    body = json.dumps(event.payload, separators=(",", ":"))
    now = datetime.now(UTC)
    headers = {
        "webhook-id": event.id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Signer(hook.secret).sign(event.id, now, body),
        "content-type": "application/json",
        "user-agent": f"bumpfit/{__version__}",
    }
    try:
        r = http.post(hook.url, content=body, headers=headers, timeout=settings.webhook_timeout_seconds)
    except httpx.HTTPError as exc:  # its message can hold the URL: only the kind is kept
        raise Retry(type(exc).__name__) from None
    if not r.is_success:
        raise Retry(f"HTTP {r.status_code}")


class Dispatcher:
    """Makes due deliveries until stopped; `run_once` does one round (tests call it directly)."""

    def __init__(self, settings: Settings, mlflow: Callable[[str, OutboxEvent], None] | None = None) -> None:
        self.settings = settings
        self.url = settings.database_url
        self.stopping = threading.Event()
        self.http = httpx.Client(follow_redirects=False)
        # httpx logs each request's full URL at INFO; a webhook's query may hold the receiver's token.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        self.mlflow = mlflow
        if self.mlflow is None and settings.mlflow_tracking_uri:
            from app.outbox.mlflow import Exporter

            self.mlflow = Exporter(settings).deliver

    def deliver(self, event_id: str, target: str) -> tuple[str, str | None]:
        """Make one delivery: ("done" | "pending" | "dead", the error)."""
        with session_scope(self.url, readonly=True) as s:
            event = s.get(OutboxEvent, event_id)
            hook = s.get(Webhook, target.removeprefix("webhook:")) if target.startswith("webhook:") else None
            if event is not None:
                s.expunge(event)
            if hook is not None:
                s.expunge(hook)
        if event is None:
            return "dead", "the event was deleted"
        try:
            if target == MLFLOW:
                if self.mlflow is None:
                    return "pending", "MLflow is not configured here (BUMPFIT_MLFLOW_TRACKING_URI)"
                self.mlflow(self.url, event)
            elif hook is None:
                return "dead", "the webhook was deleted"
            else:
                send_webhook(self.settings, hook, event, self.http)
                log.info("delivered %s to %s", event.id, public_url(hook.url))
        except Retry as exc:
            return "pending", str(exc)
        except Exception as exc:  # noqa: BLE001 - a target's failure is retried, never the dispatcher's end
            log.warning("delivery of %s to %s failed: %s", event_id, target, type(exc).__name__, exc_info=True)
            return "pending", f"{type(exc).__name__}: {exc}"[:500]
        return "done", None

    def run_once(self) -> int:
        """Claim and make the due deliveries; how many were tried. Looks first in a read-only
        transaction: a round with nothing due takes no write lock (SQLite's is the workers')."""
        with session_scope(self.url, readonly=True) as s:
            if s.execute(due(utcnow()).limit(1)).first() is None:
                return 0
        with session_scope(self.url) as s:
            taken = claim(s, utcnow())
        for event_id, target in taken:
            status, error = self.deliver(event_id, target)
            with session_scope(self.url) as s:
                row = s.get(Delivery, (event_id, target))
                if row is None:
                    continue
                if status == "pending":
                    if target != MLFLOW and row.attempts >= self.settings.webhook_max_attempts:
                        status = "dead"
                    delay = backoff(self.settings, row.attempts)
                    row.next_attempt_at = utcnow() + timedelta(seconds=delay)
                    log.info("delivery of %s to %s: %s; next try in %.0fs", event_id, target, error, delay)
                row.status, row.last_error, row.updated_at = status, error, utcnow()
        return len(taken)

    def loop(self) -> None:
        """Deliver until `stop`; a database outage is waited out."""
        while not self.stopping.is_set():
            try:
                if self.run_once():
                    continue
            except Exception:  # noqa: BLE001 - the database is down or restarting: keep trying
                log.warning("outbox round failed", exc_info=True)
            self.stopping.wait(IDLE_SECONDS)

    def start(self) -> threading.Thread:
        """Run `loop` in a daemon thread."""
        thread = threading.Thread(target=self.loop, daemon=True, name="outbox")
        thread.start()
        return thread

    def stop(self) -> None:
        """Ask the loop to end after its current delivery."""
        self.stopping.set()
