"""Sweeps of many small jobs through the HTTP API of a real `bumpfit serve --workers 2`, on SQLite
and PostgreSQL, beside the engine's in-process time for the same work. Loopback only.

    python -m bench.scale [--sizes 50,100,1000,10000] [--db sqlite,postgresql] [--workers 2]
    python -m bench.scale --jobs 100000 [--db sqlite,postgresql]   # one large sweep, memory too

Each job: synthetic bump data, n 1,000, 3 epochs, batch 32, Adam 1e-3 (its own sigma and seeds).
Per size, on a warm service (the same sweep untimed until every worker has trained some of it):
submission to last job finished, the marginal ms per job against the smallest size, the engine's
in-process time for the same jobs (train_group in groups of BUMPFIT_MAX_FUSE), their ratio, and
each worker's peak resident memory (VmHWM).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

from app.jobs.models import Job
from bench.common import engine_spec
from tests.service import Service, wait_for

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
N, EPOCHS, MAX_FUSE = 1000, 3, 512
TIMEOUT_S = 600


def sweep_body(size: int) -> dict:
    """`size` jobs of the bench's shape, each with its own sigma and seeds."""
    base = {
        "data": {"kind": "synthetic", "function": "bump", "params": {"sigma": 0.5}, "n": N},
        "training": {"epochs": EPOCHS, "batch_size": 32},
    }
    points = [
        {"data.params.sigma": round(0.2 + 0.6 * i / max(size - 1, 1), 6), "data.seed": i, "training.seed": i}
        for i in range(size)
    ]
    return {"base": base, "points": points}


