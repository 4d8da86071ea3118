"""A group's final writes: every job's outcome, fenced by the group's lease."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from app.store import queue
from app.store.db import session_scope
from workers.engine import EpochReport, Member, Result


def finish_all(url: str, token: str, pending: list[tuple[Member, Result]]) -> None:
    """Write a group's final states in one transaction: successes in two multi-row statements."""
    with session_scope(url) as s:
        queue.succeed_many(
            s,
            token,
            {
                m.id: {
                    "params": r.params,
                    "metrics": r.metrics,
                    "warnings": r.warnings,
                    "artifact": r.artifact,
                    "weights": r.weights_blob,
                    "stopped_epoch": r.stopped_epoch,
                }
                for m, r in pending
                if not r.error
            },
        )
        for m, r in pending:
            if r.error:
                queue.fail(s, m.id, token, r.error, params=r.params or None, warnings=r.warnings)


def finish_one(url: str, token: str, member: Member, result: Result) -> None:
    """Write a member's final state; a model-version race is retried."""
    for _ in range(5):
        try:
            with session_scope(url) as s:
                if result.error:
                    queue.fail(
                        s, member.id, token, result.error, params=result.params or None, warnings=result.warnings
                    )
                else:
                    queue.finish(
                        s,
                        member.id,
                        token,
                        params=result.params,
                        metrics=result.metrics,
                        warnings=result.warnings,
                        artifact=result.artifact,
                        weights=result.weights_blob,
                        stopped_epoch=result.stopped_epoch,
                    )
            return
        except IntegrityError:
            continue  # another job of the same model name took this version number
    raise RuntimeError(f"could not assign a model version to job {member.id}")


def write_epoch(
    url: str, token: str, members: list[Member], report: EpochReport, again: bool, stopping: bool
) -> list[int]:
    """Write each member's history row (fenced) and settle members that end here: lost (another
    worker or the reaper owns it now), diverged, cancelled, or handed back because this worker is
    `stopping`. Returns the members the engine should drop; `again` when retrying the write."""
    drop: list[int] = []
    with session_scope(url) as s:
        rows = {members[k].id: row for k, row in report.rows.items()}
        held = queue.add_epoch(s, token, rows, again=again)
        for k in report.rows:
            job_id = members[k].id
            if job_id not in held:
                pass  # lost: another worker or the reaper owns it now
            elif k in report.errors:
                queue.fail(s, job_id, token, report.errors[k], params=report.rows[k]["params"])
            elif held[job_id]:
                queue.stop(s, job_id, token)
            elif stopping:
                queue.hand_back(s, job_id, token)
            else:
                continue
            drop.append(k)
    return drop
