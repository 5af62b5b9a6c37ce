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
    op.create_table(
        "custody_sweeps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("chain", sa.String(length=16), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("from_address", sa.String(length=128), nullable=False),
        sa.Column("to_address", sa.String(length=128), nullable=False),
        sa.Column("amount", node.db.types.BaseUnits(precision=78, scale=0), nullable=False),
        sa.Column("network_fee", node.db.types.BaseUnits(precision=78, scale=0), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("txid", sa.String(length=100), nullable=False),
        sa.Column("raw_tx", sa.Text(), nullable=False),
        sa.Column("created_at", node.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", node.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_sweeps")),
        sa.UniqueConstraint("txid", name=op.f("uq_custody_sweeps_txid")),
    )
    op.create_index(op.f("ix_custody_sweeps_status"), "custody_sweeps", ["status"], unique=False)
    op.create_table(
        "custody_addresses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("chain", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=128), nullable=False),
        sa.Column("script_hex", sa.String(length=68), nullable=True),
        sa.Column("path", sa.String(length=64), nullable=False),
        sa.Column("created_at", node.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_custody_addresses_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_addresses")),
        sa.UniqueConstraint("chain", "address", name=op.f("uq_custody_addresses_chain_address")),
        sa.UniqueConstraint("chain", "user_id", name=op.f("uq_custody_addresses_chain_user_id")),
    )
    op.create_index(
        op.f("ix_custody_addresses_user_id"), "custody_addresses", ["user_id"], unique=False
    )
    op.create_table(
        "custody_allowed_addresses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("chain", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=128), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=True),
        sa.Column("usable_from", node.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_at", node.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_custody_allowed_addresses_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_allowed_addresses")),
        sa.UniqueConstraint(
            "user_id",
            "chain",
            "address",
            name=op.f("uq_custody_allowed_addresses_user_id_chain_address"),
        ),
    )
    op.create_index(
        op.f("ix_custody_allowed_addresses_user_id"),
        "custody_allowed_addresses",
        ["user_id"],
        unique=False,
    )
    op.create_table(
        "custody_deposits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=128), nullable=False),
        sa.Column("txid", sa.String(length=100), nullable=False),
        sa.Column("output", sa.Integer(), nullable=False),
        sa.Column("amount", node.db.types.BaseUnits(precision=78, scale=0), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("credits", sa.Integer(), nullable=False),
        sa.Column("spent_txid", sa.String(length=100), nullable=True),
        sa.Column("created_at", node.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", node.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_custody_deposits_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_deposits")),
        sa.UniqueConstraint(
            "chain", "txid", "output", name=op.f("uq_custody_deposits_chain_txid_output")
        ),
    )
    op.create_index(
        op.f("ix_custody_deposits_user_id"), "custody_deposits", ["user_id"], unique=False
    )
    op.create_table(
        "custody_withdrawals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("request_key", sa.String(length=100), nullable=False),
        sa.Column("chain", sa.String(length=16), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=128), nullable=False),
        sa.Column("amount", node.db.types.BaseUnits(precision=78, scale=0), nullable=False),
        sa.Column("network_fee", node.db.types.BaseUnits(precision=78, scale=0), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("txid", sa.String(length=100), nullable=True),
        sa.Column("raw_tx", sa.Text(), nullable=True),
        sa.Column("nonce", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", node.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", node.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_custody_withdrawals_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_withdrawals")),
        sa.UniqueConstraint(
            "user_id", "request_key", name=op.f("uq_custody_withdrawals_user_id_request_key")
        ),
    )
    op.create_index(
        op.f("ix_custody_withdrawals_status"), "custody_withdrawals", ["status"], unique=False
    )
    op.create_index(
        op.f("ix_custody_withdrawals_user_id"), "custody_withdrawals", ["user_id"], unique=False
    )

    op.create_table(
        "custody_observations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("credited", node.db.types.BaseUnits(precision=78, scale=0), nullable=False),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", node.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_custody_observations_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_observations")),
        sa.UniqueConstraint(
            "chain", "account", "asset", name=op.f("uq_custody_observations_chain_account_asset")
        ),
    )
    op.create_index(
        op.f("ix_custody_observations_user_id"), "custody_observations", ["user_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_custody_observations_user_id"), table_name="custody_observations")
    op.drop_table("custody_observations")
    op.drop_index(op.f("ix_custody_withdrawals_user_id"), table_name="custody_withdrawals")
    op.drop_index(op.f("ix_custody_withdrawals_status"), table_name="custody_withdrawals")
    op.drop_table("custody_withdrawals")
    op.drop_index(op.f("ix_custody_deposits_user_id"), table_name="custody_deposits")
    op.drop_table("custody_deposits")
    op.drop_index(
        op.f("ix_custody_allowed_addresses_user_id"), table_name="custody_allowed_addresses"
    )
    op.drop_table("custody_allowed_addresses")
    op.drop_index(op.f("ix_custody_addresses_user_id"), table_name="custody_addresses")
    op.drop_table("custody_addresses")
    op.drop_index(op.f("ix_custody_sweeps_status"), table_name="custody_sweeps")
    op.drop_table("custody_sweeps")
    op.drop_table("custody_balances")
    op.drop_index(op.f("ix_custody_legs_entry_id"), table_name="custody_legs")
    op.drop_index("ix_custody_legs_account_asset", table_name="custody_legs")
    op.drop_table("custody_legs")
    op.drop_table("custody_entries")
