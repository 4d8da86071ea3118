"""One worker process: register, claim fusable jobs, train them, write results fenced by lease."""

from __future__ import annotations

import functools
import logging
import os
import select as os_select
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from app import data as datalib
from app import lifecycle, networks, queue, wake
from app.datasets.models import Dataset
from app.db import session_scope
from app.errors import InvalidInput
from app.jobs.models import Job
from app.ops import service as workers
from app.settings import Settings
from workers import warmup
from workers.engine import BACKEND, EpochReport, Member, Result, default_device, train_group
from workers.results import finish_all, finish_one

log = logging.getLogger("bumpfit.worker")
DB_DOWN = (OperationalError, InterfaceError)  # the database is unreachable or restarting
T = TypeVar("T")
REAP_EVERY = 5.0  # seconds between looks for jobs whose worker died
DB_RETRY_SLEEP = 0.5  # seconds between tries while the database is unreachable


def load_member(session: Any, job: Job, settings: Settings, cache: dict[str, tuple[Any, Any]] | None = None) -> Member:
    """The job's data as arrays; raises InvalidInput for data that cannot be trained on. A stored
    dataset (an upload, or a sweep's inline data) is read once per claim through `cache`."""
    arrays = datalib.load(session, job.spec["data"], settings, cache)
    if arrays is None:
        raise InvalidInput.at("data.id", f"dataset {job.spec['data']['id']!r} no longer exists")
    if "model" in job.spec:  # a network: its table's feature and target columns, by name
        d = job.spec["data"]
        columns = session.scalar(select(Dataset.columns).where(Dataset.id == d["id"]))
        x, y, _, _ = networks.table(*arrays, columns, {"target": d["target"], "features": d["columns"]})
        return Member(job.id, job.spec, x, y)
    return Member(job.id, job.spec, *arrays)


