"""Custody: deposit addresses, the double-entry ledger, holds, withdrawals, sweeps.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import node.db.models_custody
import node.db.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Signed = node.db.models_custody.SignedUnits
Utc = node.db.types.UtcDateTime


def upgrade() -> None:
    op.create_table(
        "custody_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", Utc(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_entries")),
        sa.UniqueConstraint("ref", name=op.f("uq_custody_entries_ref")),
    )
    op.create_table(
        "custody_legs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=120), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("amount", Signed(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["custody_entries.id"],
            name=op.f("fk_custody_legs_entry_id_custody_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_legs")),
    )
    op.create_index("ix_custody_legs_account_asset", "custody_legs", ["account", "asset"])
    op.create_index(op.f("ix_custody_legs_entry_id"), "custody_legs", ["entry_id"])
    op.create_table(
        "custody_balances",
        sa.Column("account", sa.String(length=120), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("balance", Signed(), nullable=False),
        sa.Column("updated_at", Utc(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account", "asset", name=op.f("pk_custody_balances")),
    )


def downgrade() -> None:
    op.drop_table("custody_balances")
    op.drop_index(op.f("ix_custody_legs_entry_id"), table_name="custody_legs")
    op.drop_index("ix_custody_legs_account_asset", table_name="custody_legs")
    op.drop_table("custody_legs")
    op.drop_table("custody_entries")
