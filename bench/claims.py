"""The queue past one machine, on one PostgreSQL: N queued jobs (default 10^6, inserted in one
statement), the claim statement's plan under EXPLAIN ANALYZE, then P worker processes claiming
batches and finishing them with no training, to measure claim throughput and contention.

    python -m bench.claims [--queued 1000000] [--procs 8] [--batch 512] [--seconds 20]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
import uuid

from sqlalchemy import create_engine, event, text

from app.store import migrate, queue
from app.store.db import engine_for, session_scope

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

INSERT = """
INSERT INTO jobs (id, seq, status, spec, fuse_key, device_request, model_name, attempts, max_attempts,
                  epochs, progress_epoch, cancel_requested, warnings, request_hash, created_at)
SELECT md5(g::text)::varchar(16), g, 'queued', '{"layer": {"type": "bump"}}', 'k' || (g % 4)::text, 'auto',
       md5(g::text)::varchar(16), 0, 3, 3, 0, false, '[]', md5(g::text), now()
FROM generate_series(1, :n) AS g
"""


def claimer(url: str, batch: int, seconds: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    """Claim and succeed batches until the time is up; report (claims, jobs, seconds in claim)."""
    claims = jobs = 0
    in_claim = 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.perf_counter()
        with session_scope(url) as s:
            token, got = queue.claim(s, f"bench:{uuid.uuid4().hex[:6]}", ("auto", "cpu"), batch, 60)
        in_claim += time.perf_counter() - start
        if not got:
            break
        with session_scope(url) as s:
            queue.succeed_many(s, token, {j.id: {"params": {}, "metrics": {}, "warnings": []} for j in got})
        claims, jobs = claims + 1, jobs + len(got)
    out.put((claims, jobs, in_claim))


def print_plan(url: str, batch: int, title: str) -> None:
    """EXPLAIN ANALYZE of the claim statement exactly as the queue sends it (rolled back)."""
    seen: list[tuple[str, object]] = []
    listen = lambda *a: seen.append((a[2], a[3])) if a[2].lstrip().upper().startswith("UPDATE") else None  # noqa: E731
    event.listen(engine_for(url), "before_cursor_execute", listen)
    with session_scope(url) as s:
        queue.claim(s, "bench:plan", ("auto", "cpu"), batch, 60)
        s.rollback()
    event.remove(engine_for(url), "before_cursor_execute", listen)
    with engine_for(url).connect() as c:
        sql, params = seen[0]
        plan = [r[0] for r in c.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)]  # type: ignore[arg-type]
        c.rollback()
    print(f"{title}:\n  " + "\n  ".join(plan))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queued", type=int, default=1_000_000)
    ap.add_argument("--procs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--pg", default=PG)
    args = ap.parse_args()
    name = f"bumpfit_claims_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = args.pg.rsplit("/", 1)[0] + f"/{name}"
    try:
        migrate.upgrade(url)
        engine = create_engine(url)
        start = time.perf_counter()
        with engine.begin() as c:
            c.execute(text(INSERT), {"n": args.queued})
            c.execute(text("ANALYZE jobs"))
        print(f"{args.queued:,} queued jobs (4 fuse keys) inserted in {time.perf_counter() - start:.1f} s")
        with engine.connect() as c:
            size = c.execute(text("SELECT pg_size_pretty(pg_total_relation_size('jobs'))")).scalar_one()
        print(f"jobs table with its indexes: {size}")
        print_plan(url, args.batch, "claim plan, the queue untouched")
        ctx = mp.get_context("spawn")  # fresh processes: no connection inherited from this one
        out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        procs = [ctx.Process(target=claimer, args=(url, args.batch, args.seconds, out)) for _ in range(args.procs)]
        start = time.perf_counter()
        for p in procs:
            p.start()
        results = [out.get() for _ in procs]
        for p in procs:
            p.join()
        wall = time.perf_counter() - start
        claims, jobs, in_claim = (sum(r[i] for r in results) for i in range(3))
        print(
            f"{args.procs} processes, batches of {args.batch}: {claims} claims, {jobs:,} jobs in {wall:.1f} s "
            f"({jobs / wall:,.0f} jobs/s); mean claim {1000 * in_claim / max(claims, 1):.1f} ms"
        )
        with engine.connect() as c:
            dup = c.execute(text("SELECT count(*) FROM jobs WHERE attempts > 1")).scalar_one()
        print(f"jobs claimed twice: {dup}")
        print_plan(url, args.batch, f"claim plan with {jobs:,} finished jobs before the queue's head")
        engine.dispose()
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
