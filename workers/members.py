"""Jobs in a worker's hands: a claimed job's data as the engine's member (x and y as arrays, a
network's by its table's column names), and retention of finished ones."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from app.datasets.models import Dataset
from app.errors import BumpfitError, InvalidInput
from app.jobs.models import Job
from app.model import data as datalib
from app.model import networks, plan
from app.settings import Settings
from app.store import lifecycle
from app.store.db import session_scope
from workers.engine import Member

log = logging.getLogger("bumpfit.worker")


def load_member(session: Any, job: Job, settings: Settings, cache: dict[str, tuple[Any, Any]] | None = None) -> Member:
    """The job's data as arrays; raises InvalidInput for data that cannot be trained on. A stored
    dataset (an upload, or a sweep's inline data) is read once per claim through `cache`."""
    arrays = datalib.load(session, job.spec["data"], settings, cache)
    if arrays is None:
        raise InvalidInput.at("data.id", f"dataset {job.spec['data']['id']!r} no longer exists")
    if plan.is_network(job.spec):  # its table's feature and target columns, by name
        d = job.spec["data"]
        columns = session.scalar(select(Dataset.columns).where(Dataset.id == d["id"]))
        x, y, _, _ = networks.table(*arrays, columns, {"target": d["target"], "features": d["columns"]})
        return Member(job.id, job.spec, x, y)
    if arrays[0].ndim == 3:
        raise InvalidInput.at("data.id", "holds sequences (n, timesteps, features): train an rnn (model.layers) on it")
    return Member(job.id, job.spec, *arrays)


def retain(url: str, days: float) -> None:
    """Delete finished jobs older than `days`, then delivered events; a conflict (a label set
    meanwhile) waits for the next round."""
    try:
        with session_scope(url) as s:
            expired = lifecycle.expire(s, days)
    except BumpfitError as exc:
        log.info("retention: %s; trying again next round", exc.message)
        return
    if expired:
        log.info("retention: deleted %d finished jobs", expired)
    with session_scope(url) as s:
        events = lifecycle.expire_events(s, days)
    if events:
        log.info("retention: deleted %d delivered events", events)
