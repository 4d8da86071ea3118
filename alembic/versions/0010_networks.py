"""networks: datasets' column names and y width, history rows' metrics, artifacts' NumPy weights

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("datasets", sa.Column("columns", sa.JSON(), nullable=True))
    op.add_column("datasets", sa.Column("outputs", sa.Integer(), nullable=True))
    op.add_column("job_history", sa.Column("metrics", sa.JSON(), nullable=True))
    op.add_column("artifacts", sa.Column("weights", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    for table, column in (("artifacts", "weights"), ("job_history", "metrics"), ("datasets", "outputs")):
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("columns")
