"""sweeps.answer_version: raised by a trigger whenever a finished job of the sweep changes or goes

The API keeps a finished sweep's whole `GET /v1/sweeps/{id}` answer in memory and sends it again
while the sweep's answer_version is the one it was built at (app.sweeps.service.Answers). A job
finishes once, so a finished sweep's answer changes only when a finished job of it is updated or
deleted. PostgreSQL runs its row triggers only for rows that pass their WHEN clause: a running
job's epoch updates never call them.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FINISHED = "'succeeded', 'failed', 'cancelled'"
RAISE = "UPDATE sweeps SET answer_version = answer_version + 1 WHERE id = OLD.sweep_id"
WHEN = {"UPDATE": f"OLD.sweep_id IS NOT NULL AND OLD.status IN ({FINISHED})", "DELETE": "OLD.sweep_id IS NOT NULL"}


def upgrade() -> None:
    op.add_column("sweeps", sa.Column("answer_version", sa.Integer(), server_default=sa.text("0"), nullable=False))
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:
        op.execute(
            "CREATE FUNCTION sweep_answer_stale() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN\n  {RAISE};\n  RETURN NULL;\nEND\n$$"
        )
    for event, when in WHEN.items():
        name = f"sweep_answer_{event.lower()}"
        if pg:
            op.execute(
                f"CREATE TRIGGER {name} AFTER {event} ON jobs FOR EACH ROW WHEN ({when}) "
                "EXECUTE FUNCTION sweep_answer_stale()"
            )
        else:
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON jobs FOR EACH ROW WHEN {when}\nBEGIN\n  {RAISE};\nEND")


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for event in WHEN:
        op.execute(f"DROP TRIGGER sweep_answer_{event.lower()}" + (" ON jobs" if pg else ""))
    if pg:
        op.execute("DROP FUNCTION sweep_answer_stale()")
    with op.batch_alter_table("sweeps") as batch:
        batch.drop_column("answer_version")
