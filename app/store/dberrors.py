"""Telling database errors apart: an outage (wait and retry) from a schema that is not there (a
missing table or column: the migrations did not run, or failed), which no retry will mend."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, ProgrammingError

# SQLSTATEs of PostgreSQL for a table or column that does not exist.
PG_MISSING = {"42P01", "42703"}
# SQLite says so in its OperationalError's text.
SQLITE_MISSING = ("no such table", "no such column", "has no column named")
MIGRATE_HINT = "the database schema is not at this release's migration: back it up, run `bumpfit migrate`, restart"


def schema_missing(exc: BaseException) -> bool:
    """True when `exc` says a table or column is missing: the database is not migrated."""
    if not isinstance(exc, (OperationalError, ProgrammingError)):
        return False
    if getattr(exc.orig, "sqlstate", None) in PG_MISSING:
        return True
    return any(text in str(exc.orig) for text in SQLITE_MISSING)


def transient(exc: BaseException) -> bool:
    """True when `exc` means the database is away or busy for now (down, restarting, unreachable,
    a connection cut, a lock or serialization conflict): worth retrying, never a job's fault."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (OperationalError, InterfaceError)) and not schema_missing(exc)


def summary(exc: BaseException) -> str:
    """A one-line description for logs: the DBAPI error's class and first line, never the SQL."""
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    return f"{type(orig).__name__}: {first}"[:300]
