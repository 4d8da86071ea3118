"""datasets.inline: the dataset holds a job's or a sweep's inline data, and goes with its last job

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("datasets", sa.Column("inline", sa.Boolean(), server_default=sa.false(), nullable=False))
    # Before this column, inline data was stored under these two names (an upload keeps its file's name).
    op.execute("UPDATE datasets SET inline = true WHERE filename IN ('inline data', 'inline data of a sweep')")


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("inline")
