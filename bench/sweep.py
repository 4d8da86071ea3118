"""The seed's full table (99 sigmas, n 100000, batch 32, Adam 1e-3, 3/5/10 epochs) submitted as ONE
sweep over HTTP to a real `bumpfit serve` on SQLite (a new service each round); the engine on the
same groups in a new process each round, as a new worker; with --first-release, the same sweep
through another checkout's API (the first release, commit 7288e4e, or any earlier commit, with its
own venv), in the same run, both compiling from nothing; then the seed's one-by-one Keras loop on a
few of the same sigmas, for the per-job ratio. Loopback only; stops by itself.

    python -m bench.sweep [--workers 1] [--seed-samples 3] [--first-release /tmp/first]
    KERAS_BACKEND=jax python -m bench.sweep --seed-samples 0   # workers on the JAX form

A first-release checkout: `git worktree add /tmp/first 7288e4e && python -m venv
--system-site-packages /tmp/first/.venv && /tmp/first/.venv/bin/pip install --no-deps -e /tmp/first`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import engine_spec, job_spec, seed_fit, seed_table
from tests.service import ROOT, Service, free_port, wait_for

TIMEOUT_S = 900  # give up on the sweep after this long
# No compile from an earlier run, for both trees: a new deployment. A tree that has the persistent
# compilation cache (BUMPFIT_COMPILE_CACHE_DIR, default ~/.cache/bumpfit) would otherwise load every
# shape an earlier round compiled; a tree that predates it ignores the variable.
FRESH = {"BUMPFIT_COMPILE_CACHE_DIR": ""}


def in_process(table: list[tuple[float, int]]) -> float:
    """Seconds for the engine to train the sweep's jobs (same data, seeds and groups) in this process."""
    from app.model import data
    from workers.engine import Member, factory, train_group

    groups: dict[int, list[Member]] = {}
    for i, (sigma, epochs) in enumerate(table):
        x, y = data.synthetic("bump", {"sigma": sigma}, 100_000, (-1.0, 1.0), 0.0, i)
        groups.setdefault(epochs, []).append(Member(str(i), engine_spec(epochs, seed=i), x, y))
    factory._CACHE.clear()  # compiles included, as in a new worker
    start = time.perf_counter()
    for members in groups.values():
        train_group(members)
    return time.perf_counter() - start


def new_process() -> float:
    """`in_process` in a process of its own, as a new worker is: what a process pays once (tracing
    TensorFlow's first functions, its first metrics) is counted as the API's new worker pays it."""
    code = "from bench.common import seed_table; from bench.sweep import in_process; print(in_process(seed_table()))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
    return float(out.stdout.split()[-1])


def sweep_body(table: list[tuple[float, int]]) -> dict[str, Any]:
    """The seed's table as one sweep request."""
    points = [
        {"data.params.sigma": s, "training.epochs": e, "data.seed": i, "training.seed": i}
        for i, (s, e) in enumerate(table)
    ]
    return {"base": job_spec(0.5, 3), "points": points}


def run_sweep(http: httpx.Client, workers: int, table: list[tuple[float, int]]) -> tuple[float, float, dict[str, Any]]:
    """Submit the table once the workers have registered and wait for it: (seconds from submission
    to the last job finished, seconds until the client saw it done, the sweep resource)."""
    wait_for(lambda: len(http.get("/v1/workers").json()["workers"]) >= workers, 120, "the workers")
    submitted = time.time()
    r = http.post("/v1/sweeps", json=sweep_body(table))
    r.raise_for_status()
    sweep_id = r.json()["id"]
    while time.time() - submitted < TIMEOUT_S:
        sweep = http.get(f"/v1/sweeps/{sweep_id}").json()
        if sweep["done"]:
            break
        time.sleep(0.05)
    detected = time.time() - submitted
    jobs = http.get("/v1/jobs", params={"sweep_id": sweep_id, "limit": 1000}).json()["jobs"]
    last_done = max(datetime.fromisoformat(j["finished_at"]).timestamp() for j in jobs)
    return last_done - submitted, detected, sweep


def first_release(root: Path, workers: int, table: list[tuple[float, int]], tmp: str) -> float:
    """Seconds for the same sweep through the first release's `bumpfit serve` (its checkout at
    `root`, its venv at `root`/.venv), on SQLite, compiling from nothing as this tree's does."""
    port = free_port()
    python = root / ".venv" / "bin" / "python"
    args = [str(python), "-m", "app.cli", "serve", "--port", str(port), "--workers", str(workers)]
    with open(f"{tmp}/first.log", "wb") as log:
        proc = subprocess.Popen(
            [*args, "--database-url", f"sqlite:///{tmp}/first.db"],
            cwd=root,
            env={**os.environ, **FRESH},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        try:
            wait_for(lambda: _answers(http), 60, "the first release's API")
            wall, _, sweep = run_sweep(http, workers, table)
        finally:
            proc.terminate()
            proc.wait(60)
    if sweep["counts"].get("succeeded") != len(table):
        raise SystemExit(f"the first release's sweep ended {sweep['counts']}")
    return wall


def _answers(http: httpx.Client) -> bool:
    try:
        return http.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed-samples", type=int, default=3, help="sigmas to time with the seed's Keras loop")
    ap.add_argument(
        "--first-release",
        type=Path,
        help="a checkout (the first release: 7288e4e, or any earlier commit) with its venv in .venv",
    )
    ap.add_argument("--repeat", type=int, default=1, help="rounds of the three, interleaved; the best of each counts")
    args = ap.parse_args()
    table = seed_table()
    walls: list[float] = []
    seen: list[float] = []
    firsts: list[float] = []
    engines: list[float] = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            svc = Service(f"sqlite:///{tmp}/bench.db", workers=args.workers, env=FRESH, log=Path(tmp) / "serve.log")
            try:
                wall, detected, sweep = run_sweep(svc.http, args.workers, table)
                walls.append(wall)
                seen.append(detected)
            finally:
                svc.stop()
            if args.first_release:
                firsts.append(first_release(args.first_release, args.workers, table, tmp))
        engines.append(new_process())
    wall, engine_s = min(walls), min(engines)
    detected = seen[walls.index(wall)]
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
    print(f"statuses: {sweep['counts']}")
    print(f"largest error {max(errors):.2e}; within 1e-2: {sum(e <= 1e-2 for e in errors)}/{len(errors)}")
    print(
        f"sweep wall time, submission to last job finished: {wall:.2f} s ({wall / len(table):.3f} s per job); "
        f"seen done by the client after {detected:.2f} s"
    )
    print(f"workers' keras backend: {os.environ.get('KERAS_BACKEND', 'tensorflow')}")
    runs = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    print(f"through the API, best of {len(walls)}: {wall:.2f} s ({runs(walls)})")
    print(
        f"the engine in a new process on the same groups (compiles included, as in new workers), best of "
        f"{len(engines)}: {engine_s:.2f} s ({runs(engines)}); API / engine: {wall / engine_s:.2f}x"
    )
    if firsts:
        first_s = min(firsts)
        print(
            f"the API of {args.first_release} (same run), best of {len(firsts)}: {first_s:.2f} s ({runs(firsts)}); "
            f"API / first release: {wall / first_s:.2f}x"
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
