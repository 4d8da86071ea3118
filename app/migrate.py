"""Alembic, driven from code: `bumpfit serve` and `/readyz` use it."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from app.db import engine_for

SCRIPTS = Path(__file__).resolve().parent.parent / "alembic"


def config(url: str) -> Config:
    """An Alembic config for `url` with this project's scripts."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database to `revision` (latest by default)."""
    command.upgrade(config(url), revision)


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
