"""model version labels

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_labels",
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_model_labels_job_id_jobs")),
        sa.PrimaryKeyConstraint("model_name", "label", name=op.f("pk_model_labels")),
    )
    op.create_index(op.f("ix_model_labels_job_id"), "model_labels", ["job_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_model_labels_job_id"), table_name="model_labels")
    op.drop_table("model_labels")
