"""One worker process: register, claim fusable jobs, train them, write results fenced by lease."""

from __future__ import annotations

import functools
import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.errors import InvalidInput
from app.jobs.models import Job
from app.ops import service as workers
from app.settings import Settings
from app.store import dberrors, queue
from app.store.db import session_scope
from workers import exports, warmup
from workers.engine import BACKEND, EpochReport, Member, Result, default_device, train_group
from workers.members import load_member, retain
from workers.results import finish_all, finish_one, write_epoch
from workers.wakeups import Wakeups

log = logging.getLogger("bumpfit.worker")
T = TypeVar("T")
REAP_EVERY = 5.0  # seconds between looks for jobs whose worker died
DB_RETRY_SLEEP = 0.5  # first pause while the database is unreachable; doubles each try ...
DB_RETRY_MAX = 5.0  # ... up to this, so a worker notices the database back within seconds


class Stopping(Exception):
    """The worker is shutting down while the database is away: its group is left to the reaper."""


def backoff(tries: int) -> float:
    """Seconds to wait before try `tries + 1` of a database unit of work (exponential, jittered)."""
    return min(DB_RETRY_MAX, DB_RETRY_SLEEP * 2.0**tries) * random.uniform(0.5, 1.0)


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
        self.token: str | None = None
        self.current: list[str] = []
        # When this worker last met a database error: the reaper waits a lease after that, so the
        # workers that held jobs through an outage can renew their leases first.
        self.db_failed_at = -float("inf")
        self.wakeups = Wakeups(self.url, settings.poll_seconds, self.stopping)

    # -- plumbing -------------------------------------------------------------------------------

    def retry(self, fn: Callable[[], T]) -> T:
        """Run a database unit of work, waiting out an outage of any length with backoff: an outage
        pauses the worker (what it trained stays in memory), never fails a job. Raises Stopping
        if the worker is asked to stop while the database is away, and errors that are not an
        outage (a missing table, a bug) at once."""
        tries = 0
        while True:
            try:
                result = fn()
            except SQLAlchemyError as exc:
                if not dberrors.transient(exc):
                    if dberrors.schema_missing(exc):
                        log.error("%s (%s)", dberrors.MIGRATE_HINT, dberrors.summary(exc))
                    raise
                self.db_failed_at = time.monotonic()
                if self.stopping.is_set():
                    raise Stopping from exc
                if tries == 0:
                    log.warning("database unreachable (%s); waiting for it", dberrors.summary(exc))
                self.stopping.wait(backoff(tries))
                tries += 1
                continue
            if tries:
                log.info("database back after %d tries; carrying on", tries)
            return result

    def register(self, status: str) -> None:
        """Upsert this worker's row with its heartbeat."""

        def write() -> None:
            with session_scope(self.url) as s:
                workers.register(s, self.id, self.device, status, self.current)

        self.retry(write)

    def heartbeat_loop(self) -> None:
        """Renew leases and this worker's heartbeat several times per lease, whatever epochs take;
        through an outage it keeps trying, so a lease is renewed as soon as the database is back."""
        while not self.stopping.wait(self.settings.heartbeat_interval):
            if self.parent is not None and os.getppid() != self.parent:
                log.warning("bumpfit serve (pid %s) is gone; stopping", self.parent)
                self.stopping.set()
            try:
                token = self.token
                with session_scope(self.url) as s:
                    if token is not None:
                        queue.heartbeat(s, token, self.settings.lease_seconds)
                    workers.register(s, self.id, self.device, "busy" if self.current else "idle", self.current)
            except SQLAlchemyError as exc:
                self.db_failed_at = time.monotonic()
                if not dberrors.transient(exc):
                    log.error("heartbeat failed: %s", dberrors.summary(exc))
            except Exception:  # noqa: BLE001 - the heartbeat thread must outlive any one failure
                log.exception("heartbeat failed")

    @property
    def listener(self) -> Any:
        """The LISTEN connection, or None (`workers.wakeups`)."""
        return self.wakeups.listener

    def wait_for_work(self) -> None:
        """Sleep until woken or the poll interval passes (`Wakeups.wait`)."""
        self.wakeups.wait()

    def ensure_listening(self) -> None:
        """On PostgreSQL, (re)open the LISTEN connection, with backoff (`Wakeups.ensure_listening`)."""
        self.wakeups.ensure_listening()

    def close_listener(self) -> None:
        """Close the LISTEN connection, if any."""
        self.wakeups.close()

    # -- the loop -------------------------------------------------------------------------------

    def housekeep(self) -> None:
        """Reap expired leases and apply retention (finished jobs, then delivered events). After a
        database error the reaper waits a lease, so workers that held jobs through an outage renew
        their leases before anyone reaps them; a retention conflict (a label set meanwhile) waits
        for the next round."""
        if time.monotonic() - self.db_failed_at < self.settings.lease_seconds:
            return
        with session_scope(self.url) as s:
            counts = queue.reap(s)
        if any(counts.values()):
            log.info("reaped expired leases: %s", counts)
        if self.settings.retention_days is not None:
            retain(self.url, self.settings.retention_days)

    def claim(self) -> tuple[str, list[Job]]:
        """Claim the next group of fusable jobs this worker can run (none when the queue is empty)."""
        with session_scope(self.url) as s:
            token, jobs = queue.claim(s, self.id, self.accepts, self.settings.max_fuse, self.settings.lease_seconds)
            s.expunge_all()
        return token, jobs

    def run(self) -> None:
        """Claim and train until SIGTERM/SIGINT; no error of the database or of one group ends it."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        self.register("idle")
        beat = threading.Thread(target=self.heartbeat_loop, daemon=True, name="heartbeat")
        beat.start()
        warmup.start(self.url, self.device, self.settings.warmup_shapes, self.stopping)
        self.ensure_listening()
        last_reap = 0.0
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
                    self.retry(self.housekeep)
                    last_reap = time.monotonic()
                token, jobs = self.retry(self.claim)
            except Stopping:
                break
            except SQLAlchemyError as exc:  # not an outage (retry waits those out): say so, go on
                log.error("claim loop: %s; trying again", dberrors.summary(exc))
                self.stopping.wait(DB_RETRY_MAX)
                continue
            if not jobs:
                if self.export():
                    continue
                self.ensure_listening()
                self.wait_for_work()
                continue
            self.token, self.current = token, [j.id for j in jobs]
            try:
                self.run_group(token, jobs)
            except Stopping:
                log.warning("stopping while the database is away: the group goes back to the queue with its lease")
            except Exception:  # noqa: BLE001 - not the jobs' fault: the lease lapses, another try runs them
                log.exception("group of %d job(s) dropped; the reaper requeues them", len(jobs))
            finally:
                self.token, self.current = None, []
        self.close_listener()
        try:
            self.register("stopped")
        except (Stopping, SQLAlchemyError):
            log.warning("could not mark this worker stopped: the database is away")
        log.info("worker %s stopped", self.id)

    def export(self) -> bool:
        """Make one model export asked for through the API, between training groups."""
        try:
            return exports.run_one(self.url, self.settings.lease_seconds)
        except SQLAlchemyError as exc:  # the database is away: the next idle loop tries again
            log.warning("model export: %s", dberrors.summary(exc))
            return False

    def start_group(self, token: str, jobs: list[Job]) -> list[Member]:
        """Load the claimed jobs' data and mark the group started; a job's bad data fails only it."""
        members: list[Member] = []
        datasets: dict[str, tuple[Any, Any]] = {}
        with session_scope(self.url) as s:
            for job in jobs:
                try:
                    members.append(load_member(s, job, self.settings, datasets))
                except InvalidInput as exc:
                    queue.fail(s, job.id, token, {"type": "bad_input", "message": exc.message})
            queue.start_group(s, token, self.device)
        return members

    def run_group(self, token: str, jobs: list[Job]) -> None:
        """Load, train and finish one claimed group. An error of the training fails the group's jobs,
        once; an error of the database never does (it propagates: the group is dropped, its lease
        lapses and the reaper requeues it)."""
        members = self.retry(functools.partial(self.start_group, token, jobs))
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
        except (Stopping, SQLAlchemyError):
            raise  # the infrastructure's, never the jobs' error
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
        """Write the epoch's history rows and settle members that end here (`results.write_epoch`);
        returns the members the engine should drop."""
        tries = 0

        def write() -> list[int]:
            nonlocal tries
            tries += 1
            return write_epoch(self.url, token, members, report, again=tries > 1, stopping=self.stopping.is_set())

        drop = self.retry(write)
        done.update(members[k].id for k in drop)
        return drop