def worker_peaks_mb(pid: int) -> list[float]:
    """Peak resident memory of each child process of `pid` (the workers of `bumpfit serve`)."""
    peaks = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        for line in Path(f"/proc/{child}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return peaks


def through_api(url: str, size: int, workers: int) -> tuple[float, list[float], list[float]]:
    """Seconds from submitting one sweep of `size` jobs to its last job finishing; worker peaks;
    then the slowest of three reads, in ms: the whole sweep, a 1,000-row page of it, and a
    1,000-job page of GET /v1/jobs?sweep_id=."""
    svc = Service(url, workers=workers)
    engine = create_engine(url)
    try:
        wait_for(lambda: len(svc.http.get("/v1/workers").json()["workers"]) >= workers, 120, "the workers")
        # A warm service: the same sweep untimed until every worker has trained some of it (so each has
        # compiled the group sizes it gets; else the timed sweep may pay a compile on the other worker).
        ran: set[str] = set()
        for _ in range(10 * workers):
            warm = svc.http.post("/v1/sweeps", json=sweep_body(size), timeout=300).json()["id"]
            wait_for(
                lambda warm=warm: svc.http.get(f"/v1/sweeps/{warm}", params={"limit": 1}).json()["done"],
                TIMEOUT_S,
                "the warm-up sweep",
                every=0.1,
            )
            with engine.connect() as c:
                ran |= set(c.execute(select(Job.worker).where(Job.sweep_id == warm).distinct()).scalars())
            if len(ran) >= workers:
                break
        start = time.time()
        r = svc.http.post("/v1/sweeps", json=sweep_body(size), timeout=300)
        r.raise_for_status()
        sweep_id = r.json()["id"]
        done = select(func.count()).where(Job.sweep_id == sweep_id, Job.finished_at.is_not(None))
        with engine.connect() as c:
            wait_for(lambda: c.execute(done).scalar_one() == size, TIMEOUT_S, f"{size} jobs", every=0.05)
            last = c.execute(select(func.max(Job.finished_at)).where(Job.sweep_id == sweep_id)).scalar_one()
            failed = c.execute(select(func.count()).where(Job.sweep_id == sweep_id, Job.status != "succeeded"))
            assert failed.scalar_one() == 0, "some jobs did not succeed"
        reads = []
        for path, params in (
            (f"/v1/sweeps/{sweep_id}", {}),
            (f"/v1/sweeps/{sweep_id}", {"limit": 1000}),
            ("/v1/jobs", {"sweep_id": sweep_id, "limit": 1000}),
        ):
            times = []
            for _ in range(3):
                t = time.perf_counter()
                svc.http.get(path, params=params).raise_for_status()
                times.append((time.perf_counter() - t) * 1000)
            reads.append(max(times))
        assert last is not None  # the sweep is done: every job finished
        return last.timestamp() - start, worker_peaks_mb(svc.proc.pid), reads
    finally:
        svc.stop()
        engine.dispose()


def memory_mb(pid: int, field: str) -> float:
    """A process's VmRSS (now) or VmHWM (peak) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


def large(url: str, size: int, workers: int) -> str:
    """One sweep of `size` jobs on a fresh service (no warm-up sweep): seconds to submit, to train
    (submission to last job finished), to read every row back (pages of 10,000), and the memory
    growth of the API process and of each worker (peak resident minus resident once registered)."""
    svc = Service(url, workers=workers, env={"BUMPFIT_MAX_SWEEP_JOBS": str(size)})
    engine = create_engine(url)
    try:
        wait_for(lambda: len(svc.http.get("/v1/workers").json()["workers"]) >= workers, 120, "the workers")
        children = [int(c) for c in Path(f"/proc/{svc.proc.pid}/task/{svc.proc.pid}/children").read_text().split()]
        base = {pid: memory_mb(pid, "VmRSS") for pid in [svc.proc.pid, *children]}
        start = time.time()
        r = svc.http.post("/v1/sweeps", json=sweep_body(size), timeout=600)
        r.raise_for_status()
        submitted = time.time() - start
        sweep_id = r.json()["id"]
        done = select(func.count()).where(Job.sweep_id == sweep_id, Job.finished_at.is_not(None))
        with engine.connect() as c:
            wait_for(lambda: c.execute(done).scalar_one() == size, 3600, f"{size} jobs", every=1.0)
            last = c.execute(select(func.max(Job.finished_at)).where(Job.sweep_id == sweep_id)).scalar_one()
            ok = c.execute(select(func.count()).where(Job.sweep_id == sweep_id, Job.status == "succeeded"))
            succeeded = ok.scalar_one()
        read = time.perf_counter()
        rows, token = 0, None
        while True:
            params = {"limit": 10_000, **({"page_token": token} if token else {})}
            page = svc.http.get(f"/v1/sweeps/{sweep_id}", params=params, timeout=120).json()
            rows += len(page["jobs"])
            token = page["next_page_token"]
            if token is None:
                break
        read_s = time.perf_counter() - read
        growth = {pid: memory_mb(pid, "VmHWM") - rss for pid, rss in base.items()}
        assert last is not None
        api = growth.pop(svc.proc.pid)
        return (
            f"{size:,} jobs: submitted in {submitted:.1f} s, trained in {last.timestamp() - start:.1f} s "
            f"({succeeded:,} succeeded), {rows:,} rows read back in {read_s:.1f} s; memory growth: API "
            f"{api:.0f} MB, workers {', '.join(f'{g:.0f}' for g in growth.values())} MB"
        )
    finally:
        svc.stop()
        engine.dispose()


def in_process(size: int) -> float:
    """The engine alone on the same jobs: data made, then train_group per group of MAX_FUSE."""
    from app.model import data
    from workers.engine import Member, train_group

    body = sweep_body(size)
    members = []
    for i, p in enumerate(body["points"]):
        x, y = data.synthetic("bump", {"sigma": p["data.params.sigma"]}, N, (-1.0, 1.0), 0.0, i)
        members.append(Member(str(i), engine_spec(EPOCHS, seed=i), x, y))
    for g in range(0, size, MAX_FUSE):  # compile outside the timing, as the service's warm-up does
        train_group(members[g : g + MAX_FUSE])
    start = time.perf_counter()
    for g in range(0, size, MAX_FUSE):
        train_group(members[g : g + MAX_FUSE])
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="50,100,1000,10000")
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pg", default=PG)
    ap.add_argument("--jobs", type=int, help="instead: one sweep of this many jobs, its times and memory growth")
    args = ap.parse_args()
    admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
    if args.jobs:
        for db in args.db.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                if db == "sqlite":
                    figures = large(f"sqlite:///{tmp}/scale.db", args.jobs, args.workers)
                    print(f"sqlite, --workers {args.workers}: {figures}", flush=True)
                    continue
                name = f"bumpfit_scale_{uuid.uuid4().hex[:8]}"
                with admin.connect() as c:
                    c.execute(text(f'CREATE DATABASE "{name}"'))
                try:
                    url = args.pg.rsplit("/", 1)[0] + f"/{name}"
                    print(f"postgresql, --workers {args.workers}: {large(url, args.jobs, args.workers)}", flush=True)
                finally:
                    with admin.connect() as c:
                        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        return
    sizes = sorted(int(s) for s in args.sizes.split(","))
    engine_s = {size: in_process(size) for size in sizes}
    print(
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, --workers {args.workers}; "
        f"jobs of n {N}, {EPOCHS} epochs, batch 32"
    )
    print(
        "| database | jobs | API s | ms per job (marginal) | engine in-process s | API / engine | worker peak MB "
        "| GET sweep: all / 1,000 rows / jobs page, ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for db in args.db.split(","):
        times = {}
        for size in sizes:
            with tempfile.TemporaryDirectory() as tmp:
                if db == "sqlite":
                    url = f"sqlite:///{tmp}/scale.db"
                    times[size], peaks, reads = through_api(url, size, args.workers)
                else:
                    name = f"bumpfit_scale_{uuid.uuid4().hex[:8]}"
                    with admin.connect() as c:
                        c.execute(text(f'CREATE DATABASE "{name}"'))
                    try:
                        url = args.pg.rsplit("/", 1)[0] + f"/{name}"
                        times[size], peaks, reads = through_api(url, size, args.workers)
                    finally:
                        with admin.connect() as c:
                            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            marginal = ((times[size] - times[sizes[0]]) / (size - sizes[0]) * 1000) if size > sizes[0] else None
            print(
                f"| {db} | {size:,} | {times[size]:.2f} | {'' if marginal is None else f'{marginal:.2f}'} | "
                f"{engine_s[size]:.2f} | {times[size] / engine_s[size]:.2f}x | "
                f"{', '.join(f'{p:.0f}' for p in peaks)} | {' / '.join(f'{r:.0f}' for r in reads)} |",
                flush=True,
            )


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
