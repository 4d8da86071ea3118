"""Prometheus metrics: counters kept in the API process, and queue state read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from app.db import session_scope, utcnow
from app.jobs.models import FINISHED, Job, JobStatus
from app.ops.models import Worker

REGISTRY = CollectorRegistry()
PREDICTIONS = Counter("bumpfit_predictions", "Instances predicted", registry=REGISTRY)
REQUESTS = Counter("bumpfit_http_requests", "HTTP requests", ["method", "status"], registry=REGISTRY)
LATENCY = Histogram("bumpfit_http_request_seconds", "HTTP request latency", registry=REGISTRY)
DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 300, 1800, float("inf"))


class QueueCollector(Collector):
    """Jobs by state, queue depth, job durations, epochs trained and worker heartbeats, from the
    database, so every API replica reports the same numbers."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url

    def collect(self) -> Iterator[GaugeMetricFamily | HistogramMetricFamily]:
        with session_scope(self.url, readonly=True) as s:
            states = dict(s.execute(select(Job.status, func.count()).group_by(Job.status)).all())
            epochs = s.scalar(select(func.coalesce(func.sum(Job.progress_epoch), 0))) or 0
            spans = s.execute(
                select(Job.started_at, Job.finished_at).where(
                    Job.status.in_(FINISHED), Job.started_at.is_not(None), Job.finished_at.is_not(None)
                )
            ).all()
            workers = s.execute(select(Worker.id, Worker.device, Worker.heartbeat_at)).all()
        jobs = GaugeMetricFamily("bumpfit_jobs", "Jobs by state", labels=["state"])
        for state in JobStatus:
            jobs.add_metric([state], states.get(state, 0))
        yield jobs
        yield GaugeMetricFamily(
            "bumpfit_queue_depth", "Jobs waiting for a worker", value=states.get(JobStatus.QUEUED, 0)
        )
        yield GaugeMetricFamily("bumpfit_epochs_trained", "Epochs recorded over all jobs", value=epochs)
        durations = [(f - s).total_seconds() for s, f in spans if s and f]
        buckets = [(str(b), sum(d <= b for d in durations)) for b in DURATION_BUCKETS]
        yield HistogramMetricFamily(
            "bumpfit_job_duration_seconds", "Claim to finish, finished jobs", buckets=buckets, sum_value=sum(durations)
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
