"""Integration tests' helpers: arrays uploaded as an `.npz`, queued jobs trained in the test's own
process with the worker's code."""

from __future__ import annotations

import io

import numpy as np
from fastapi.testclient import TestClient

from app.settings import Settings
from app.store import queue
from app.store.db import session_scope


def upload_npz(api: TestClient, x: np.ndarray, y: np.ndarray) -> str:
    """Upload x and y as an `.npz` of float32 (x may be sequences: (n, timesteps, features)); the
    dataset's id."""
    buf = io.BytesIO()
    np.savez(buf, x=x.astype(np.float32), y=y.astype(np.float32))
    r = api.post("/v1/datasets", files={"file": ("data.npz", buf.getvalue())})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def train_queued(settings: Settings) -> None:
    """Train every queued job with the worker's own code, in this process."""
    from workers.runner import Worker

    worker = Worker(settings)
    while True:
        with session_scope(settings.database_url) as s:
            token, claimed = queue.claim(s, worker.id, worker.accepts, 16, 60)
            s.expunge_all()
        if not claimed:
            return
        worker.run_group(token, claimed)
