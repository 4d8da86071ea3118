"""Running totals of the jobs table for /metrics, kept by database triggers as rows change.

A scrape reads a few rows whatever the number of finished jobs. The keys: `jobs:<status>` (jobs by
state), `epochs` (epochs recorded), `duration:sum`, and `duration:bucket:<le>` (finished jobs whose
claim-to-finish time falls in that bucket, not cumulative, so a job's end changes one key; /metrics
adds them up). Triggers (migrations 0009 and 0011) keep them on every insert, update and delete of
a job, whichever process writes it; each change is an upsert, so a missing row (a test that emptied
the table) is made again, and a missing key reads as 0.

- PostgreSQL: statement triggers with transition tables, one upsert of the summed changes per
  statement whatever its rows. Row triggers updating the same few rows once per job in one
  transaction cost more than the statement that fired them (each update of a row adds a version
  that the next one walks past).
- SQLite has only row triggers: two upserts for a job that changes state, two more when it ends.
"""

from __future__ import annotations

from app.jobs.models import FINISHED

BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 300, 1800)  # seconds; the +Inf bucket holds the rest
SECONDS = {  # a job's claim-to-finish time, over a row `{row}` (empty: unqualified columns)
    "postgresql": "EXTRACT(EPOCH FROM ({row}finished_at - {row}started_at))",
    "sqlite": "(julianday({row}finished_at) - julianday({row}started_at)) * 86400.0",
}


def _done(row: str = "") -> str:
    """SQL: the job in `row` (a prefix such as `NEW.`) has finished, with both of its times."""
    finished = ", ".join(f"'{s.value}'" for s in FINISHED)
    return f"{row}status IN ({finished}) AND {row}started_at IS NOT NULL AND {row}finished_at IS NOT NULL"


def _bucket(seconds: str) -> str:
    """SQL: the `duration:bucket:<le>` key of a duration."""
    whens = " ".join(f"WHEN {seconds} <= {b} THEN '{b}'" for b in BUCKETS)
    return f"'duration:bucket:' || CASE {whens} ELSE '+Inf' END"


def contributions(relation: str, dialect: str, sign: str = "") -> str:
    """SQL rows (key, amount): what the jobs in `relation` add to the totals (`sign` "-": take away)."""
    seconds = SECONDS[dialect].format(row="")
    return " UNION ALL ".join(
        [
            f"SELECT 'jobs:' || status AS key, {sign}COUNT(*) AS amount FROM {relation} GROUP BY status",
            f"SELECT 'epochs', {sign}SUM(progress_epoch) FROM {relation}",
            f"SELECT 'duration:sum', {sign}SUM({seconds}) FROM {relation} WHERE {_done()}",
            f"SELECT {_bucket(seconds)}, {sign}COUNT(*) FROM {relation} WHERE {_done()} GROUP BY 1",
        ]
    )


def add(rows: str) -> str:
    """Add the (key, amount) `rows` to the totals: one upsert, keys in order (two writers lock them
    in the same order), no-op changes left out."""
    return (
        f"INSERT INTO job_totals (key, value) SELECT key, SUM(amount) FROM ({rows}) AS c WHERE true "
        "GROUP BY key HAVING SUM(amount) <> 0 ORDER BY key "
        "ON CONFLICT (key) DO UPDATE SET value = job_totals.value + excluded.value"
    )


def upsert(key: str, amount: str, guard: str = "true") -> str:
    """Add `amount` to the total `key` (SQL expressions) where `guard` holds (a row trigger's step)."""
    return (
        f"INSERT INTO job_totals (key, value) SELECT {key}, {amount} WHERE {guard} "
        "ON CONFLICT (key) DO UPDATE SET value = job_totals.value + excluded.value;"
    )


def _state(row: str, sign: str) -> str:
    """A SQLite row trigger's step for the job in `row` (NEW or OLD) entering (sign "") or leaving
    ("-") its state's total."""
    return upsert(f"'jobs:' || {row}.status", f"{sign}1")


def _duration(row: str, sign: str) -> list[str]:
    """The same for the duration totals, where the job in `row` has finished."""
    seconds = SECONDS["sqlite"].format(row=f"{row}.")
    done = _done(f"{row}.")
    return [upsert("'duration:sum'", f"{sign}({seconds})", done), upsert(_bucket(seconds), f"{sign}1", done)]


def create_sqlite() -> list[str]:
    """The SQLite row triggers: inserts, deletes, a change of state or times (its durations only
    where the job had finished or has now: a claim does not evaluate them), a change of epoch."""
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in ("status", "started_at", "finished_at"))
    times = "UPDATE OF status, started_at, finished_at"
    triggers = [
        (
            "job_totals_insert",
            "INSERT",
            "",
            [_state("NEW", ""), *_duration("NEW", ""), upsert("'epochs'", "NEW.progress_epoch")],
        ),
        (
            "job_totals_delete",
            "DELETE",
            "",
            [_state("OLD", "-"), *_duration("OLD", "-"), upsert("'epochs'", "-OLD.progress_epoch")],
        ),
        ("job_totals_state", times, "OLD.status IS NOT NEW.status", [_state("OLD", "-"), _state("NEW", "")]),
        (
            "job_totals_durations",
            times,
            f"({changed}) AND (({_done('OLD.')}) OR ({_done('NEW.')}))",
            [*_duration("OLD", "-"), *_duration("NEW", "")],
        ),
        (
            "job_totals_epochs",
            "UPDATE OF progress_epoch",
            "OLD.progress_epoch IS NOT NEW.progress_epoch",
            [upsert("'epochs'", "NEW.progress_epoch - OLD.progress_epoch")],
        ),
    ]
    out = []
    for name, on, when, body in triggers:
        cond = f" WHEN {when}" if when else ""
        steps = "\n  ".join(body)
        out.append(f"CREATE TRIGGER {name} AFTER {on} ON jobs FOR EACH ROW{cond}\nBEGIN\n  {steps}\nEND")
    return out


def create_postgresql() -> list[str]:
    """The PostgreSQL trigger functions and statement triggers."""
    new, old = contributions("new_rows", "postgresql"), contributions("old_rows", "postgresql", "-")
    out = []
    for event, tables, rows in (
        ("insert", "NEW TABLE AS new_rows", new),
        ("delete", "OLD TABLE AS old_rows", old),
        ("update", "OLD TABLE AS old_rows NEW TABLE AS new_rows", f"{new} UNION ALL {old}"),
    ):
        name = f"job_totals_{event}"
        out.append(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  {add(rows)};\n"
            "  RETURN NULL;\nEND\n$$"
        )
        out.append(
            f"CREATE TRIGGER {name} AFTER {event.upper()} ON jobs REFERENCING {tables} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )
    return out


def create(postgresql: bool) -> list[str]:
    """The triggers for the dialect."""
    return create_postgresql() if postgresql else create_sqlite()


def drop(postgresql: bool) -> list[str]:
    """Statements removing the triggers (and PostgreSQL's functions), of this form and of 0009's first."""
    out = []
    for part in ("insert", "delete", "update", "state", "durations", "epochs"):
        out.append(f"DROP TRIGGER IF EXISTS job_totals_{part}" + (" ON jobs" if postgresql else ""))
        if postgresql:
            out.append(f"DROP FUNCTION IF EXISTS job_totals_{part}()")
    return out


def recount(postgresql: bool) -> list[str]:
    """Statements that set the totals from the jobs as they are (the migrations run them)."""
    return ["DELETE FROM job_totals", add(contributions("jobs", "postgresql" if postgresql else "sqlite"))]
