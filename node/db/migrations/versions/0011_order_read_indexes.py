"""Indexes for the order-list reads: the order book walks
(kind, status, currency, fiat, price, id) in price order, and a user's
orders are read newest first per side, (seller_id, id) and (buyer_id, id);
(buyer_id) alone is replaced by the latter.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_p2p_orders_book",
        "p2p_crypto_orders",
        ["kind", "status", "crypto_currency_id", "fiat_currency", "price_per_unit", "id"],
    )
    op.create_index("ix_p2p_orders_seller_id", "p2p_crypto_orders", ["seller_id", "id"])
    op.create_index("ix_p2p_orders_buyer_id", "p2p_crypto_orders", ["buyer_id", "id"])
    op.drop_index("ix_p2p_orders_buyer", table_name="p2p_crypto_orders")


def downgrade() -> None:
    op.create_index("ix_p2p_orders_buyer", "p2p_crypto_orders", ["buyer_id"])
    op.drop_index("ix_p2p_orders_buyer_id", table_name="p2p_crypto_orders")
    op.drop_index("ix_p2p_orders_seller_id", table_name="p2p_crypto_orders")
    op.drop_index("ix_p2p_orders_book", table_name="p2p_crypto_orders")
