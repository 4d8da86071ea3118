"""Expanding a sweep into jobs (all validated before any is created) and reporting on it."""

from __future__ import annotations

import threading
from typing import Any

import orjson
from cachetools import LRUCache
from pydantic import ValidationError
from sqlalchemy import Text, cast, func, literal_column, select
from sqlalchemy.orm import Session

from app.datasets import service as datasets
from app.errors import BumpfitError, InvalidInput, NotFound
from app.http.auth import Caller
from app.http.validation import validation_details
from app.jobs import netprep
from app.jobs import service as jobs
from app.jobs.fingerprints import fingerprint
from app.jobs.models import FINISHED, Job
from app.jobs.schemas import InlineData, JobRequest
from app.model import data as datalib
from app.model import plan
from app.settings import Settings
from app.store import bulk, caps, pages
from app.store.db import utcnow
from app.store.ids import new_id
from app.store.progress import JOBS
from app.store.queue import notify
from app.store.wake import is_postgres
from app.sweeps.grid import apply, expand, touches_data
from app.sweeps.models import Sweep
from app.sweeps.schemas import (
    SweepCreated,
    SweepList,
    SweepOut,
    SweepRequest,
    SweepRequestEcho,
    SweepSummary,
)

CHUNK = 10_000  # jobs prepared and inserted at a time: a 100,000-job sweep never holds every row at once
# A sweep's job rows, inserted in one statement a chunk (app.store.bulk): each column and its type there.
JOB_COLUMNS = {
    **dict.fromkeys(["id", "status", "fuse_key", "device_request", "model_name", "request_hash"], "text"),
    **dict.fromkeys(["epochs", "max_attempts", "progress_epoch", "attempts"], "int"),
    **dict.fromkeys(["spec", "point", "warnings"], "json"),
    "cancel_requested": "bool",
}


