"""job_totals by statement: PostgreSQL's triggers sum a statement's rows once (transition tables),
and durations are counted by bucket, not cumulatively (app/ops/totals.py)

0009 now creates the totals in this form; this revision turns a database that 0009 made in its
first form (row triggers, cumulative `duration:le:*` keys) into it and counts the totals again.
Downgrading keeps this form (0009's, as it is now written).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

from app.ops import totals

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for statement in [*totals.drop(pg), *totals.recount(pg), *totals.create(pg)]:
        op.execute(statement)


def downgrade() -> None:
    pass  # 0009 makes the totals in this form now
