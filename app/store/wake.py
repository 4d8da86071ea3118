"""Waking idle workers when jobs are queued: NOTIFY on PostgreSQL, in-process wakers on SQLite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

CHANNEL = "bumpfit_jobs"  # PostgreSQL NOTIFY channel that wakes idle workers
WAKE = "bumpfit_wake"  # session.info flag: call the wakers once this transaction commits
_wakers: list[Callable[[], None]] = []


def is_postgres(session: Session) -> bool:
    """True when the session talks to PostgreSQL."""
    return session.get_bind().dialect.name == "postgresql"


def on_enqueue(waker: Callable[[], None]) -> None:
    """Call `waker` after each commit that queued jobs: how `bumpfit serve` wakes its own workers
    on SQLite, which has no NOTIFY (workers of other processes poll)."""
    _wakers.append(waker)


def notify(session: Session) -> None:
    """Wake idle workers once this transaction commits: NOTIFY on PostgreSQL, else the wakers."""
    if is_postgres(session):
        session.execute(text("SELECT pg_notify(:c, '')"), {"c": CHANNEL})
    else:
        session.info[WAKE] = True


@event.listens_for(Session, "after_commit")
def _wake(session: Session) -> None:
    if session.info.pop(WAKE, False):
        for waker in _wakers:
            waker()


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(WAKE, None)


def listen(url: str) -> Any:
    """A dedicated autocommit connection LISTENing on CHANNEL (PostgreSQL), or None (SQLite, or the
    database cannot be reached now)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        return None
    try:
        import psycopg

        dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = psycopg.connect(dsn, autocommit=True)
        conn.execute(f"LISTEN {CHANNEL}")
        return conn
    except Exception:  # noqa: BLE001 - the caller polls instead
        return None
