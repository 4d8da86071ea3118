"""FastAPI dependencies: settings and a per-request database session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.settings import Settings
from app.store.db import session_scope, write_lock


def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return request.app.state.settings  # type: ignore[no-any-return]


def _session(request: Request, readonly: bool) -> Iterator[Session]:
    url = request.app.state.settings.database_url
    # SQLite has one writer at a time: queue this process's writers on a lock instead of letting
    # them spin in SQLite's busy handler, whose sleeps made the slowest submissions take a second.
    lock = write_lock(url) if not readonly and url.startswith("sqlite") else nullcontext()
    with lock, session_scope(url, readonly) as session:
        yield session


def get_session(request: Request) -> Iterator[Session]:
    """A session per request: committed if the handler returns, rolled back if it raises.
    GET and HEAD requests get a read-only session, which never waits for SQLite's write lock."""
    yield from _session(request, request.method in ("GET", "HEAD"))


def get_read_session(request: Request) -> Iterator[Session]:
    """A read-only session for a POST that writes nothing (predictions)."""
    yield from _session(request, True)


def get_write_session(request: Request) -> Iterator[Session]:
    """A writable session for a GET that may record something (asking for a model export)."""
    yield from _session(request, False)


# scope="function": commit before the response is sent, so a client that reads right after a 201
# finds what it created, and a failed commit is an error response rather than a lost write.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]
WriteSessionDep = Annotated[Session, Depends(get_write_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
