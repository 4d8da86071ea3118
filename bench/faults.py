"""The long fault run: many jobs on PostgreSQL with 3 workers while random workers are killed with
SIGKILL at random points (`bumpfit serve` respawns them); then every job must have ended succeeded
with exactly one result. Loopback only; bounded in jobs, kills and time.

    python bench/faults.py [--jobs 60] [--kills 12] [--workers 3]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import time
import uuid

from sqlalchemy import create_engine, func, select, text

from app.jobs.models import HistoryRow, Job
from app.store.db import session_scope
from tests.service import Service, seed_job

DEADLINE_S = 900  # the whole run gives up after this long


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=60)
    ap.add_argument("--kills", type=int, default=12)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    rng = random.Random(7)
    name = f"bumpfit_faults_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = args.pg.rsplit("/", 1)[0] + f"/{name}"
    svc = Service(url, workers=args.workers, env={"BUMPFIT_LEASE_SECONDS": "3", "BUMPFIT_MAX_ATTEMPTS": "10"})
    start = time.monotonic()
    try:
        # batch sizes vary so that jobs spread over workers instead of fusing into one claim
        ids = [
            svc.http.post(
                "/v1/jobs",
                json=seed_job(
                    sigma=0.1 + 0.01 * i,
                    n=500_000,
                    epochs=rng.choice([5, 10, 15]),
                    batch_size=rng.choice([16, 32, 48, 64]),
                    seed=i,
                ),
            ).json()["id"]
            for i in range(args.jobs)
        ]
        killed: set[str] = set()
        while len(killed) < args.kills and time.monotonic() - start < DEADLINE_S:
            # a worker killed before may still show on its jobs until the lease lapses (and as a zombie
            # it does not refuse a second kill): only live workers count
            running = [
                j
                for j in svc.http.get("/v1/jobs", params={"status": "running", "limit": 100}).json()["jobs"]
                if j["progress"]["epoch"] >= 1 and j["worker"] not in killed
            ]
            if not running:
                if not svc.http.get("/v1/jobs", params={"status": "queued", "limit": 1}).json()["jobs"]:
                    break  # nothing left to interrupt
                time.sleep(0.2)
                continue
            victim = rng.choice(running)["worker"]
            try:
                os.kill(int(victim.rsplit(":", 1)[1]), signal.SIGKILL)
                killed.add(victim)
                print(f"killed worker {victim}", flush=True)
            except ProcessLookupError:
                pass
            time.sleep(rng.uniform(0.5, 3.0))
        jobs = [svc.wait_job(i, timeout=max(10.0, DEADLINE_S - (time.monotonic() - start))) for i in ids]
        with session_scope(url) as s:
            history = dict(s.execute(select(HistoryRow.job_id, func.count()).group_by(HistoryRow.job_id)).all())
            versions = dict(s.execute(select(Job.id, Job.model_version)).all())
        lost = [
            j["id"]
            for j in jobs
            if j["status"] != "succeeded"
            or history.get(j["id"]) != j["spec"]["training"]["epochs"]
            or versions.get(j["id"]) != 1
        ]
        retried = sum(j["attempts"] > 1 for j in jobs)
        print(
            f"jobs run: {len(jobs)}, workers killed: {len(killed)}, jobs retried: {retried}, "
            f"attempts: {sum(j['attempts'] for j in jobs)}, jobs lost or duplicated: {len(lost)}, "
            f"wall {time.monotonic() - start:.0f} s"
        )
        if lost:
            raise SystemExit(f"lost: {lost}")
    finally:
        svc.stop()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
