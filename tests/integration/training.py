"""Training queued jobs in the test's own process, with the worker's code."""

from __future__ import annotations

from app.settings import Settings
from app.store import queue
from app.store.db import session_scope


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
