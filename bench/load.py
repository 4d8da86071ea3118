"""Load on loopback, bounded in count: predict throughput and latency against a hello-world route
in the same API process (the floor), and job submission rate. Starts its own processes.

    python bench/load.py [--requests 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from app.store import migrate
from tests.service import answers, free_port, seed_job, wait_for

ROOT = Path(__file__).resolve().parent.parent


async def hammer(base: str, method: str, path: str, body: Any, n: int, concurrency: int) -> tuple[float, list[float]]:
    """n requests, `concurrency` at a time: (requests per second, latencies in ms)."""
    latencies: list[float] = []
    queue = iter(range(n))

    async with httpx.AsyncClient(base_url=base, timeout=30) as http:

        async def one() -> None:
            for _ in queue:
                t = time.perf_counter()
                r = await http.request(method, path, json=body)
                latencies.append((time.perf_counter() - t) * 1000)
                assert r.status_code < 300, r.text

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(concurrency)))
    return n / (time.perf_counter() - start), latencies


def p99(ms: list[float]) -> float:
    return sorted(ms)[int(0.99 * (len(ms) - 1))]


def summary(label: str, rps: float, ms: list[float]) -> str:
    return f"{label}: {rps:.0f} req/s, p50 {statistics.median(ms):.1f} ms, p99 {p99(ms):.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/load.db"
        migrate.upgrade(url)
        port = free_port()
        env = {**os.environ, "BUMPFIT_DATABASE_URL": url, "BUMPFIT_LOG_LEVEL": "warning"}
        api = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bench.load_app:app", "--port", str(port), "--log-level", "warning"],
            cwd=ROOT,
            env=env,
        )
        worker = subprocess.Popen([sys.executable, "-m", "workers"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            http = httpx.Client(base_url=base, timeout=30)
            wait_for(lambda: answers(http), 60, "the API")
            job = http.post("/v1/jobs", json=seed_job(n=5000, epochs=1)).json()["id"]
            wait_for(lambda: http.get(f"/v1/jobs/{job}").json()["status"] == "succeeded", 120, "the model")
            worker.terminate()
            worker.wait(60)
            x = [round(-1 + 0.2 * i, 2) for i in range(10)]
            asyncio.run(hammer(base, "GET", "/hello", None, 200, args.concurrency))  # warm-up
            floor = asyncio.run(hammer(base, "GET", "/hello", None, args.requests, args.concurrency))
            pred = asyncio.run(
                hammer(base, "POST", f"/v1/models/{job}:predict", {"instances": x}, args.requests, args.concurrency)
            )
            submit = asyncio.run(
                hammer(base, "POST", "/v1/jobs", seed_job(n=1000, epochs=1), args.requests // 4, args.concurrency)
            )
            print(summary("hello-world floor (same process)", *floor))
            print(summary("predict, 10 instances", *pred))
            print(summary("submit a job (SQLite)", *submit))
            print(f"predict / floor: throughput {pred[0] / floor[0]:.2f}x, p99 {p99(pred[1]) / p99(floor[1]):.2f}x")
            print("idle-worker pickup latency: python bench/pickup.py")
        finally:
            for p in (api, worker):
                if p.poll() is None:
                    p.terminate()
                    p.wait(30)


if __name__ == "__main__":
    main()
