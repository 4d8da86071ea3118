"""Idle-worker pickup latency: time from a job's creation to a worker claiming it, on PostgreSQL
(LISTEN/NOTIFY) and on SQLite (a wake-up pipe from `bumpfit serve`). Starts real `bumpfit serve` processes on loopback.

    python bench/pickup.py [--jobs 20] [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import datetime

from sqlalchemy import create_engine, text

from tests.service import Service, seed_job, wait_for


def measure(url: str, jobs: int) -> tuple[list[float], list[float]]:
    """Submit jobs one at a time to an idle worker: creation-to-claim latency of each, in ms; then
    the seed job (a shape the worker has compiled) five times, submission to finished, in ms."""
    svc = Service(url, workers=1)
    try:
        wait_for(lambda: len(svc.http.get("/v1/workers").json()["workers"]) >= 1, 120, "the worker")
        svc.wait_job(svc.http.post("/v1/jobs", json=seed_job(n=2000, epochs=1)).json()["id"])  # warm-up
        out = []
        for _ in range(jobs):
            time.sleep(0.5)  # let the worker go idle (waiting on NOTIFY or its poll)
            job = svc.wait_job(svc.http.post("/v1/jobs", json=seed_job(n=2000, epochs=1)).json()["id"])
            created, started = (datetime.fromisoformat(job[k]) for k in ("created_at", "started_at"))
            out.append((started - created).total_seconds() * 1000)
        seed = seed_job(n=100_000, epochs=3)
        svc.wait_job(svc.http.post("/v1/jobs", json=seed).json()["id"])  # the seed job's shape, compiled
        done = []
        for _ in range(5):
            time.sleep(0.5)
            start = time.time()
            job = svc.wait_job(svc.http.post("/v1/jobs", json=seed).json()["id"])
            done.append((datetime.fromisoformat(job["finished_at"]).timestamp() - start) * 1000)
        return out, done
    finally:
        svc.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    name = f"bumpfit_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for label, url in (
                ("PostgreSQL LISTEN/NOTIFY", args.pg.rsplit("/", 1)[0] + f"/{name}"),
                ("SQLite, woken by bumpfit serve", f"sqlite:///{tmp}/pickup.db"),
            ):
                latencies, done = measure(url, args.jobs)
                ms = sorted(latencies)
                p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
                print(
                    f"{label}: median {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, max {ms[-1]:.1f} ms "
                    f"over {len(ms)} jobs; the seed job (n 100000, 3 epochs) on a warm worker, submission to "
                    f"finished: median {statistics.median(done):.0f} ms, max {max(done):.0f} ms"
                )
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
