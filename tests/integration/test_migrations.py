"""Alembic migrations produce exactly the models' schema, on SQLite and PostgreSQL, and go back down."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from app import migrate
from app.db import engine_for
from app.models import Base


def diff(url: str) -> list:
    with engine_for(url).connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)


def test_head_matches_models_and_downgrade_works(db_url: str) -> None:
    assert migrate.current(db_url) == migrate.head()
    assert diff(db_url) == []
    migrate.downgrade(db_url, "base")
    tables = set(inspect(engine_for(db_url)).get_table_names()) - {"alembic_version"}
    assert tables == set()
    assert migrate.current(db_url) is None
    migrate.upgrade(db_url)
    assert set(inspect(engine_for(db_url)).get_table_names()) >= set(Base.metadata.tables)
    assert diff(db_url) == []


def test_0005_marks_the_inline_data_stored_before_it(db_url: str) -> None:
    migrate.downgrade(db_url, "0004")
    with engine_for(db_url).begin() as conn:
        for i, name in enumerate(("inline data", "inline data of a sweep", "measurements.csv")):
            conn.execute(
                text(
                    "INSERT INTO datasets (id, filename, n, features, sha256, data, created_at) "
                    "VALUES (:id, :name, 1, 1, '', :data, CURRENT_TIMESTAMP)"
                ),
                {"id": f"d{i}", "name": name, "data": b""},
            )
    migrate.upgrade(db_url)
    with engine_for(db_url).connect() as conn:
        rows = dict(conn.execute(text("SELECT filename, inline FROM datasets")).tuples().all())
    assert rows == {"inline data": True, "inline data of a sweep": True, "measurements.csv": False}
