"""Marketplace: payment methods, verification, reputation, prices.

Revision ID: 0005
Revises: 0004

Only new tables (create/drop), so the same operations work on SQLite.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import node.db.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "p2p_price_quotes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("base", sa.String(length=16), nullable=False),
        sa.Column("quote", sa.String(length=8), nullable=False),
        sa.Column("price", sa.Numeric(precision=36, scale=12), nullable=False),
        sa.Column("observed_at", node.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("fetched_at", node.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_p2p_price_quotes")),
        sa.UniqueConstraint(
            "source", "base", "quote", name=op.f("uq_p2p_price_quotes_source_base_quote")
        ),
    )
    op.create_index("ix_p2p_price_quotes_pair", "p2p_price_quotes", ["base", "quote"], unique=False)
    op.create_table(
        "p2p_crypto_payment_methods",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("payment_type", sa.String(length=32), nullable=False),
        sa.Column("payment_provider", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("payment_details", sa.Text(), nullable=True),
        sa.Column("account_name", sa.Text(), nullable=True),
        sa.Column("account_number", sa.Text(), nullable=True),
        sa.Column("account_number_last4", sa.String(length=4), nullable=True),
        sa.Column("bank_name", sa.String(length=128), nullable=True),
        sa.Column("country_code", sa.String(length=2), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("is_verified", sa.Boolean(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", node.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", node.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_p2p_crypto_payment_methods_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_p2p_crypto_payment_methods")),
    )
    op.create_index(
        op.f("ix_p2p_crypto_payment_methods_user_id"),
        "p2p_crypto_payment_methods",
        ["user_id"],
        unique=False,
    )
    op.create_table(
        "p2p_user_reputation",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("total_trade_count", sa.Integer(), nullable=False),
        sa.Column("completed_trade_count", sa.Integer(), nullable=False),
        sa.Column("trade_completion_rate", sa.Numeric(precision=5, scale=4), nullable=True),
        sa.Column("trade_volume_30d", sa.JSON(), nullable=False),
        sa.Column("trade_volume_90d", sa.JSON(), nullable=False),
        sa.Column("disputes_opened", sa.Integer(), nullable=False),
        sa.Column("disputes_won", sa.Integer(), nullable=False),
        sa.Column("disputes_lost", sa.Integer(), nullable=False),
        sa.Column("median_release_s", sa.Integer(), nullable=True),
        sa.Column("reputation_score", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("trusted_seller", sa.Boolean(), nullable=False),
        sa.Column("last_trade_at", node.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("computed_at", node.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_p2p_user_reputation_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_p2p_user_reputation")),
    )
    op.create_table(
        "p2p_user_verifications",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("kyc_status", sa.String(length=16), nullable=False),
        sa.Column("requested_level", sa.String(length=16), nullable=True),
        sa.Column("submitted_at", node.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("reviewed_by", sa.Integer(), nullable=True),
        sa.Column("reviewed_at", node.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("review_notes", sa.Text(), nullable=True),
        sa.Column("created_at", node.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", node.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["reviewed_by"], ["users.id"], name=op.f("fk_p2p_user_verifications_reviewed_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_p2p_user_verifications_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_p2p_user_verifications")),
    )
    op.create_table(
        "p2p_verification_documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("document_type", sa.String(length=32), nullable=False),
        sa.Column("storage_key", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", node.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_p2p_verification_documents_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_p2p_verification_documents")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_p2p_verification_documents_storage_key")),
    )
    op.create_index(
        op.f("ix_p2p_verification_documents_user_id"),
        "p2p_verification_documents",
        ["user_id"],
        unique=False,
    )
    op.create_table(
        "p2p_order_pricing",
        sa.Column("p2p_order_id", sa.Integer(), nullable=False),
        sa.Column("price_type", sa.String(length=8), nullable=False),
        sa.Column("margin_bps", sa.Integer(), nullable=True),
        sa.Column("index_price", sa.Numeric(precision=36, scale=12), nullable=True),
        sa.Column("index_observed_at", node.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", node.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["p2p_order_id"],
            ["p2p_crypto_orders.id"],
            name=op.f("fk_p2p_order_pricing_p2p_order_id_p2p_crypto_orders"),
        ),
        sa.PrimaryKeyConstraint("p2p_order_id", name=op.f("pk_p2p_order_pricing")),
    )
    op.create_index(
        "ix_p2p_orders_buyer_matched", "p2p_crypto_orders", ["buyer_id", "matched_at"], unique=False
    )
    op.create_index(
        "ix_p2p_orders_seller_matched",
        "p2p_crypto_orders",
        ["seller_id", "matched_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_p2p_orders_seller_matched", table_name="p2p_crypto_orders")
    op.drop_index("ix_p2p_orders_buyer_matched", table_name="p2p_crypto_orders")
    op.drop_table("p2p_order_pricing")
    op.drop_index(
        op.f("ix_p2p_verification_documents_user_id"), table_name="p2p_verification_documents"
    )
    op.drop_table("p2p_verification_documents")
    op.drop_table("p2p_user_verifications")
    op.drop_table("p2p_user_reputation")
    op.drop_index(
        op.f("ix_p2p_crypto_payment_methods_user_id"), table_name="p2p_crypto_payment_methods"
    )
    op.drop_table("p2p_crypto_payment_methods")
    op.drop_index("ix_p2p_price_quotes_pair", table_name="p2p_price_quotes")
    op.drop_table("p2p_price_quotes")
