"""The seed's full table (99 sigmas, n 100000, batch 32, Adam 1e-3, 3/5/10 epochs) submitted as ONE
sweep over HTTP to a real `bumpfit serve` on SQLite; then the seed's one-by-one Keras loop on a few
of the same sigmas, for the per-job ratio. Loopback only; stops by itself.

    python bench/sweep.py [--workers 1] [--seed-samples 3]
    KERAS_BACKEND=jax python bench/sweep.py --seed-samples 0   # workers on the JAX form
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.common import engine_spec, job_spec, seed_fit, seed_table
from tests.service import Service, wait_for

TIMEOUT_S = 900  # give up on the sweep after this long


def in_process(table: list[tuple[float, int]]) -> float:
    """Seconds for the engine to train the sweep's jobs (same data, seeds and groups) in this process."""
    from app import data
    from workers.engine import Member, train_group

    groups: dict[int, list[Member]] = {}
    for i, (sigma, epochs) in enumerate(table):
        x, y = data.synthetic("bump", {"sigma": sigma}, 100_000, (-1.0, 1.0), 0.0, i)
        groups.setdefault(epochs, []).append(Member(str(i), engine_spec(epochs, seed=i), x, y))
    start = time.perf_counter()
    for members in groups.values():
        train_group(members)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed-samples", type=int, default=3, help="sigmas to time with the seed's Keras loop")
    args = ap.parse_args()
    table = seed_table()
    with tempfile.TemporaryDirectory() as tmp:
        svc = Service(f"sqlite:///{tmp}/bench.db", workers=args.workers, log=Path(tmp) / "serve.log")
        http = svc.http
        try:  # wait until every worker has registered (TensorFlow loaded)
            wait_for(lambda: len(http.get("/v1/workers").json()["workers"]) >= args.workers, 120, "the workers")
            body = {
                "base": job_spec(0.5, 3),
                "points": [
                    {"data.params.sigma": s, "training.epochs": e, "data.seed": i, "training.seed": i}
                    for i, (s, e) in enumerate(table)
                ],
            }
            submitted = time.time()
            r = http.post("/v1/sweeps", json=body)
            r.raise_for_status()
            sweep_id = r.json()["id"]
            while time.time() - submitted < TIMEOUT_S:
                sweep = http.get(f"/v1/sweeps/{sweep_id}").json()
                if sweep["done"]:
                    break
                time.sleep(0.05)
            detected = time.time() - submitted
            last_done = max(
                datetime.fromisoformat(j["finished_at"]).timestamp()
                for j in http.get("/v1/jobs", params={"sweep_id": sweep_id, "limit": 1000}).json()["jobs"]
            )
        finally:
            svc.stop()
    errors = []
    for row in sweep["jobs"]:
        sigma = row["point"]["data.params.sigma"]
        learned = (row["params"] or {}).get("sigma")
        err = abs(learned - sigma) if learned is not None else float("inf")
        errors.append(err)
        print(
            f"sigma {sigma:4.1f}  epochs {row['point']['training.epochs']:2d}  {row['status']:9s}  "
            f"learned {learned}  error {err:.2e}"
        )
    wall = last_done - submitted
    print(f"statuses: {sweep['counts']}")
    print(f"largest error {max(errors):.2e}; within 1e-2: {sum(e <= 1e-2 for e in errors)}/{len(errors)}")
    print(
        f"sweep wall time, submission to last job finished: {wall:.2f} s ({wall / len(table):.3f} s per job); "
        f"seen done by the client after {detected:.2f} s"
    )
    print(f"workers' keras backend: {os.environ.get('KERAS_BACKEND', 'tensorflow')}")
    engine_s = in_process(table)
    print(
        f"the engine in this process on the same groups (compiles included, as in new workers): {engine_s:.2f} s; "
        f"API / engine: {wall / engine_s:.2f}x"
    )
    if not args.seed_samples:
        return
    picks = [table[round(i * (len(table) - 1) / max(args.seed_samples - 1, 1))] for i in range(args.seed_samples)]
    seed_times = []
    for sigma, epochs in picks:
        learned, seconds = seed_fit(sigma, epochs)
        seed_times.append(seconds)
        print(f"seed's Keras fit: sigma {sigma} epochs {epochs}: {seconds:.2f} s, learned {learned:.6f}")
    per_epoch_seed = sum(seed_times) / sum(e for _, e in picks)
    seed_total = per_epoch_seed * sum(e for _, e in table)
    print(
        f"seed's loop, extrapolated to the 99 jobs from these {len(picks)} (per epoch): {seed_total:.0f} s; "
        f"ratio seed / sweep per job: {seed_total / wall:.0f}x"
    )


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
