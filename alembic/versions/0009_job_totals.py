"""job_totals: running totals of the jobs for /metrics, kept by triggers (app/ops/totals.py)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.ops import totals

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_totals",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_job_totals")),
    )
    pg = op.get_bind().dialect.name == "postgresql"
    for statement in [*totals.recount(pg), *totals.create(pg)]:
        op.execute(statement)


def downgrade() -> None:
    for statement in totals.drop(op.get_bind().dialect.name == "postgresql"):
        op.execute(statement)
    op.drop_table("job_totals")