class Worker:
    """Claims groups of fusable jobs and trains each group in one compiled model."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.database_url
        self.id = f"{socket.gethostname()}:{os.getpid()}"
        self.device = default_device()
        if settings.worker_device == "gpu" and not self.device.startswith("GPU"):
            raise SystemExit("BUMPFIT_WORKER_DEVICE=gpu but TensorFlow sees no GPU on this host")
        if settings.worker_device == "cpu":
            self.device = "CPU:0"
        gpu = self.device.startswith("GPU")
        self.accepts = ("auto", "gpu") if gpu else ("auto", "cpu")
        self.stopping = threading.Event()
        # Started by `bumpfit serve`: stop when it dies, even by kill -9, instead of living on orphaned.
        self.parent = int(os.environ.get("BUMPFIT_PARENT_PID", "0")) or None
        # ... and it wakes this worker through a pipe when jobs are queued (SQLite has no NOTIFY).
        self.wake_fd = int(os.environ.get("BUMPFIT_WAKE_FD", "0")) or None
        self.token: str | None = None
        self.current: list[str] = []

    # -- plumbing -------------------------------------------------------------------------------

    def retry(self, fn: Callable[[], T]) -> T:
        """Run a database unit of work, retrying while the database is unreachable (one lease)."""
        deadline = time.monotonic() + self.settings.lease_seconds
        while True:
            try:
                return fn()
            except DB_DOWN:
                if time.monotonic() > deadline:
                    raise
                log.warning("database unreachable; retrying")
                time.sleep(DB_RETRY_SLEEP)

    def register(self, status: str) -> None:
        """Upsert this worker's row with its heartbeat."""

        def write() -> None:
            with session_scope(self.url) as s:
                workers.register(s, self.id, self.device, status, self.current)

        self.retry(write)

    def heartbeat_loop(self) -> None:
        """Renew leases and this worker's heartbeat several times per lease, whatever epochs take."""
        while not self.stopping.wait(self.settings.heartbeat_interval):
            if self.parent is not None and os.getppid() != self.parent:
                log.warning("bumpfit serve (pid %s) is gone; stopping", self.parent)
                self.stopping.set()
            try:
                token = self.token
                if token is not None:
                    with session_scope(self.url) as s:
                        queue.heartbeat(s, token, self.settings.lease_seconds)
                self.register("busy" if self.current else "idle")
            except Exception:  # noqa: BLE001 - keep beating through database restarts
                log.exception("heartbeat failed")

    def wait_for_work(self, listener: Any) -> None:
        """Sleep until a NOTIFY (PostgreSQL), a byte on the wake-up pipe, or the poll interval passes."""
        if listener is not None:
            try:
                for _ in listener.notifies(timeout=self.settings.poll_seconds, stop_after=1):
                    pass
                return
            except Exception:  # noqa: BLE001 - fall back to polling; reconnect next round
                log.warning("LISTEN connection lost; polling")
        if self.wake_fd is not None:
            if os_select.select([self.wake_fd], [], [], self.settings.poll_seconds)[0]:
                if not os.read(self.wake_fd, 4096):  # end of file: `bumpfit serve` is gone; poll
                    self.wake_fd = None
            return
        self.stopping.wait(self.settings.poll_seconds)

    def listen(self) -> Any:
        """A connection LISTENing for new jobs (PostgreSQL), or None: then poll."""
        conn = wake.listen(self.url)
        if conn is None and self.url.startswith("postgresql"):
            log.warning("could not LISTEN; polling")
        return conn

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> None:
        """Claim and train until SIGTERM/SIGINT."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        self.register("idle")
        beat = threading.Thread(target=self.heartbeat_loop, daemon=True, name="heartbeat")
        beat.start()
        warmup.start(self.url, self.device, self.settings.warmup_shapes, self.stopping)
        listener, last_reap = self.listen(), 0.0
        log.info(
            "worker %s ready on %s (keras backend %s), taking %s jobs",
            self.id,
            self.device,
            BACKEND,
            "/".join(self.accepts),
        )
        while not self.stopping.is_set():
            try:
                if time.monotonic() - last_reap > REAP_EVERY:
                    with session_scope(self.url) as s:
                        counts = queue.reap(s)
                    if any(counts.values()):
                        log.info("reaped expired leases: %s", counts)
                    if self.settings.retention_days is not None:
                        with session_scope(self.url) as s:
                            expired = lifecycle.expire(s, self.settings.retention_days)
                        if expired:
                            log.info("retention: deleted %d finished jobs", expired)
                    last_reap = time.monotonic()
                with session_scope(self.url) as s:
                    token, jobs = queue.claim(
                        s, self.id, self.accepts, self.settings.max_fuse, self.settings.lease_seconds
                    )
                    s.expunge_all()
            except DB_DOWN:
                log.warning("database unreachable; retrying")
                self.stopping.wait(DB_RETRY_SLEEP)
                listener = None
                continue
            if not jobs:
                if listener is None:
                    listener = self.listen()
                self.wait_for_work(listener)
                continue
            self.token, self.current = token, [j.id for j in jobs]
            try:
                self.run_group(token, jobs)
            finally:
                self.token, self.current = None, []
        self.register("stopped")
        log.info("worker %s stopped", self.id)

    def run_group(self, token: str, jobs: list[Job]) -> None:
        """Load, train and finish one claimed group; a job's bad data fails only that job."""
        members: list[Member] = []
        datasets: dict[str, tuple[Any, Any]] = {}
        with session_scope(self.url) as s:
            for job in jobs:
                try:
                    members.append(load_member(s, job, self.settings, datasets))
                except InvalidInput as exc:
                    queue.fail(s, job.id, token, {"type": "bad_input", "message": exc.message})
            queue.start_group(s, token, self.device)
        if not members:
            return
        log.info(
            "training %d job(s) together",
            len(members),
            extra={"worker": self.id, "job_id": ",".join(m.id for m in members)},
        )
        done: set[str] = set()

        def on_epoch(report: EpochReport) -> list[int]:
            return self.record_epoch(token, members, report, done)

        def on_done(finished: dict[int, Result]) -> None:  # early stopping ended them: succeed now
            self.finish(token, [(members[k], r) for k, r in finished.items()])
            done.update(members[k].id for k in finished)

        try:
            results = train_group(members, on_epoch, self.device, artifacts=True, on_done=on_done)
        except Exception as exc:  # noqa: BLE001 - a bug or resource error fails the group, once
            log.exception("training failed")
            error = {"type": "training_error", "message": f"{type(exc).__name__}: {exc}"}
            results = [Result(params={}, error=error) for _ in members]
        self.finish(
            token, [(m, r) for m, r in zip(members, results, strict=True) if m.id not in done and not r.stopped]
        )

    def finish(self, token: str, pending: list[tuple[Member, Result]]) -> None:
        """Write final states, fenced by the lease: all in one transaction, or one by one after a
        model-version race with another worker."""
        try:
            self.retry(functools.partial(finish_all, self.url, token, pending))
        except IntegrityError:
            for member, result in pending:
                self.retry(functools.partial(finish_one, self.url, token, member, result))

    def record_epoch(self, token: str, members: list[Member], report: EpochReport, done: set[str]) -> list[int]:
        """Write each member's history row (fenced) and settle members that end here: lost
        (another worker or the reaper owns it now), diverged, cancelled, or handed back because
        this worker is shutting down. Returns the members the engine should drop."""
        drop: list[int] = []

        def write() -> None:
            drop.clear()
            with session_scope(self.url) as s:
                held = queue.add_epoch(s, token, {members[k].id: row for k, row in report.rows.items()})
                for k, row in report.rows.items():
                    job_id = members[k].id
                    if job_id not in held:
                        pass  # lost: another worker or the reaper owns it now
                    elif k in report.errors:
                        queue.fail(s, job_id, token, report.errors[k], params=row["params"])
                    elif held[job_id]:
                        queue.stop(s, job_id, token)
                    elif self.stopping.is_set():
                        queue.hand_back(s, job_id, token)
                    else:
                        continue
                    drop.append(k)
            done.update(members[k].id for k in drop)

        self.retry(write)
        return drop
