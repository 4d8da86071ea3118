"""owner: who made a job, a dataset or a webhook, for the limits per caller; datasets.sha256 indexed

`owner` is the caller of the request that made the row (app.http.auth.Caller.id): `key:<first 8 hex of
the API key's hash>`, or `addr:<client address>` where keys are off; null for rows made before this
revision, which no caller's caps count. The caps (BUMPFIT_MAX_QUEUED_JOBS, BUMPFIT_MAX_WEBHOOKS,
BUMPFIT_MAX_DATASET_BYTES) count a caller's rows by it. An upload finds an earlier upload with the same
content by its hash (ix_datasets_sha256) and returns it instead of storing the bytes again.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("jobs", "datasets", "webhooks")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("owner", sa.String(64), nullable=True))
    op.create_index("ix_datasets_sha256", "datasets", ["sha256"])


def downgrade() -> None:
    op.drop_index("ix_datasets_sha256", table_name="datasets")
    for table in TABLES:  # a plain DROP COLUMN (SQLite 3.35+): a batch copy would lose the jobs triggers
        op.drop_column(table, "owner")
