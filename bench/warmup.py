"""A worker's start-up warm-up (BUMPFIT_WARMUP_SHAPES), off against on, in one run: a real
`bumpfit serve` on SQLite with one worker and no persistent compile cache, so every compile shows.

For each setting, on a new database: the seed job (n 100000, 3 epochs) submitted the moment the
worker registers (the warm-up is then compiling that very shape); then the seed's 99-job table as
one sweep; then the service restarts on the same database, settles for `--settle` seconds, and the
seed job and the table run again (the warm-up now knows the table's shape from the database).

    python -m bench.warmup [--settle 15]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import job_spec, seed_table
from tests.service import Service, wait_for

SEED = job_spec(0.5, 3)
TABLE = {"base": job_spec(0.5, 3), "points": [{"data.params.sigma": s, "training.epochs": e} for s, e in seed_table()]}


def start(url: str, shapes: int, log: Path) -> Service:
    svc = Service(url, workers=1, env={"BUMPFIT_WARMUP_SHAPES": str(shapes), "BUMPFIT_COMPILE_CACHE_DIR": ""}, log=log)
    wait_for(lambda: len(svc.http.get("/v1/workers").json()["workers"]) >= 1, 120, "the worker")
    return svc


def seed_job(svc: Service) -> float:
    """Seconds from submitting the seed job to its end, as the client sees it."""
    started = time.perf_counter()
    job = svc.wait_job(svc.http.post("/v1/jobs", json=SEED).json()["id"], timeout=600)
    assert job["status"] == "succeeded", job
    return time.perf_counter() - started


def table(svc: Service) -> float:
    """Seconds from submitting the 99-job table to its last job's end."""
    started = time.perf_counter()
    sweep = svc.http.post("/v1/sweeps", json=TABLE).json()["id"]
    wait_for(lambda: svc.http.get(f"/v1/sweeps/{sweep}").json()["done"], 600, "the table")
    return time.perf_counter() - started


def measure(shapes: int, settle: float, tmp: Path) -> dict[str, float]:
    url = f"sqlite:///{tmp}/warmup-{shapes}.db"
    svc = start(url, shapes, tmp / f"serve-{shapes}.log")
    try:
        out = {"first seed job": seed_job(svc), "first table": table(svc)}
    finally:
        svc.stop()
    svc = start(url, shapes, tmp / f"serve-{shapes}-again.log")
    try:
        time.sleep(settle)
        out |= {"seed job after a restart": seed_job(svc), "table after a restart": table(svc)}
    finally:
        svc.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--settle", type=float, default=15.0, help="seconds between a restart and the next job")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        off, on = measure(0, args.settle, Path(tmp)), measure(3, args.settle, Path(tmp))
        for line in (Path(tmp) / "serve-3-again.log").read_text().splitlines():
            if "warmed" in line:
                print("after the restart, the worker logged:", line)
    print(f"{'(seconds, client side)':28} {'warm-up off':>12} {'warm-up on':>12}")
    for name in off:
        print(f"{name:28} {off[name]:12.2f} {on[name]:12.2f}")


if __name__ == "__main__":
    main()
