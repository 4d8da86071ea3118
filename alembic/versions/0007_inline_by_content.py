"""datasets.inline from what a row holds, not its name: an upload named "inline data" is an upload

Revision 0005 marked every dataset named "inline data" or "inline data of a sweep" as inline data
(deleted with its last job). It can be told for sure: inline data is stored with the hash of the
bytes stored (`sha256 = sha256(data)`), an upload with the hash of the file its user sent, which
the service re-encodes before storing it. Rows marked inline whose hash is not that of their bytes
are uploads, and are unmarked here.

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-30
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DATASETS = sa.table(
    "datasets",
    sa.column("id", sa.String),
    sa.column("sha256", sa.String),
    sa.column("data", sa.LargeBinary),
    sa.column("inline", sa.Boolean),
)


def upgrade() -> None:
    conn = op.get_bind()
    marked = list(conn.scalars(sa.select(DATASETS.c.id).where(DATASETS.c.inline)))
    for dataset_id in marked:  # one row's bytes at a time: datasets can be large
        sha256, data = conn.execute(
            sa.select(DATASETS.c.sha256, DATASETS.c.data).where(DATASETS.c.id == dataset_id)
        ).one()
        if hashlib.sha256(data).hexdigest() != sha256:
            conn.execute(sa.update(DATASETS).where(DATASETS.c.id == dataset_id).values(inline=False))


def downgrade() -> None:
    pass  # nothing to undo: the rows unmarked were uploads
