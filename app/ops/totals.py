"""Running totals of the jobs table for /metrics, kept by database triggers as rows change.

A scrape reads a few rows whatever the number of finished jobs: jobs by state, epochs recorded,
and the claim-to-finish durations of finished jobs as a histogram. Triggers (migration 0009) keep
them on every insert, update and delete of a job, whichever process writes it; each change is an
upsert, so a row that is missing (a test that emptied the table) is made again.
"""

from __future__ import annotations

FINISHED_STATES = ("succeeded", "failed", "cancelled")
BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 300, 1800)  # seconds; +Inf is the count


def upsert(key: str, amount: str, guard: str = "true") -> str:
    """Add `amount` to the total `key` (SQL expressions) where `guard` holds."""
    return (
        f"INSERT INTO job_totals (key, value) SELECT {key}, {amount} WHERE {guard} "
        "ON CONFLICT (key) DO UPDATE SET value = job_totals.value + excluded.value;"
    )


def statements(rows: list[tuple[str, str]], seconds: dict[str, str], postgresql: bool) -> list[str]:
    """A row trigger's statements for the state and duration totals: each (row, sign) in `rows`
    takes its share away (sign "-", OLD) or adds it ("", NEW). `seconds` gives each row's
    duration in the dialect's SQL; PostgreSQL skips the duration statements with an IF."""
    finished = ", ".join(f"'{s}'" for s in FINISHED_STATES)
    out = []
    for row, sign in rows:
        out.append(upsert(f"'jobs:' || {row}.status", f"{sign}1"))
        done = f"{row}.status IN ({finished}) AND {row}.started_at IS NOT NULL AND {row}.finished_at IS NOT NULL"
        d = seconds[row]
        guard = "true" if postgresql else done
        durations = [upsert("'duration:count'", f"{sign}1", guard), upsert("'duration:sum'", f"{sign}({d})", guard)]
        durations += [upsert(f"'duration:le:{b}'", f"{sign}1", f"{guard} AND ({d}) <= {b}") for b in BUCKETS]
        out += [f"IF {done} THEN", *durations, "END IF;"] if postgresql else durations
    return out


EPOCHS = {  # the epochs total, per event
    "INSERT": upsert("'epochs'", "NEW.progress_epoch"),
    "DELETE": upsert("'epochs'", "-OLD.progress_epoch"),
    "EPOCHS": upsert("'epochs'", "NEW.progress_epoch - OLD.progress_epoch"),
}
STATE_COLUMNS = ("status", "started_at", "finished_at")


def triggers(seconds: dict[str, str], postgresql: bool) -> list[tuple[str, str, str, list[str]]]:
    """(name, event clause, WHEN condition, statements) of each trigger: inserts and deletes; a
    change of state or times; a change of epoch (every epoch of every job: one statement)."""
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in STATE_COLUMNS)
    return [
        ("job_totals_insert", "INSERT", "", [*statements([("NEW", "")], seconds, postgresql), EPOCHS["INSERT"]]),
        ("job_totals_delete", "DELETE", "", [*statements([("OLD", "-")], seconds, postgresql), EPOCHS["DELETE"]]),
        (
            "job_totals_state",
            f"UPDATE OF {', '.join(STATE_COLUMNS)}",
            changed,
            statements([("OLD", "-"), ("NEW", "")], seconds, postgresql),
        ),
        (
            "job_totals_epochs",
            "UPDATE OF progress_epoch",
            "OLD.progress_epoch IS DISTINCT FROM NEW.progress_epoch",
            [EPOCHS["EPOCHS"]],
        ),
    ]


def create_sqlite() -> list[str]:
    """The SQLite triggers."""
    seconds = {row: f"(julianday({row}.finished_at) - julianday({row}.started_at)) * 86400.0" for row in ("NEW", "OLD")}
    out = []
    for name, on, when, body in triggers(seconds, postgresql=False):
        cond = f" WHEN {when.replace('IS DISTINCT FROM', 'IS NOT')}" if when else ""
        text = "\n  ".join(body)
        out.append(f"CREATE TRIGGER {name} AFTER {on} ON jobs FOR EACH ROW{cond}\nBEGIN\n  {text}\nEND")
    return out


def create_postgresql() -> list[str]:
    """The PostgreSQL trigger functions and triggers."""
    seconds = {row: f"EXTRACT(EPOCH FROM ({row}.finished_at - {row}.started_at))" for row in ("NEW", "OLD")}
    out = []
    for name, on, when, body in triggers(seconds, postgresql=True):
        text = "\n  ".join(body)
        out.append(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  {text}\n  RETURN NULL;\nEND\n$$"
        )
        cond = f" WHEN ({when})" if when else ""
        out.append(f"CREATE TRIGGER {name} AFTER {on} ON jobs FOR EACH ROW{cond} EXECUTE FUNCTION {name}()")
    return out


def drop(postgresql: bool) -> list[str]:
    """Statements removing the triggers (and PostgreSQL's functions)."""
    out = []
    for part in ("insert", "delete", "state", "epochs"):
        out.append(f"DROP TRIGGER IF EXISTS job_totals_{part}" + (" ON jobs" if postgresql else ""))
        if postgresql:
            out.append(f"DROP FUNCTION IF EXISTS job_totals_{part}()")
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
