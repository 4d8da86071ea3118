"""Model version numbers: a success becomes the next version of its model's name. Deleted versions
are stored negated and still count, so a number is never given twice."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.store.progress import JOBS


def next_version(job_id: Any) -> Any:
    """The next version number of the model that job `job_id` trains (a scalar subquery). Deleted
    versions are stored negated and still count, so a number is never given twice."""
    other = JOBS.alias("other")
    name = select(JOBS.c.model_name).where(JOBS.c.id == job_id).scalar_subquery()
    return (
        select(func.coalesce(func.max(func.abs(other.c.model_version)), 0) + 1)
        .where(other.c.model_name == name)
        .scalar_subquery()
    )


def versions(session: Session, job_ids: list[str]) -> dict[str, int]:
    """The next model version of each job in `job_ids`, in one query: after the highest version
    (deleted ones count, stored negated) of its model name; jobs of one name take the next
    numbers in submission order."""
    other = JOBS.alias("other")
    top = (
        select(func.coalesce(func.max(func.abs(other.c.model_version)), 0))
        .where(other.c.model_name == JOBS.c.model_name)
        .scalar_subquery()
    )
    rows = session.execute(
        select(JOBS.c.id, JOBS.c.model_name, top).where(JOBS.c.id.in_(job_ids)).order_by(JOBS.c.seq)
    ).all()
    taken: dict[str, int] = {}
    out = {}
    for job_id, name, highest in rows:
        taken[name] = taken.get(name, highest) + 1
        out[job_id] = taken[name]
    return out
