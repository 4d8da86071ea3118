"""Prometheus metrics: counters kept in the API process, and queue state read at scrape time."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import select

from app.jobs.models import JobStatus
from app.ops.models import JobTotal, Worker
from app.ops.totals import BUCKETS
from app.store.db import session_scope, utcnow

REGISTRY = CollectorRegistry()
PREDICTIONS = Counter("bumpfit_predictions", "Instances predicted", registry=REGISTRY)
REQUESTS = Counter("bumpfit_http_requests", "HTTP requests", ["method", "status"], registry=REGISTRY)
LATENCY = Histogram("bumpfit_http_request_seconds", "HTTP request latency", registry=REGISTRY)
OUTBOX_DEAD = Counter(
    "bumpfit_outbox_deliveries_dead", "Outbox deliveries given up (dead) by target", ["target"], registry=REGISTRY
)


class QueueCollector(Collector):
    """Jobs by state, queue depth, job durations, epochs trained and worker heartbeats, from the
    database (the running totals its triggers keep: app/ops/totals.py), so every API replica
    reports the same numbers, in a time that does not grow with the finished jobs."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url

    def collect(self) -> Iterator[GaugeMetricFamily | HistogramMetricFamily]:
        with session_scope(self.url, readonly=True) as s:  # a few rows, however many jobs finished
            kept = dict(s.execute(select(JobTotal.key, JobTotal.value)).tuples().all())
            workers = s.execute(select(Worker.id, Worker.device, Worker.heartbeat_at)).all()
        jobs = GaugeMetricFamily("bumpfit_jobs", "Jobs by state", labels=["state"])
        for state in JobStatus:
            jobs.add_metric([state], kept.get(f"jobs:{state}", 0))
        yield jobs
        yield GaugeMetricFamily(
            "bumpfit_queue_depth", "Jobs waiting for a worker", value=kept.get(f"jobs:{JobStatus.QUEUED}", 0)
        )
        yield GaugeMetricFamily("bumpfit_epochs_trained", "Epochs recorded over all jobs", value=kept.get("epochs", 0))
        cumulative = list(itertools.accumulate(kept.get(f"duration:bucket:{le}", 0) for le in (*BUCKETS, "+Inf")))
        buckets = list(zip([*map(str, BUCKETS), "+Inf"], cumulative, strict=True))
        yield HistogramMetricFamily(
            "bumpfit_job_duration_seconds",
            "Claim to finish, finished jobs",
            buckets=buckets,
            sum_value=kept.get("duration:sum", 0),
        )
        age = GaugeMetricFamily(
            "bumpfit_worker_heartbeat_age_seconds",
            "Seconds since each worker's last heartbeat",
            labels=["worker", "device"],
        )
        now = utcnow()
        for wid, device, beat in workers:
            age.add_metric([wid, device], (now - beat).total_seconds())
        yield age
