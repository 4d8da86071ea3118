"""Engine, sessions and the declarative base shared by the API and the workers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
READONLY = "bumpfit_readonly"  # execution option: a transaction that will not write
SQLITE_BUSY_MS = 30_000  # writers wait this long for the single SQLite write lock
# FULL: every commit is on disk before it returns, so a 201 survives a power cut (NORMAL in WAL
# mode may lose the last commits); bench/durability.py prints what it costs.
SQLITE_SYNCHRONOUS = "FULL"
# libpq: give up connecting after 10 s, and on a connection whose peer went silent (a host cut off
# from the network) after 30 s, instead of the kernel's minutes: callers then retry or answer 503.
# The server's side of the same cut: a session left idle inside a transaction for 30 s (its client
# cut off between two statements) is ended, so the row locks it held (a fenced write's FOR UPDATE)
# do not block the other workers' reaper for the server's TCP keepalive (hours). Every bumpfit
# transaction is a short unit of work. JIT off: bumpfit runs short statements, and the server's JIT
# compiled the model-version query of each 512-job group for 31 ms of its 115 (EXPLAIN ANALYZE).
PG_CONNECT = {
    "connect_timeout": 10,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
    "options": "-c idle_in_transaction_session_timeout=30000 -c jit=off",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints stably."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime}


def utcnow() -> datetime:
    """Timezone-aware now, stored as UTC."""
    return datetime.now(UTC)


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and immediate write transactions."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args=PG_CONNECT)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_MS / 1000})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let the "begin" hook below issue BEGIN
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # Writers take the write lock up front: a deferred transaction that later writes can
        # fail with "database is locked" instead of waiting. Readers never block in WAL mode.
        readonly = conn.get_execution_options().get(READONLY, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


@lru_cache
def engine_for(url: str) -> Engine:
    """One engine per URL per process."""
    return make_engine(url)


@lru_cache
def session_factory(url: str, readonly: bool = False) -> sessionmaker[Session]:
    """The session factory bound to `url`'s engine; read-only sessions skip SQLite's write lock."""
    engine = engine_for(url)
    return sessionmaker(engine.execution_options(**{READONLY: True}) if readonly else engine, expire_on_commit=False)


@lru_cache
def write_lock(url: str) -> threading.Lock:
    """One lock per database URL for this process's SQLite writers."""
    return threading.Lock()


@contextmanager
def session_scope(url: str, readonly: bool = False) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on error."""
    session = session_factory(url, readonly)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