def store_base_data(session: Session, base: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The base request with its inline data validated once (as a network's when the base has a
    `model`: y as wide as its target) and stored as one dataset, which every job of the sweep then
    references instead of carrying its own copy; the data's other fields (`normalize` ...) stay."""
    try:
        inline = InlineData.model_validate(base["data"])
    except ValidationError as exc:
        details = validation_details(exc.errors(), "base.data")
        raise InvalidInput(f"{details[0]['loc']}: {details[0]['msg']}", details=details) from None
    if plan.is_network(base):
        x, y = netprep.inline_arrays(inline.x, inline.y, "base.data", settings)
    else:
        n, features, cells = settings.max_inline_points, settings.max_features, settings.max_cells
        x, y = datalib.pair(inline.x, inline.y, "base.data", n, features, max_cells=cells)
    ds = datasets.store_arrays(session, x, y, filename="inline data of a sweep")
    return {**base, "data": datasets.reference(base["data"], ds)}


def create(session: Session, req: SweepRequest, settings: Settings, caller: Caller | None = None) -> SweepCreated:
    """Validate every job of the sweep and create them for `caller` (within its
    BUMPFIT_MAX_QUEUED_JOBS), CHUNK at a time, in this transaction: a point that fails validation
    raises and the transaction creates nothing."""
    points = expand(req, settings.max_sweep_jobs)
    if caller is not None:
        caps.check_queued(session, caller, len(points), settings.max_queued_jobs)
    owner = caller.id if caller is not None else None
    where = "points" if req.points is not None else "grid"
    base = req.base
    data = base.get("data")
    if isinstance(data, dict) and data.get("kind") == "inline" and not touches_data(points):
        base = store_base_data(session, base, settings)
    # Stored without its points: each job keeps its own (`point`), so a read of the sweep does not
    # parse them all again to echo the base and the grid.
    request = {"base": base, "grid": req.grid}
    sweep = Sweep(id=new_id(), request=request, job_count=len(points))
    session.add(sweep)
    session.flush()  # the jobs reference it
    created_at, ids = utcnow(), []
    for start in range(0, len(points), CHUNK):
        rows = [
            job_row(session, base, point, i, where, settings)
            for i, point in enumerate(points[start : start + CHUNK], start)
        ]
        bulk.insert_rows(session, JOBS, JOB_COLUMNS, rows, sweep_id=sweep.id, created_at=created_at, owner=owner)
        ids += [r["id"] for r in rows]
    notify(session)
    return SweepCreated(id=sweep.id, jobs=ids)


def job_row(
    session: Session, base: dict[str, Any], point: dict[str, Any], i: int, where: str, settings: Settings
) -> dict[str, Any]:
    """Point i's job, validated and prepared, as the column values `JOB_COLUMNS` names; a 4xx
    error naming the point when it is not a valid job."""
    label = f"{where}[{i}]" if where == "points" else f"grid point {i} {point}"
    try:
        job_req = JobRequest.model_validate(apply(base, point, label))
        spec, key = jobs.prepare(session, job_req, settings)
    except ValidationError as exc:
        details = validation_details(exc.errors())
        raise InvalidInput(
            f"{label}: {details[0]['loc']}: {details[0]['msg']}", details=[{"point": i, **d} for d in details]
        ) from None
    except BumpfitError as exc:
        raise type(exc)(f"{label}: {exc.message}", details={"point": i, "error": exc.details}) from None
    row = jobs.job_values(job_req, spec, key, settings, request_hash=fingerprint(job_req), point=point)
    del row["created_at"]  # one time for the sweep's jobs, bound once
    return row


class Answers:
    """Finished sweeps' whole answers as sent, by sweep id and `answer_version` (which a trigger
    raises whenever a finished job of the sweep changes or is deleted), dropping the least recently
    used past `max_bytes`: a finished sweep's rows are read and its answer built once per version
    and API process. Each process keeps its own and checks the version in the database each time."""

    def __init__(self, max_bytes: int) -> None:
        self._bodies: LRUCache[tuple[str, int], tuple[bytes, int]] = LRUCache(max_bytes, getsizeof=lambda v: len(v[0]))
        self._lock = threading.Lock()

    def get(self, sweep_id: str, version: int, limit: int) -> bytes | None:
        """The answer kept at `version`, if it holds at most `limit` rows."""
        with self._lock:
            body, rows = self._bodies.get((sweep_id, version), (None, 0))
        return body if rows <= limit else None

    def put(self, sweep_id: str, version: int, body: bytes, rows: int) -> None:
        """Keep a finished sweep's whole answer of `rows` rows, built from rows read after `version`."""
        if len(body) <= self._bodies.maxsize:
            with self._lock:
                self._bodies[sweep_id, version] = (body, rows)


def get(
    session: Session,
    sweep_id: str,
    limit: int,
    page_token: str | None = None,
    stride: int = 1,
    answers: Answers | None = None,
) -> bytes:
    """The sweep (`SweepOut` as JSON): its counts by status and a page of rows in point order
    (every row while the sweep has at most `limit` jobs; with `stride` k, every k-th job from the
    first, a sample spread over the whole sweep). The database builds each row's JSON from
    the stored columns and the rows are spliced into the answer (an orjson fragment): nothing is
    decoded and encoded again. A finished sweep's whole answer is kept in `answers` and sent from
    there while the sweep's `answer_version` stays what it was when its rows were read."""
    # The stored request holds every point: only its base and grid are read (the rows have the points).
    # The version is read before the rows: a change after it raises it, so the rows are at least as new.
    sweep = session.execute(
        select(Sweep.id, Sweep.created_at, Sweep.request["base"], Sweep.request["grid"], Sweep.answer_version).where(
            Sweep.id == sweep_id
        )
    ).first()
    if sweep is None:
        raise NotFound(f"no sweep with id {sweep_id!r}")
    keep = answers if page_token is None and stride == 1 else None  # only a whole answer is kept
    kept = None if keep is None else keep.get(sweep_id, sweep[4], limit)
    if kept is not None:
        return kept
    after = -1 if page_token is None else pages.seq_after(page_token)
    counts = dict(
        session.execute(select(Job.status, func.count()).where(Job.sweep_id == sweep_id).group_by(Job.status))
        .tuples()
        .all()
    )
    stmt = select(Job.seq, row_json(session)).where(Job.sweep_id == sweep_id, Job.seq > after)
    if stride > 1:  # each job's position in the sweep, then every stride-th one's row
        position = func.row_number().over(order_by=Job.seq) - 1
        picked = select(Job.seq, position.label("pos")).where(Job.sweep_id == sweep_id).subquery()
        stmt = stmt.join(picked, picked.c.seq == Job.seq).where(picked.c.pos % stride == 0)
    # Core rows: each job's JSON object built by the database
    rows = session.connection().execute(stmt.order_by(Job.seq).limit(limit + 1)).all()
    done = all(status in FINISHED for status in counts)
    envelope = SweepOut.model_construct(
        id=sweep[0],
        created_at=sweep[1],
        counts=counts,
        request=SweepRequestEcho(base=sweep[2], grid=sweep[3]),
        done=done,
        next_page_token=str(rows[limit - 1].seq) if len(rows) > limit else None,
        jobs=[],
    ).model_dump(mode="json")
    envelope["jobs"] = orjson.Fragment("[" + ",".join(r[1] for r in rows[:limit]) + "]")
    body = orjson.dumps(envelope)
    if keep is not None and done and len(rows) <= limit:
        keep.put(sweep_id, sweep[4], body, len(rows))
    return body


def row_json(session: Session) -> Any:
    """A job's `SweepRow` as JSON text, built by the database from the stored columns. PostgreSQL
    splices the text of its `json` columns (which it validated when they were written) between the
    keys: no JSON function runs per row (`json_build_object` took three times as long). The id
    (hex) and the status (one of five words) need no escaping. SQLite's TEXT columns are checked
    as they are embedded (`json()`)."""
    if is_postgres(session):

        def raw(c: Any, empty: str) -> Any:
            return func.coalesce(cast(c, Text), literal_column(f"'{empty}'"))

        parts = [
            '{"id":"', Job.id, '","point":', raw(Job.point, "{}"), ',"status":"', Job.status, '","params":',
            raw(Job.params, "null"), ',"metrics":', raw(Job.metrics, "null"), ',"error":', raw(Job.error, "null"),
            ',"progress":{"epoch":', cast(Job.progress_epoch, Text), ',"epochs":', cast(Job.epochs, Text), "}}",
        ]  # fmt: skip
        return func.concat(*parts)
    progress = func.json_object("epoch", Job.progress_epoch, "epochs", Job.epochs)
    return cast(
        func.json_object(
            "id",
            Job.id,
            "point",
            func.coalesce(func.json(Job.point), func.json("{}")),
            "status",
            Job.status,
            "params",
            func.json(Job.params),
            "metrics",
            func.json(Job.metrics),
            "error",
            func.json(Job.error),
            "progress",
            progress,
        ),
        Text,
    )


def list_sweeps(session: Session, limit: int, page_token: str | None) -> SweepList:
    """A page of sweeps, newest first, with their jobs counted by status in one query."""
    stmt = select(Sweep.id, Sweep.created_at, Sweep.job_count)
    rows = session.execute(pages.after(stmt, Sweep.created_at, Sweep.id, page_token).limit(limit + 1)).all()
    page = rows[:limit]
    counts: dict[str, dict[str, int]] = {}
    if page:
        by_status = select(Job.sweep_id, Job.status, func.count()).where(Job.sweep_id.in_([r.id for r in page]))
        for sweep_id, status, n in session.execute(by_status.group_by(Job.sweep_id, Job.status)).tuples():
            counts.setdefault(str(sweep_id), {})[status] = n
    last = rows[limit - 1] if len(rows) > limit else None
    return SweepList(
        sweeps=[
            SweepSummary(
                id=r.id,
                created_at=r.created_at,
                job_count=r.job_count,
                counts=counts.get(r.id, {}),
                done=all(status in FINISHED for status in counts.get(r.id, {})),
            )
            for r in page
        ],
        next_page_token=pages.token(last.created_at, last.id) if last is not None else None,
    )
