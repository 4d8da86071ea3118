"""Delivering the outbox after commit: a thread of `bumpfit serve` claims due deliveries for a lease,
makes them (a signed webhook POST, or the MLflow export) in threads of their own, at most THREADS at
once and PER_HOST to one host, and marks each done, dead once its attempts ran out, or due again later
with exponential backoff. Training never waits on it, and a slow or hostile receiver delays no other
(each attempt has one deadline, and holds at most PER_HOST threads); several dispatchers never make
the same delivery at once (the lease), and a receiver drops a repeat after a crash by its `webhook-id`."""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook as Signer

from app import __version__
from app.ops.metrics import OUTBOX_DEAD
from app.outbox import transport
from app.outbox.egress import Policy, Refused
from app.outbox.events import MLFLOW
from app.outbox.models import Delivery, OutboxEvent, Webhook
from app.settings import Settings, public_url
from app.store.db import session_scope, utcnow

log = logging.getLogger("bumpfit.outbox")
LEASE_SECONDS = 120.0  # a claimed delivery is due again after this if its dispatcher died
BATCH = 20  # deliveries claimed at a time
IDLE_SECONDS = 0.5  # wait between looks when nothing is due
THREADS = 8  # deliveries made at once
PER_HOST = 2  # of them to one host: a slow receiver holds two threads at most, and delays nobody else
REPLY_BYTES = 64 * 1024  # of a receiver's reply read (raw, never decompressed); only its status counts


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


def host_limit(host: str) -> int:
    """Deliveries at once to `host`; MLflow's one at a time (each step looks first, then writes)."""
    return 1 if host == MLFLOW else PER_HOST


def hosts(session: Session) -> dict[str, str]:
    """Target -> the host its deliveries count against (MLflow's target is a host of its own)."""
    out = {MLFLOW: MLFLOW}
    for hook_id, url in session.execute(select(Webhook.id, Webhook.url)).tuples():
        out[f"webhook:{hook_id}"] = (urlsplit(url).hostname or "").rstrip(".")
    return out


def claim(session: Session, now: datetime, free: int, busy: dict[str, int]) -> list[tuple[str, str, str]]:
    """Take up to `free` due deliveries for a lease, in due order, keeping each host within its limit
    given `busy` (host -> deliveries in flight): a host at its limit is left out of the query, so its
    backlog cannot crowd out the others. [(event id, target, host)]."""
    where = hosts(session)
    room = {host: host_limit(host) - n for host, n in busy.items()}
    full = [target for target, host in where.items() if room.get(host, 1) <= 0]
    query = due(now).where(Delivery.target.not_in(full)) if full else due(now)
    taken: list[tuple[str, str, str]] = []
    for event_id, target, at in session.execute(query.order_by(Delivery.next_attempt_at).limit(BATCH)).all():
        host = where.get(target, target)
        if len(taken) == free:
            break
        if room.setdefault(host, host_limit(host)) <= 0:
            continue
        stmt = (
            update(Delivery)
            .where(Delivery.event_id == event_id, Delivery.target == target, Delivery.status == "pending")
            .where(Delivery.next_attempt_at == at)
            .values(next_attempt_at=now + timedelta(seconds=LEASE_SECONDS), attempts=Delivery.attempts + 1)
        )
        if session.execute(stmt.execution_options(synchronize_session=False)).rowcount == 1:  # type: ignore[attr-defined]
            taken.append((event_id, target, host))
            room[host] -= 1
    return taken


