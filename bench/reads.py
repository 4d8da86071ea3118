"""Reads that must not grow with history: `GET /v1/sweeps/{id}` with 10,000 finished rows against
serialising the same body from memory with orjson (the fastest JSON encoder the project uses), in
this process, on SQLite and PostgreSQL: the answer the API keeps for a finished sweep, and the first
read, which builds it from the rows; beside the floor of any answer read from the rows (their stored
columns read through the database driver, nothing built); and `GET /metrics` with no job and with
those finished. The API runs in process (TestClient: no network), so the figures are this process's.

    python -m bench.reads [--rows 10000] [--db sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid

import orjson
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from app.main import create_app
from app.settings import Settings
from app.store import migrate
from app.store.db import engine_for, session_scope
from app.sweeps.service import Answers
from bench.scale import PG, sweep_body

REPEAT = 5  # each figure is the median of this many


def median_ms(fn: object) -> float:
    """The median of REPEAT timings of `fn()`, in ms."""
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(url: str, rows: int) -> str:
    """A finished sweep of `rows` jobs (each with params and metrics): the GET against orjson."""
    migrate.upgrade(url)
    client = TestClient(create_app(Settings(database_url=url, max_sweep_jobs=rows)), base_url="http://127.0.0.1")
    empty_metrics_ms = median_ms(lambda: client.get("/metrics").raise_for_status())
    sweep_id = client.post("/v1/sweeps", json=sweep_body(rows)).json()["id"]
    with session_scope(url) as s:  # as a finished sweep: every row with its learned sigma and metrics
        s.execute(
            text("UPDATE jobs SET status = 'succeeded', progress_epoch = epochs, params = :p, metrics = :m"),
            {
                "p": json.dumps({"sigma": 0.123456789}),
                "m": json.dumps({"loss": 1.5e-5, "mse": 1.5e-5, "mae": 0.0021, "r2": 0.99991}),
            },
        )
    body = client.get(f"/v1/sweeps/{sweep_id}").json()
    assert len(body["jobs"]) == rows
    get_ms = median_ms(lambda: client.get(f"/v1/sweeps/{sweep_id}").raise_for_status())  # the kept answer

    def first_read() -> None:  # the answer built from the rows: the first read of the sweep, per API process
        client.app.state.sweep_answers = Answers(2**30)  # type: ignore[attr-defined]
        client.get(f"/v1/sweeps/{sweep_id}").raise_for_status()

    built_ms = median_ms(first_read)
    encode_ms = median_ms(lambda: orjson.dumps(body))
    # The floor of any answer read from the database: the rows' stored columns through the driver,
    # nothing built (the same index and order as the GET).
    texts = ", ".join(f"CAST({c} AS TEXT)" for c in ("point", "params", "metrics", "error"))  # as stored, not parsed
    columns = f"seq, id, status, {texts}, progress_epoch, epochs"
    raw = f"SELECT {columns} FROM jobs WHERE sweep_id = '{sweep_id}' ORDER BY seq"

    def read_raw() -> None:
        conn = engine_for(url).raw_connection()
        try:
            cursor = conn.cursor()
            cursor.execute(raw)
            cursor.fetchall()
        finally:
            conn.close()

    raw_ms = median_ms(read_raw)
    size = len(orjson.dumps(body))
    metrics_ms = median_ms(lambda: client.get("/metrics").raise_for_status())
    return (
        f"GET /v1/sweeps/{{id}}, {rows:,} rows ({size / 1e6:.1f} MB): {get_ms:.1f} ms; orjson.dumps of the same "
        f"body from memory: {encode_ms:.1f} ms; ratio {get_ms / encode_ms:.1f}x; the first read, which builds "
        f"the answer from the rows: {built_ms:.0f} ms ({built_ms / encode_ms:.1f}x); the rows' stored columns read "
        f"through the driver alone: {raw_ms:.1f} ms ({raw_ms / encode_ms:.1f}x). GET /metrics with no job: "
        f"{empty_metrics_ms:.1f} ms, with {rows:,} finished: {metrics_ms:.1f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--db", default="sqlite,postgresql")
    args = ap.parse_args()
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    for db in args.db.split(","):
        if db == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                print(f"sqlite: {measure(f'sqlite:///{tmp}/reads.db', args.rows)}", flush=True)
            continue
        name = f"bumpfit_reads_{uuid.uuid4().hex[:8]}"
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG.rsplit("/", 1)[0] + f"/{name}"
        try:
            print(f"postgresql: {measure(url, args.rows)}", flush=True)
        finally:
            engine_for(url).dispose()
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
