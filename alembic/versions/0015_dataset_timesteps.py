"""datasets.timesteps: the steps of a dataset of sequences, x of shape (n, timesteps, features)

Null for a table of rows, which every dataset stored before this revision is: 3-D x was refused
until sequences came with this revision. A single layer's job is checked against it at submission
(a layer acts on rows), so a job on sequences is a 422 instead of a failure in the worker.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("datasets", sa.Column("timesteps", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("datasets", "timesteps")  # a plain DROP COLUMN (SQLite 3.35+)
