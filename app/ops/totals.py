"""Running totals of the jobs table for /metrics, kept by database triggers as rows change.

A scrape reads a few rows whatever the number of finished jobs: jobs by state, epochs recorded,
and the claim-to-finish durations of finished jobs as a histogram. Triggers (migration 0009) keep
them on every insert, update and delete of a job, whichever process writes it; each change is an
upsert, so a row that is missing (a test that emptied the table) is made again.
"""

from __future__ import annotations

FINISHED_STATES = ("succeeded", "failed", "cancelled")
BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 300, 1800)  # seconds; +Inf is the count
WATCHED = ("status", "progress_epoch", "started_at", "finished_at")  # the columns the totals read


def upsert(key: str, amount: str, guard: str = "true") -> str:
    """Add `amount` to the total `key` (SQL expressions) where `guard` holds."""
    return (
        f"INSERT INTO job_totals (key, value) SELECT {key}, {amount} WHERE {guard} "
        "ON CONFLICT (key) DO UPDATE SET value = job_totals.value + excluded.value;"
    )


def statements(event: str, seconds: dict[str, str]) -> list[str]:
    """A row trigger's statements for `event` (INSERT, UPDATE or DELETE): take the old row's share
    away, add the new row's. `seconds` gives each row's (NEW, OLD) duration in the dialect's SQL."""
    finished = ", ".join(f"'{s}'" for s in FINISHED_STATES)
    rows = {"UPDATE": [("OLD", "-"), ("NEW", "")], "DELETE": [("OLD", "-")], "INSERT": [("NEW", "")]}[event]
    out = []
    for row, sign in rows:
        out += [upsert(f"'jobs:' || {row}.status", f"{sign}1"), upsert("'epochs'", f"{sign}{row}.progress_epoch")]
        done = f"{row}.status IN ({finished}) AND {row}.started_at IS NOT NULL AND {row}.finished_at IS NOT NULL"
        d = seconds[row]
        out += [upsert("'duration:count'", f"{sign}1", done), upsert("'duration:sum'", f"{sign}({d})", done)]
        out += [upsert(f"'duration:le:{b}'", f"{sign}1", f"{done} AND ({d}) <= {b}") for b in BUCKETS]
    return out


def changed() -> str:
    """The WHEN condition of the update trigger: a watched column changed."""
    return " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in WATCHED)


def create_sqlite() -> list[str]:
    """The SQLite triggers."""
    seconds = {row: f"(julianday({row}.finished_at) - julianday({row}.started_at)) * 86400.0" for row in ("NEW", "OLD")}
    when = changed().replace("IS DISTINCT FROM", "IS NOT")
    out = []
    for event in ("INSERT", "UPDATE", "DELETE"):
        on = f"UPDATE OF {', '.join(WATCHED)}" if event == "UPDATE" else event
        cond = f" WHEN {when}" if event == "UPDATE" else ""
        body = "\n  ".join(statements(event, seconds))
        out.append(
            f"CREATE TRIGGER job_totals_{event.lower()} AFTER {on} ON jobs FOR EACH ROW{cond}\nBEGIN\n  {body}\nEND"
        )
    return out


def create_postgresql() -> list[str]:
    """The PostgreSQL trigger functions and triggers."""
    seconds = {row: f"EXTRACT(EPOCH FROM ({row}.finished_at - {row}.started_at))" for row in ("NEW", "OLD")}
    out = []
    for event in ("INSERT", "UPDATE", "DELETE"):
        name = f"job_totals_{event.lower()}"
        body = "\n  ".join(statements(event, seconds))
        out.append(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  {body}\n  RETURN NULL;\nEND\n$$"
        )
        on = f"UPDATE OF {', '.join(WATCHED)}" if event == "UPDATE" else event
        cond = f" WHEN ({changed()})" if event == "UPDATE" else ""
        out.append(f"CREATE TRIGGER {name} AFTER {on} ON jobs FOR EACH ROW{cond} EXECUTE FUNCTION {name}()")
    return out


def drop(postgresql: bool) -> list[str]:
    """Statements removing the triggers (and PostgreSQL's functions)."""
    out = []
    for event in ("insert", "update", "delete"):
        out.append(f"DROP TRIGGER IF EXISTS job_totals_{event}" + (" ON jobs" if postgresql else ""))
        if postgresql:
            out.append(f"DROP FUNCTION IF EXISTS job_totals_{event}()")
    return out


def recount(seconds: str) -> list[str]:
    """Statements that set the totals from the jobs as they are (the migration runs them once);
    `seconds` is a job's duration in the dialect's SQL over the row `jobs`."""
    finished = ", ".join(f"'{s}'" for s in FINISHED_STATES)
    done = f"status IN ({finished}) AND started_at IS NOT NULL AND finished_at IS NOT NULL"
    add = "INSERT INTO job_totals (key, value) "
    out = [
        "DELETE FROM job_totals",
        add + "SELECT 'jobs:' || status, COUNT(*) FROM jobs GROUP BY status",
        add + "SELECT 'epochs', COALESCE(SUM(progress_epoch), 0) FROM jobs",
        add + f"SELECT 'duration:count', COUNT(*) FROM jobs WHERE {done}",
        add + f"SELECT 'duration:sum', COALESCE(SUM({seconds}), 0) FROM jobs WHERE {done}",
    ]
    out += [add + f"SELECT 'duration:le:{b}', COUNT(*) FROM jobs WHERE {done} AND ({seconds}) <= {b}" for b in BUCKETS]
    return out


SQLITE_SECONDS = "(julianday(jobs.finished_at) - julianday(jobs.started_at)) * 86400.0"
POSTGRESQL_SECONDS = "EXTRACT(EPOCH FROM (jobs.finished_at - jobs.started_at))"
