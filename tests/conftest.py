"""Shared fixtures: a real database (SQLite file or PostgreSQL), an API client, a running service."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.main import create_app
from app.settings import Settings
from app.store import migrate
from app.store.db import engine_for
from app.store.models import Base
from tests import postgres
from tests.service import ROOT, Service, answers, free_port, seed_job, wait_for

# What the tests share with the benches lives in tests/service.py; the tests import it from here too.
__all__ = ["ROOT", "Service", "answers", "free_port", "seed_job", "wait_for"]

# Tests build their settings explicitly: a user's BUMPFIT_* variables (API keys, a database URL) reach
# neither the in-process apps nor the services the tests start. These are the tests' own.
TESTS_OWN = ("BUMPFIT_TEST_PG", "BUMPFIT_DOCS_SCREENSHOTS", "BUMPFIT_DIST")
for _name in [n for n in os.environ if n.startswith("BUMPFIT_") and n not in TESTS_OWN]:
    del os.environ[_name]
# Starlette's TestClient sends `Host: testserver`, a name the keyless mode refuses (app/http/boundary.py): the
# in-process apps answer it too. The boundary's own tests set `allowed_hosts` explicitly.
os.environ["BUMPFIT_ALLOWED_HOSTS"] = "testserver"


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """An admin URL of the session's PostgreSQL: BUMPFIT_TEST_PG, else 127.0.0.1:5432, else a throwaway server."""
    url = postgres.configured()
    if url is not None:
        yield url
        return
    with postgres.throwaway() as pg:
        yield pg.url


@pytest.fixture(scope="session")
def pg_server_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    name = f"bumpfit_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)  # survives restarts
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    yield url
    engine_for(url).dispose()
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate(url: str) -> None:
    with engine_for(url).begin() as c:
        for table in reversed(Base.metadata.sorted_tables):
            c.execute(table.delete())


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated, empty database: every test using it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'bumpfit.db'}"
    else:
        url = request.getfixturevalue("pg_server_url")
    migrate.upgrade(url)
    _truncate(url)
    return url


@pytest.fixture
def settings(db_url: str) -> Settings:
    """Settings for a test app on `db_url`."""
    return Settings(database_url=db_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """An in-process API client (no workers)."""
    with TestClient(create_app(settings)) as c:
        yield c
