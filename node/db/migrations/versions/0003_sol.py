"""Solana escrows: the multisig + escrow token account of a trade, the
balance movements the watcher saw, and payout renderings collecting signatures.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import node.db.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sol_escrows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("p2p_escrow_id", sa.Integer(), nullable=False),
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("genesis_hash", sa.String(length=64), nullable=False),
        sa.Column("trade_ref", sa.String(length=66), nullable=False),
        sa.Column("mint", sa.String(length=64), nullable=False),
        sa.Column("decimals", sa.Integer(), nullable=False),
        sa.Column("token_program", sa.String(length=64), nullable=False),
        sa.Column("multisig", sa.String(length=64), nullable=False),
        sa.Column("escrow_token_account", sa.String(length=64), nullable=False),
        sa.Column("multisig_seed", sa.String(length=32), nullable=False),
        sa.Column("escrow_seed", sa.String(length=32), nullable=False),
        sa.Column("observed_slot", sa.BigInteger(), nullable=True),
        sa.Column("observed_exists", sa.Boolean(), nullable=False),
        sa.Column("observed_owner", sa.String(length=64), nullable=True),
        sa.Column("observed_mint", sa.String(length=64), nullable=True),
        sa.Column(
            "observed_amount", node.db.types.BaseUnits(precision=78, scale=0), nullable=False
        ),
        sa.Column("buyer_paid_signature", sa.String(length=100), nullable=True),
        sa.Column("buyer_paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dispute_signature", sa.String(length=100), nullable=True),
        sa.Column("disputed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["p2p_escrow_id"],
            ["p2p_crypto_escrows.id"],
            name=op.f("fk_sol_escrows_p2p_escrow_id_p2p_crypto_escrows"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sol_escrows")),
        sa.UniqueConstraint(
            "escrow_token_account", name=op.f("uq_sol_escrows_escrow_token_account")
        ),
        sa.UniqueConstraint("p2p_escrow_id", name=op.f("uq_sol_escrows_p2p_escrow_id")),
    )
    op.create_table(
        "sol_movements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sol_escrow_id", sa.Integer(), nullable=False),
        sa.Column("signature", sa.String(length=100), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("amount_in", node.db.types.BaseUnits(precision=78, scale=0), nullable=False),
        sa.Column("amount_out", node.db.types.BaseUnits(precision=78, scale=0), nullable=False),
        sa.Column("to_buyer", node.db.types.BaseUnits(precision=78, scale=0), nullable=False),
        sa.Column("to_seller", node.db.types.BaseUnits(precision=78, scale=0), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["sol_escrow_id"],
            ["sol_escrows.id"],
            name=op.f("fk_sol_movements_sol_escrow_id_sol_escrows"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sol_movements")),
        sa.UniqueConstraint(
            "sol_escrow_id", "signature", name=op.f("uq_sol_movements_sol_escrow_id_signature")
        ),
    )
    op.create_index(
        op.f("ix_sol_movements_sol_escrow_id"), "sol_movements", ["sol_escrow_id"], unique=False
    )
    op.create_table(
        "sol_payouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sol_escrow_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("buyer_bps", sa.Integer(), nullable=True),
        sa.Column("cosigners", sa.String(length=200), nullable=False),
        sa.Column("blockhash", sa.String(length=64), nullable=False),
        sa.Column("last_valid_block_height", sa.BigInteger(), nullable=False),
        sa.Column("transaction", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tx_signature", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["sol_escrow_id"],
            ["sol_escrows.id"],
            name=op.f("fk_sol_payouts_sol_escrow_id_sol_escrows"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sol_payouts")),
    )
    op.create_index(
        op.f("ix_sol_payouts_sol_escrow_id"), "sol_payouts", ["sol_escrow_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sol_payouts_sol_escrow_id"), table_name="sol_payouts")
    op.drop_table("sol_payouts")
    op.drop_index(op.f("ix_sol_movements_sol_escrow_id"), table_name="sol_movements")
    op.drop_table("sol_movements")
    op.drop_table("sol_escrows")
