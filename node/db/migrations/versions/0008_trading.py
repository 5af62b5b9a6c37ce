"""Order-book trading: pairs, trading orders, fills, the engine's input log.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import node.db.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Units = node.db.types.BaseUnits
Utc = node.db.types.UtcDateTime


def _units(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, Units(precision=78, scale=0), nullable=nullable)


def _stamps() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("created_at", Utc(timezone=True), nullable=False),
        sa.Column("updated_at", Utc(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "p2p_crypto_trading_pairs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("base_currency_id", sa.Integer(), nullable=False),
        sa.Column("quote_currency_id", sa.Integer(), nullable=False),
        sa.Column("pair_name", sa.String(length=40), nullable=False),
        sa.Column("symbol", sa.String(length=40), nullable=False),
        _units("min_price"),
        _units("max_price"),
        _units("min_quantity"),
        _units("max_quantity"),
        _units("price_tick_size"),
        _units("quantity_step_size"),
        _units("price_scale"),
        sa.Column("maker_fee_bps", sa.Integer(), nullable=False),
        sa.Column("taker_fee_bps", sa.Integer(), nullable=False),
        sa.Column("market_protection_bps", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        *_stamps(),
        sa.ForeignKeyConstraint(
            ["base_currency_id"], ["crypto_currencies.id"],
            name=op.f("fk_p2p_crypto_trading_pairs_base_currency_id_crypto_currencies"),
        ),
        sa.ForeignKeyConstraint(
            ["quote_currency_id"], ["crypto_currencies.id"],
            name=op.f("fk_p2p_crypto_trading_pairs_quote_currency_id_crypto_currencies"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_p2p_crypto_trading_pairs")),
        sa.UniqueConstraint("symbol", name=op.f("uq_p2p_crypto_trading_pairs_symbol")),
    )
    op.create_table(
        "p2p_crypto_trading_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("trading_pair_id", sa.Integer(), nullable=False),
        sa.Column("client_order_id", sa.String(length=64), nullable=True),
        sa.Column("order_type", sa.String(length=16), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        _units("quantity"),
        _units("executed_quantity"),
        _units("executed_quote"),
        _units("price", nullable=True),
        _units("stop_price", nullable=True),
        sa.Column("avg_price", sa.Numeric(precision=40, scale=8), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("time_in_force", sa.String(length=4), nullable=False),
        sa.Column("good_till_date", Utc(timezone=True), nullable=True),
        _units("fee"),
        sa.Column("fee_currency", sa.String(length=16), nullable=False),
        _units("held"),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        *_stamps(),
        sa.ForeignKeyConstraint(
            ["trading_pair_id"], ["p2p_crypto_trading_pairs.id"],
            name=op.f("fk_p2p_crypto_trading_orders_trading_pair_id_p2p_crypto_trading_pairs"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_p2p_crypto_trading_orders_user_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_p2p_crypto_trading_orders")),
        sa.UniqueConstraint(
            "user_id", "client_order_id",
            name=op.f("uq_p2p_crypto_trading_orders_user_id_client_order_id"),
        ),
    )
    op.create_index(
        "ix_trading_orders_pair_status", "p2p_crypto_trading_orders",
        ["trading_pair_id", "status"],
    )
    op.create_index("ix_trading_orders_user", "p2p_crypto_trading_orders", ["user_id", "id"])
    op.create_table(
        "p2p_crypto_trading_fills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trading_pair_id", sa.Integer(), nullable=False),
        sa.Column("trade_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("maker_order_id", sa.Integer(), nullable=False),
        sa.Column("taker_order_id", sa.Integer(), nullable=False),
        sa.Column("maker_user_id", sa.Integer(), nullable=False),
        sa.Column("taker_user_id", sa.Integer(), nullable=False),
        sa.Column("taker_side", sa.String(length=4), nullable=False),
        _units("price"),
        _units("quantity"),
        _units("quote_amount"),
        _units("maker_fee"),
        _units("taker_fee"),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("created_at", Utc(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["maker_order_id"], ["p2p_crypto_trading_orders.id"],
            name=op.f("fk_p2p_crypto_trading_fills_maker_order_id_p2p_crypto_trading_orders"),
        ),
        sa.ForeignKeyConstraint(
            ["maker_user_id"], ["users.id"],
            name=op.f("fk_p2p_crypto_trading_fills_maker_user_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["taker_order_id"], ["p2p_crypto_trading_orders.id"],
            name=op.f("fk_p2p_crypto_trading_fills_taker_order_id_p2p_crypto_trading_orders"),
        ),
        sa.ForeignKeyConstraint(
            ["taker_user_id"], ["users.id"],
            name=op.f("fk_p2p_crypto_trading_fills_taker_user_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["trading_pair_id"], ["p2p_crypto_trading_pairs.id"],
            name=op.f("fk_p2p_crypto_trading_fills_trading_pair_id_p2p_crypto_trading_pairs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_p2p_crypto_trading_fills")),
        sa.UniqueConstraint(
            "trading_pair_id", "trade_id",
            name=op.f("uq_p2p_crypto_trading_fills_trading_pair_id_trade_id"),
        ),
    )
    op.create_index(
        "ix_trading_fills_maker_user", "p2p_crypto_trading_fills", ["maker_user_id", "id"]
    )
    op.create_index(
        "ix_trading_fills_taker_user", "p2p_crypto_trading_fills", ["taker_user_id", "id"]
    )
    op.create_table(
        "trading_engine_log",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("trading_pair_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("command", sa.JSON(), nullable=False),
        sa.Column("client_ref", sa.String(length=100), nullable=True),
        sa.Column("created_at", Utc(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trading_pair_id"], ["p2p_crypto_trading_pairs.id"],
            name=op.f("fk_trading_engine_log_trading_pair_id_p2p_crypto_trading_pairs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trading_engine_log")),
        sa.UniqueConstraint(
            "trading_pair_id", "client_ref",
            name=op.f("uq_trading_engine_log_trading_pair_id_client_ref"),
        ),
        sa.UniqueConstraint(
            "trading_pair_id", "seq", name=op.f("uq_trading_engine_log_trading_pair_id_seq"),
        ),
    )
    op.create_table(
        "trading_engine_snapshots",
        sa.Column("trading_pair_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("trade_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", Utc(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trading_pair_id"], ["p2p_crypto_trading_pairs.id"],
            name=op.f("fk_trading_engine_snapshots_trading_pair_id_p2p_crypto_trading_pairs"),
        ),
        sa.PrimaryKeyConstraint(
            "trading_pair_id", "seq", name=op.f("pk_trading_engine_snapshots")
        ),
    )


def downgrade() -> None:
    op.drop_table("trading_engine_snapshots")
    op.drop_table("trading_engine_log")
    op.drop_index("ix_trading_fills_taker_user", table_name="p2p_crypto_trading_fills")
    op.drop_index("ix_trading_fills_maker_user", table_name="p2p_crypto_trading_fills")
    op.drop_table("p2p_crypto_trading_fills")
    op.drop_index("ix_trading_orders_user", table_name="p2p_crypto_trading_orders")
    op.drop_index("ix_trading_orders_pair_status", table_name="p2p_crypto_trading_orders")
    op.drop_table("p2p_crypto_trading_orders")
    op.drop_table("p2p_crypto_trading_pairs")
