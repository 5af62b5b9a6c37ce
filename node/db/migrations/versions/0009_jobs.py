"""Fleet: claimed jobs and process bookkeeping.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import node.db.types

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TS = node.db.types.UtcDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ops_jobs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("every_s", sa.Float(), nullable=False),
        sa.Column("next_run_at", UTC_TS, nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("last_started_at", UTC_TS, nullable=True),
        sa.Column("last_finished_at", UTC_TS, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_owner", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ops_jobs")),
    )


def downgrade() -> None:
    op.drop_table("ops_jobs")