def send_webhook(settings: Settings, hook: Webhook, event: OutboxEvent, http: httpx.Client) -> None:
    """POST the event, signed per Standard Webhooks, within BUMPFIT_WEBHOOK_TIMEOUT_SECONDS all told,
    to an address the egress policy lets through; Retry unless the receiver answers 2xx."""
    body = json.dumps(event.payload, separators=(",", ":"))
    now = datetime.now(UTC)
    headers = {
        "webhook-id": event.id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Signer(hook.secret).sign(event.id, now, body),
        "content-type": "application/json",
        "user-agent": f"bumpfit/{__version__}",
    }
    seconds = settings.webhook_timeout_seconds
    try:
        reply = transport.fetch(
            http, "POST", hook.url, seconds=seconds, limit=REPLY_BYTES, content=body, headers=headers
        )
    except Refused as exc:
        raise Retry(f"refused: {exc}") from None
    except httpx.HTTPError as exc:  # its message can hold the URL: only the kind is kept
        raise Retry(type(exc).__name__) from None
    if not 200 <= reply.status < 300:
        raise Retry(f"HTTP {reply.status}")


class Dispatcher:
    """Makes due deliveries until stopped; `run_once` does one round (tests call it directly)."""

    def __init__(self, settings: Settings, mlflow: Callable[[str, OutboxEvent], None] | None = None) -> None:
        self.settings = settings
        self.url = settings.database_url
        self.stopping = threading.Event()
        self.http = transport.client(Policy.of(settings.webhook_allow_private, settings.webhook_allow_cidrs))
        self.lock = threading.Lock()
        self.busy: Counter[str] = Counter()  # host -> deliveries in flight
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

    def record(self, event_id: str, target: str, status: str, error: str | None) -> None:
        """Mark the delivery done, dead (its attempts ran out: counted in bumpfit_outbox_deliveries_dead), or
        due again after the backoff."""
        with session_scope(self.url) as s:
            row = s.get(Delivery, (event_id, target))
            if row is None:
                return
            if status == "pending":
                most = self.settings.mlflow_max_attempts if target == MLFLOW else self.settings.webhook_max_attempts
                if row.attempts >= most:
                    status = "dead"
                delay = backoff(self.settings, row.attempts)
                row.next_attempt_at = utcnow() + timedelta(seconds=delay)
                log.info("delivery of %s to %s: %s; next try in %.0fs", event_id, target, error, delay)
            row.status, row.last_error, row.updated_at = status, error, utcnow()
            attempts = row.attempts
        if status == "dead":
            OUTBOX_DEAD.labels(target="mlflow" if target == MLFLOW else "webhook").inc()
            log.warning("gave up delivering %s to %s after %d attempts: %s", event_id, target, attempts, error)

    def _run(self, event_id: str, target: str, host: str) -> None:
        try:
            self.record(event_id, target, *self.deliver(event_id, target))
        except Exception:  # noqa: BLE001 - the database is down: the lease makes it due again
            log.warning("recording the delivery of %s to %s failed", event_id, target, exc_info=True)
        finally:
            with self.lock:
                self.busy[host] -= 1
                if self.busy[host] <= 0:
                    del self.busy[host]

    def run_once(self, wait: bool = True) -> int:
        """Claim due deliveries and start each in a thread of its own; how many were started. With
        `wait`, returns once they are made (tests); the loop does not wait. Looks first in a read-only
        transaction: a round with nothing due takes no write lock (SQLite's is the workers')."""
        with self.lock:
            free = THREADS - sum(self.busy.values())
        if free <= 0:
            return 0
        with session_scope(self.url, readonly=True) as s:
            if s.execute(due(utcnow()).limit(1)).first() is None:
                return 0
        with self.lock:
            busy = dict(self.busy)
        with session_scope(self.url) as s:
            taken = claim(s, utcnow(), free, busy)
        threads = []
        for event_id, target, host in taken:
            with self.lock:
                self.busy[host] += 1
            thread = threading.Thread(target=self._run, args=(event_id, target, host), daemon=True, name="delivery")
            thread.start()
            threads.append(thread)
        for thread in threads if wait else ():
            thread.join()
        return len(taken)

    def loop(self) -> None:
        """Deliver until `stop`; a database outage is waited out."""
        while not self.stopping.is_set():
            try:
                if self.run_once(wait=False):
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
        """Ask the loop to end; deliveries in flight end by their deadline (or with the process: their
        lease makes them due again)."""
        self.stopping.set()
