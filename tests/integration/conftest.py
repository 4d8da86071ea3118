"""Fixtures of the integration tests: a module's own SQLite database and in-process client."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.store import migrate


@pytest.fixture(scope="module")
def db() -> str:
    url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'hostile.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="module")
def api(db: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=db))) as c:
        yield c
