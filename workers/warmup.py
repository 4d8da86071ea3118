"""A worker's start-up warm-up: compile, in the background, the group shapes this deployment has
trained most often lately (and the default job's), so that the jobs after a start or a restart do
not wait for XLA. A job whose shape is being warmed waits for that compile instead of starting a
second one; other jobs go ahead at once.

The warm-up is chosen by device kind: a GPU compiles while its host's cores are free, but on a
CPU the compile takes the cores the first jobs train on (the seed's table through the API on a
2-core host: 11.5-11.7 s without the warm-up, 13.2-14.3 s with it, docs/benchmarks-scale.md), so
a CPU worker warms only on hosts with at least CPU_WARMUP_CORES cores, and leans on the
persistent compilation cache (BUMPFIT_COMPILE_CACHE_DIR) after a restart instead."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.jobs.models import Job
from app.jobs.schemas import JobRequest
from app.model import plan
from app.store.db import session_scope
from workers.engine import export
from workers.engine.factory import compiled_for
from workers.engine.step import Signature, signature
from workers.layers import layer_for

log = logging.getLogger("bumpfit.worker")
RECENT_JOBS = 5000  # the latest started jobs (by submission) that are looked at: an index scan
RECENT_GROUPS = 200  # ... and the latest groups among them whose shapes count
CPU_WARMUP_CORES = 4  # a CPU worker on fewer cores does not warm up: the compile would slow its first jobs
MAX_VALUES = 2**24  # skip shapes whose data take more than this many floats per array (64 MB)
DEFAULT_SPEC = JobRequest.model_validate({"data": {"kind": "synthetic"}}).model_dump(mode="json")


def spec_signature(spec: dict[str, Any], k: int, device: str) -> Signature:
    """The signature of a group of k jobs of this stored spec: a network's (its architecture, and
    its data's rows, features and target columns) or a single layer's."""
    d = spec["data"]
    outputs = d["outputs"] if plan.is_network(spec) else None
    return signature(spec, k, d["n"], d["features"], device, outputs, d.get("timesteps", 0))


def shapes(session: Session, device: str, count: int) -> list[Signature]:
    """Up to `count` signatures to warm: the most frequent among the latest groups first, the later
    first among equals (a group is the jobs one claim started together: one worker, one
    `started_at`), then the default job's."""
    latest = (
        select(Job.id, Job.worker, Job.started_at)
        .where(Job.started_at.is_not(None))
        .order_by(Job.seq.desc())
        .limit(RECENT_JOBS)
        .subquery()
    )
    groups = session.execute(
        select(func.min(latest.c.id), func.count())
        .group_by(latest.c.worker, latest.c.started_at)
        .order_by(latest.c.started_at.desc())
        .limit(RECENT_GROUPS)
    ).all()
    specs: dict[str, Any] = dict(
        session.execute(select(Job.id, Job.spec).where(Job.id.in_([g[0] for g in groups]))).tuples().all()
    )
    seen: Counter[Signature] = Counter()
    for job_id, k in groups:
        try:
            seen[spec_signature(specs[job_id], k, device)] += 1
        except (KeyError, TypeError):  # a row from before `data.n`/`features` were stored
            continue
    default = signature(DEFAULT_SPEC, 1, DEFAULT_SPEC["data"]["n"], 1, device)
    ordered = [sig for sig, _ in seen.most_common()] + [default]
    small = [s for s in dict.fromkeys(ordered) if s.k * max(s.n_train, s.n_val) * s.features <= MAX_VALUES]
    return small[:count]


def warm(sig: Signature) -> None:
    """Compile `sig`'s epoch and evaluation, and build a single layer's `.keras` template."""
    compiled_for(sig, warm=True)
    if sig.layer_type == "network":  # a network's template is built by its group's first artifact: the signature does
        return  # not say which statistics (data.normalize, normalize_target) its model holds
    params = {name: 0.0 for name in layer_for(sig.layer_type).PARAMS}
    export.artifact(sig.layer_type, sig.features, sig.per_feature, params)


def worth_warming(device: str, cores: int) -> bool:
    """Whether a worker on `device` with `cores` host cores warms up: a GPU always, a CPU only
    with CPU_WARMUP_CORES cores or more."""
    return not device.upper().startswith("CPU") or cores >= CPU_WARMUP_CORES


def start(
    url: str, device: str, count: int, stopping: threading.Event, cores: int | None = None
) -> threading.Thread | None:
    """Warm up to `count` shapes in a daemon thread (none when `count` is 0, or where it does not
    pay on this device: `worth_warming`, with this host's cores by default); errors are logged."""
    cores = (os.cpu_count() or 1) if cores is None else cores
    if count <= 0:
        return None
    if not worth_warming(device, cores):
        log.info("no warm-up on %s with %d cores: it would slow the first jobs", device, cores)
        return None

    def run() -> None:
        started = time.perf_counter()
        try:
            with session_scope(url) as s:
                todo = shapes(s, device, count)
            for sig in todo:
                if stopping.is_set():
                    return
                warm(sig)
            log.info("warmed %d shape(s) in %.2f s", len(todo), time.perf_counter() - started)
        except Exception:  # noqa: BLE001 - a failed warm-up only means the first job compiles
            log.exception("warm-up failed; shapes compile on first use")

    thread = threading.Thread(target=run, daemon=True, name="warm-up")
    thread.start()
    return thread
