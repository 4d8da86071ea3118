"""Expanding a sweep into jobs (all validated before any is created) and reporting on it."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import data as datalib
from app import pages
from app.datasets import service as datasets
from app.errors import BumpfitError, InvalidInput, NotFound, TooLarge, validation_details
from app.ids import new_id
from app.jobs import service as jobs
from app.jobs.models import FINISHED, Job
from app.jobs.schemas import InlineData, JobRequest, Progress
from app.queue import notify
from app.settings import Settings
from app.sweeps.models import Sweep
from app.sweeps.schemas import (
    SweepCreated,
    SweepList,
    SweepOut,
    SweepRequest,
    SweepRequestEcho,
    SweepRow,
    SweepSummary,
)


def expand(req: SweepRequest, limit: int) -> list[dict[str, Any]]:
    """The points of a sweep: the grid's cartesian product, or the listed points."""
    if req.points is not None:
        points = req.points
    else:
        grid = req.grid or {}
        size = 1
        for values in grid.values():
            size *= len(values)
        if size > limit:
            raise TooLarge.at("grid", f"makes {size} jobs, more than the sweep limit {limit}")
        points = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]
    if len(points) > limit:
        raise TooLarge.at("points", f"has {len(points)} jobs, more than the sweep limit {limit}")
    return points


def apply(base: dict[str, Any], point: dict[str, Any], where: str) -> dict[str, Any]:
    """A copy of `base` with each dotted path of `point` set."""
    out = copy.deepcopy(base)
    for path, value in point.items():
        keys = path.split(".")
        node: Any = out
        for k in keys[:-1]:
            if isinstance(node, list):  # a network's layers: `model.layers.1.sigma_init`
                node = _item(node, k, f"{where}.{path}")
            else:
                node = node.setdefault(k, {})
            if not isinstance(node, dict | list):
                raise InvalidInput.at(f"{where}.{path}", f"{k} is not an object in the base request")
        if isinstance(node, list):
            node[_index(node, keys[-1], f"{where}.{path}")] = value
        else:
            node[keys[-1]] = value
    return out


def _index(items: list[Any], key: str, where: str) -> int:
    """A list index from a path part, within the list."""
    if not key.isdigit() or int(key) >= len(items):
        raise InvalidInput.at(where, f"{key} is not an index of a list of {len(items)} items in the base request")
    return int(key)


def _item(items: list[Any], key: str, where: str) -> Any:
    """The list item a path part names."""
    return items[_index(items, key, where)]


def touches_data(points: list[dict[str, Any]]) -> bool:
    """True when some point sets a field of `data` (then each job's data is its own)."""
    return any(k == "data" or k.startswith("data.") for p in points for k in p)


def store_base_data(session: Session, base: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The base request with its inline data validated once and stored as one dataset, which every
    job of the sweep then references instead of carrying its own copy."""
    try:
        inline = InlineData.model_validate(base["data"])
    except ValidationError as exc:
        details = validation_details(exc.errors(), "base.data")
        raise InvalidInput(f"{details[0]['loc']}: {details[0]['msg']}", details=details) from None
    x, y = datalib.pair(inline.x, inline.y, "base.data", settings.max_inline_points, settings.max_features)
    ds = datasets.store_arrays(session, x, y, filename="inline data of a sweep")
    return {**base, "data": {"kind": "dataset", "id": ds.id}}


def create(session: Session, req: SweepRequest, settings: Settings) -> SweepCreated:
    """Validate every job of the sweep, then create them all in this transaction."""
    points = expand(req, settings.max_sweep_jobs)
    where = "points" if req.points is not None else "grid"
    base = req.base
    data = base.get("data")
    if isinstance(data, dict) and data.get("kind") == "inline" and not touches_data(points):
        base = store_base_data(session, base, settings)
    prepared = []
    for i, point in enumerate(points):
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
        prepared.append((job_req, spec, key, point))
    request = {**req.model_dump(mode="json"), "base": base}
    sweep = Sweep(id=new_id(), request=request, job_count=len(points))
    session.add(sweep)
    session.flush()  # the jobs reference it
    rows = [
        jobs.build_job(
            r, spec, key, settings, request_hash=jobs.digest(r.model_dump(mode="json")), sweep_id=sweep.id, point=point
        )
        for r, spec, key, point in prepared
    ]
    session.add_all(rows)
    session.flush()
    notify(session)
    return SweepCreated(id=sweep.id, jobs=[j.id for j in rows])


def get(session: Session, sweep_id: str, limit: int, page_token: str | None = None) -> SweepOut:
    """The sweep, its counts by status, and a page of rows in point order (every row while the
    sweep has at most `limit` jobs): plain column reads, no ORM objects, so 10,000 rows stay quick."""
    sweep = session.get(Sweep, sweep_id)
    if sweep is None:
        raise NotFound(f"no sweep with id {sweep_id!r}")
    after = -1
    if page_token is not None:
        if not page_token.isdigit() or int(page_token) >= 2**63:
            raise InvalidInput.at("page_token", "not a token returned by this endpoint")
        after = int(page_token)
    counts = dict(
        session.execute(select(Job.status, func.count()).where(Job.sweep_id == sweep_id).group_by(Job.status))
        .tuples()
        .all()
    )
    rows = session.execute(
        select(
            Job.seq, Job.id, Job.point, Job.status, Job.params, Job.metrics, Job.error, Job.progress_epoch, Job.epochs
        )
        .where(Job.sweep_id == sweep_id, Job.seq > after)
        .order_by(Job.seq)
        .limit(limit + 1)
    ).all()
    return SweepOut.model_construct(
        id=sweep.id,
        created_at=sweep.created_at,
        counts=counts,
        request=SweepRequestEcho(base=sweep.request["base"], grid=sweep.request.get("grid")),  # rows have the points
        done=all(status in FINISHED for status in counts),
        next_page_token=str(rows[limit - 1].seq) if len(rows) > limit else None,
        jobs=[
            SweepRow.model_construct(
                id=r.id,
                point=r.point or {},
                status=r.status,
                params=r.params,
                metrics=r.metrics,
                error=r.error,
                progress=Progress.model_construct(epoch=r.progress_epoch, epochs=r.epochs),
            )
            for r in rows[:limit]
        ],
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
