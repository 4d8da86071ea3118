"""A group's final writes: every job's outcome, fenced by the group's lease."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from app import queue
from app.db import session_scope
from workers.engine import Member, Result


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
