"""datasets.inline: the dataset holds a job's or a sweep's inline data, and goes with its last job

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("datasets", sa.Column("inline", sa.Boolean(), server_default=sa.false(), nullable=False))
    # Before this column, inline data was stored under these two names, with the hash of the bytes
    # stored (an upload keeps its file's name and the hash of the file sent, not of the bytes stored:
    # one its user named "inline data" stays an upload). 0007 does the same check where the first
    # form of this backfill, which looked at the name alone, already ran.
    datasets = sa.table(
        "datasets",
        sa.column("id", sa.String),
        sa.column("filename", sa.String),
        sa.column("sha256", sa.String),
        sa.column("data", sa.LargeBinary),
        sa.column("inline", sa.Boolean),
    )
    conn = op.get_bind()
    named = sa.select(datasets.c.id).where(datasets.c.filename.in_(("inline data", "inline data of a sweep")))
    for dataset_id in list(conn.scalars(named)):
        sha256, data = conn.execute(
            sa.select(datasets.c.sha256, datasets.c.data).where(datasets.c.id == dataset_id)
        ).one()
        if hashlib.sha256(data).hexdigest() == sha256:
            conn.execute(sa.update(datasets).where(datasets.c.id == dataset_id).values(inline=True))


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("inline")
