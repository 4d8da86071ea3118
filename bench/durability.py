"""The cost of durable commits on SQLite: job submissions (POST /v1/jobs, in process) and a
worker's epoch writes per second with `PRAGMA synchronous=FULL` (the default: a 201 is on disk)
against NORMAL (WAL's lighter mode, which may lose the last commits to a power cut).

    python -m bench.durability [--jobs 300] [--dir /path/on/the/disk/to/measure]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.store import db, migrate, queue
from tests.service import seed_job


def measure(mode: str, folder: Path, jobs: int) -> tuple[float, float]:
    """(submissions per second, epoch writes per second) on a fresh database in `folder`."""
    db.SQLITE_SYNCHRONOUS = mode
    url = f"sqlite:///{folder / f'{mode}.db'}"
    migrate.upgrade(url)
    with TestClient(create_app(Settings(database_url=url)), base_url="http://127.0.0.1") as client:
        start = time.perf_counter()
        for i in range(jobs):
            r = client.post("/v1/jobs", json=seed_job(sigma=0.1 + i / jobs, n=1000, epochs=jobs))
            assert r.status_code == 201, r.text
        submits = jobs / (time.perf_counter() - start)
    with db.session_scope(url) as s:
        token, claimed = queue.claim(s, "bench:1", ("auto", "cpu"), 1, 60)
    job_id = claimed[0].id
    start = time.perf_counter()
    for epoch in range(1, jobs + 1):
        with db.session_scope(url) as s:
            row = {"epoch": epoch, "loss": 0.1, "val_loss": None, "seconds": 0.01, "params": {"sigma": 0.5}}
            queue.add_epoch(s, token, {job_id: row})
    epochs = jobs / (time.perf_counter() - start)
    db.engine_for(url).dispose()
    return submits, epochs


def main() -> None:
    """Print both modes' figures and FULL's cost relative to NORMAL."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=300)
    ap.add_argument("--dir", type=Path, default=None, help="where the databases go (default: a temp folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        figures = {mode: measure(mode, Path(tmp), args.jobs) for mode in ("NORMAL", "FULL")}
    for mode, (submits, epochs) in figures.items():
        print(f"synchronous={mode:<6}  {submits:7.1f} POST /v1/jobs per s   {epochs:7.1f} epoch writes per s")
    (ns, ne), (fs, fe) = figures["NORMAL"], figures["FULL"]
    print(f"FULL costs {100 * (1 - fs / ns):.0f}% of submissions/s and {100 * (1 - fe / ne):.0f}% of epoch writes/s")


if __name__ == "__main__":
    main()
