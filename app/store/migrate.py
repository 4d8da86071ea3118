"""Alembic, driven from code: `bumpfit serve` and `/readyz` use it."""

from __future__ import annotations

import time
from functools import lru_cache
from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import OperationalError

from app.store.db import engine_for

# The repository keeps the scripts in alembic/ at its root; app/migrations links to it, so the wheel
# carries them as package data and an editable checkout finds them in place.
SCRIPTS = files("app") / "migrations"
WAIT_STEP_SECONDS = 1.0  # between tries while the database does not accept connections yet


def config(url: str) -> Config:
    """An Alembic config for `url` with this project's scripts."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database to `revision` (latest by default)."""
    command.upgrade(config(url), revision)


def wait_for_database(url: str, seconds: float) -> None:
    """Return once the database accepts a connection; raise the last error after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with engine_for(url).connect():
                return
        except OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(WAIT_STEP_SECONDS)


def downgrade(url: str, revision: str) -> None:
    """Take the database back to `revision` ("base" drops everything)."""
    command.downgrade(config(url), revision)


@lru_cache
def head() -> str | None:
    """The newest migration in the scripts."""
    return ScriptDirectory.from_config(config("sqlite://")).get_current_head()


def current(url: str) -> str | None:
    """The migration the database is at (None before the first)."""
    with engine_for(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
