"""The tests' own PostgreSQL: which server the session uses, and a throwaway one that starts and is removed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests import postgres
from tests.service import wait_for


def test_bumpfit_test_pg_chooses_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUMPFIT_TEST_PG", "postgresql+psycopg://me@db.example:6543/mine")
    assert postgres.configured() == "postgresql+psycopg://me@db.example:6543/mine"
    monkeypatch.setenv("BUMPFIT_TEST_PG", postgres.EMBEDDED)
    assert postgres.configured() is None  # a throwaway server, even where one answers on 5432


def test_a_throwaway_server_serves_and_is_removed_at_the_end() -> None:
    with postgres.throwaway() as pg:
        engine = create_engine(pg.url)
        with engine.connect() as c:
            assert c.execute(text("SELECT current_setting('server_version_num')::int")).scalar_one() >= 160000
        engine.dispose()
        pid = pg.server.get_pid()
        assert alive(pid) and pg.tmp.is_dir()
    assert not pg.tmp.exists()
    wait_for(lambda: not alive(pid), 10, "the server's process to exit")  # it exits just after its pid file goes


def alive(pid: int) -> bool:
    """True while a process `pid` runs. One that has exited but is not reaped yet (a zombie: in a
    container whose first process does not reap orphans, the daemonized server stays one) is not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
