"""Alembic migrations produce exactly the models' schema, on SQLite and PostgreSQL, and go back down."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from app.model.data import to_npz
from app.store import migrate
from app.store.db import engine_for
from app.store.models import Base


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


def insert_datasets(url: str, rows: dict[str, tuple[str, bool]]) -> None:
    """Dataset rows {id: (filename, stored as inline data)}: inline data is stored with the hash of
    its bytes; an upload with the hash of the file sent (re-encoded before it is stored)."""
    with engine_for(url).begin() as conn:
        for dataset_id, (name, inline) in rows.items():
            data = to_npz(np.zeros((1, 1), np.float32), np.zeros(1, np.float32))
            sha = hashlib.sha256(data if inline else b"the file " + data).hexdigest()
            conn.execute(
                text(
                    "INSERT INTO datasets (id, filename, n, features, sha256, data, created_at) "
                    "VALUES (:id, :name, 1, 1, :sha, :data, CURRENT_TIMESTAMP)"
                ),
                {"id": dataset_id, "name": name, "sha": sha, "data": data},
            )


def inline_flags(url: str) -> dict[str, bool]:
    """{dataset id: inline}."""
    with engine_for(url).connect() as conn:
        return {k: bool(v) for k, v in conn.execute(text("SELECT id, inline FROM datasets")).tuples()}


def test_0005_marks_the_inline_data_stored_before_it_and_not_an_upload_named_so(db_url: str) -> None:
    migrate.downgrade(db_url, "0004")
    insert_datasets(
        db_url,
        {
            "d0": ("inline data", True),
            "d1": ("inline data of a sweep", True),
            "d2": ("measurements.csv", False),
            "d3": ("inline data", False),  # an upload whose user named it so
        },
    )
    migrate.upgrade(db_url)
    assert inline_flags(db_url) == {"d0": True, "d1": True, "d2": False, "d3": False}


def test_0007_unmarks_an_upload_that_the_first_form_of_0005_marked_by_its_name(db_url: str) -> None:
    migrate.downgrade(db_url, "0005")
    insert_datasets(db_url, {"d0": ("inline data", True), "d3": ("inline data", False)})
    with engine_for(db_url).begin() as conn:  # what 0005 did before: marked both by their name
        conn.execute(text("UPDATE datasets SET inline = true"))
    migrate.upgrade(db_url)
    assert inline_flags(db_url) == {"d0": True, "d3": False}


def test_0011_recounts_totals_0009_kept_in_its_first_form(db_url: str) -> None:
    from tests.integration.test_queue import kept_totals, recounted

    migrate.downgrade(db_url, "0010")
    pg = db_url.startswith("postgresql")
    with engine_for(db_url).begin() as conn:  # 0009's first form: cumulative keys, and a trigger that keeps them
        conn.execute(text("INSERT INTO job_totals (key, value) VALUES ('duration:le:1', 7), ('duration:count', 9)"))
        stale = "INSERT INTO job_totals (key, value) VALUES ('duration:count', 1) ON CONFLICT (key) DO NOTHING"
        if pg:
            body = f"BEGIN {stale}; RETURN NULL; END"
            conn.execute(text(f"CREATE FUNCTION job_totals_state() RETURNS trigger LANGUAGE plpgsql AS $$ {body} $$"))
            each_row = "FOR EACH ROW EXECUTE FUNCTION job_totals_state()"
            conn.execute(text(f"CREATE TRIGGER job_totals_state AFTER UPDATE ON jobs {each_row}"))
        else:
            conn.execute(text("DROP TRIGGER job_totals_state"))
            conn.execute(text(f"CREATE TRIGGER job_totals_state AFTER UPDATE ON jobs BEGIN {stale}; END"))
        columns = (
            "id, status, spec, request_hash, fuse_key, device_request, model_name, epochs, progress_epoch, "
            "warnings, attempts, max_attempts, cancel_requested, created_at, started_at, finished_at"
        )
        now = "CURRENT_TIMESTAMP"
        values = f"'j1', 'succeeded', '{{}}', 'h', 'f', 'auto', 'm', 3, 3, '[]', 1, 3, false, {now}, {now}, {now}"
        conn.execute(text(f"INSERT INTO jobs ({columns}) VALUES ({values})"))
    migrate.upgrade(db_url)
    assert kept_totals(db_url) == recounted(db_url)
    assert set(kept_totals(db_url)) == {"jobs:succeeded", "epochs", "duration:bucket:0.5"}
    if pg:
        query = "SELECT tgname FROM pg_trigger WHERE tgrelid = 'jobs'::regclass AND tgname LIKE 'job_totals%'"
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'job_totals%'"
    with engine_for(db_url).connect() as conn:
        names = set(conn.execute(text(query)).scalars())
    assert names == (
        {"job_totals_insert", "job_totals_delete", "job_totals_update"}
        if pg
        else {"job_totals_insert", "job_totals_delete", "job_totals_state", "job_totals_durations", "job_totals_epochs"}
    )


def test_0012_leaves_room_on_jobs_pages_for_heap_only_updates(db_url: str) -> None:
    # an epoch's progress update of a running job then writes no index entries on PostgreSQL
    def options() -> list[str]:
        with engine_for(db_url).connect() as conn:
            return list(conn.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'jobs'")).scalar_one() or [])

    if not db_url.startswith("postgresql"):
        pytest.skip("a fillfactor is PostgreSQL's")
    assert options() == ["fillfactor=70"]
    migrate.downgrade(db_url, "0011")
    assert options() == []
    migrate.upgrade(db_url)
    assert options() == ["fillfactor=70"]
