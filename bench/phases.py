"""Where a worker's time goes: one worker in this process drains a sweep (bench/scale's jobs: n 1,000,
3 epochs) after a warm one of the same size, with each phase's function wrapped in a timer, and
every SQL statement timed through SQLAlchemy's cursor events. Phases nest: `run_group` holds the
others but the claim, and `Group.run` the compiled epochs, the epoch writes and the metrics.

    python -m bench.phases [--jobs 5000] [--db sqlite,postgresql]
    python -m bench.phases --seed-table --db sqlite   # the seed's 99 jobs, once, compiles included

With --seed-table the sweep is bench/sweep's (n 100,000, 3/5/10 epochs), drained once by a worker
that has compiled nothing, as bench/sweep's API and engine runs are.
"""

from __future__ import annotations

import argparse
import collections
import functools
import tempfile
import time
import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine

import workers.engine.tensorflow as compiled
import workers.runner as runner
from app.main import create_app
from app.settings import Settings
from app.store import migrate, queue
from bench.common import seed_table as table
from bench.scale import PG, sweep_body
from bench.sweep import sweep_body as seed_sweep
from workers.engine import evaluation, factory
from workers.engine import group as groups

PHASES = [  # (owner, attribute, label)
    (queue, "claim", "claim"),
    (runner.Worker, "run_group", "run_group (all but the claim)"),
    (runner.Worker, "start_group", "start_group (data, start)"),
    (groups.Group, "__init__", "Group.__init__ (arrays, first row orders)"),
    (groups.Group, "run", "Group.run (epochs and their writes)"),
    (compiled.TensorFlowCompiled, "epoch", "compiled epochs"),
    (runner.Worker, "record_epoch", "epoch writes"),
    (evaluation.Evaluator, "epoch_rows", "validation loss and metrics after each epoch"),
    (evaluation.Evaluator, "final", "final metrics"),
    (groups, "save_artifact", "artifacts"),
    (runner.Worker, "finish", "successes"),
]


def timed(seconds: collections.Counter[str], label: str, fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[label] += time.perf_counter() - start

    return wrapper


def measure(url: str, jobs: int, seed_table: bool = False) -> None:
    migrate.upgrade(url)
    settings = Settings(database_url=url)
    phases: collections.Counter[str] = collections.Counter()
    statements: collections.Counter[str] = collections.Counter()
    for owner, name, label in PHASES:
        setattr(owner, name, timed(phases, label, getattr(owner, name)))

    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        conn.info["bench_t0"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        statements[" ".join(statement.split())[:80]] += time.perf_counter() - conn.info["bench_t0"]

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    try:
        with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
            worker = runner.Worker(settings)
            body = seed_sweep(table()) if seed_table else sweep_body(jobs)
            factory._CACHE.clear()  # nothing compiled by an earlier measure
            for _ in range(1 if seed_table else 2):  # the first sweep compiles and warms; the second is measured
                phases.clear()
                statements.clear()
                start = time.perf_counter()
                client.post("/v1/sweeps", json=body).raise_for_status()
                submitted = time.perf_counter() - start
                while True:
                    token, claimed = worker.claim()
                    if not claimed:
                        break
                    worker.run_group(token, claimed)
                total = time.perf_counter() - start
    finally:
        event.remove(Engine, "before_cursor_execute", before)
        event.remove(Engine, "after_cursor_execute", after)
        for owner, name, _ in PHASES:
            setattr(owner, name, getattr(owner, name).__wrapped__)
    print(f"{len(body['points']):,} jobs: submitted in {submitted:.2f} s, all done in {total:.2f} s")
    for label in sorted((label for *_, label in PHASES), key=lambda label: -phases[label]):
        print(f"  {phases[label]:6.2f} s  {label}")
    print("  statements (the slowest ten, in all):")
    for sql, seconds in statements.most_common(10):
        print(f"  {seconds:6.2f} s  {sql}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--pg", default=PG)
    ap.add_argument("--seed-table", action="store_true", help="bench/sweep's 99 jobs, once, compiles included")
    args = ap.parse_args()
    for db in args.db.split(","):
        print(db)
        if db == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                measure(f"sqlite:///{tmp}/phases.db", args.jobs, args.seed_table)
            continue
        name = f"bumpfit_phases_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            measure(args.pg.rsplit("/", 1)[0] + f"/{name}", args.jobs, args.seed_table)
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
