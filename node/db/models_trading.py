"""Order-book trading: pairs, trading orders, fills, the engine's input log.

Imported by node.db.models (at its end) so one Base.metadata holds every table.

Prices and quantities are integers in base units (``BaseUnits``): a quantity in
base units of the base currency, a price in base units of the quote currency
per ``price_scale`` base units of the base currency (see
``node.orderbook.pair``). The input log is the source of truth: replaying it
rebuilds the matching engine; orders and fills are what it produced, written
in the same transaction as the log row that caused them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from node.db.models import Base, Timestamps, utcnow
from node.db.types import BaseUnits


class TradingPair(Timestamps, Base):
    """One market (``p2p_crypto_trading_pairs``). ``last_seq`` is the sequence
    number of the last command in the pair's input log; every command locks
    this row, so commands of one pair are applied one at a time across
    processes."""

    __tablename__ = "p2p_crypto_trading_pairs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    base_currency_id: Mapped[int] = mapped_column(ForeignKey("crypto_currencies.id"))
    quote_currency_id: Mapped[int] = mapped_column(ForeignKey("crypto_currencies.id"))
    pair_name: Mapped[str] = mapped_column(String(40))  # "BTC/USDT"
    symbol: Mapped[str] = mapped_column(String(40), unique=True)  # "BTCUSDT"
    min_price: Mapped[int] = mapped_column(BaseUnits)
    max_price: Mapped[int] = mapped_column(BaseUnits)
    min_quantity: Mapped[int] = mapped_column(BaseUnits)
    max_quantity: Mapped[int] = mapped_column(BaseUnits)
    price_tick_size: Mapped[int] = mapped_column(BaseUnits)
    quantity_step_size: Mapped[int] = mapped_column(BaseUnits)
    price_scale: Mapped[int] = mapped_column(BaseUnits)
    maker_fee_bps: Mapped[int] = mapped_column(Integer, default=0)
    taker_fee_bps: Mapped[int] = mapped_column(Integer, default=0)
    market_protection_bps: Mapped[int] = mapped_column(Integer, default=1000)
    status: Mapped[str] = mapped_column(String(16), default="trading")  # trading | halted
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)


class TradingOrder(Timestamps, Base):
    """A trading order (``p2p_crypto_trading_orders``), kept in step with the
    engine: ``status`` is pending (a stop waiting for its trigger), open,
    partially_filled, filled, cancelled, expired or rejected; ``held`` is what
    the custody ledger holds for it now; ``reason`` why it ended early (a cancel
    reason or a reject code)."""

    __tablename__ = "p2p_crypto_trading_orders"
    __table_args__ = (
        Index("ix_trading_orders_user", "user_id", "id"),
        Index("ix_trading_orders_pair_status", "trading_pair_id", "status"),
        UniqueConstraint("user_id", "client_order_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    trading_pair_id: Mapped[int] = mapped_column(ForeignKey("p2p_crypto_trading_pairs.id"))
    client_order_id: Mapped[str | None] = mapped_column(String(64))
    order_type: Mapped[str] = mapped_column(String(16))
    side: Mapped[str] = mapped_column(String(4))
    quantity: Mapped[int] = mapped_column(BaseUnits)
    executed_quantity: Mapped[int] = mapped_column(BaseUnits, default=0)
    executed_quote: Mapped[int] = mapped_column(BaseUnits, default=0)
    price: Mapped[int | None] = mapped_column(BaseUnits)
    stop_price: Mapped[int | None] = mapped_column(BaseUnits)
    avg_price: Mapped[Decimal | None] = mapped_column(Numeric(40, 8))
    status: Mapped[str] = mapped_column(String(20))
    time_in_force: Mapped[str] = mapped_column(String(4))
    good_till_date: Mapped[datetime | None]
    fee: Mapped[int] = mapped_column(BaseUnits, default=0)
    fee_currency: Mapped[str] = mapped_column(String(16))
    held: Mapped[int] = mapped_column(BaseUnits, default=0)
    reason: Mapped[str | None] = mapped_column(String(40))
    notes: Mapped[str | None] = mapped_column(Text)
    # stop_limit_price, trail_amount, trail_bps, stp (``metadata`` is taken by SQLAlchemy)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)


class TradingFill(Base):
    """One trade (trade history). ``trade_id`` is the engine's, unique per pair:
    a fill can never be recorded twice; ``seq`` is the log command that made it."""

    __tablename__ = "p2p_crypto_trading_fills"
    __table_args__ = (
        UniqueConstraint("trading_pair_id", "trade_id"),
        Index("ix_trading_fills_maker_user", "maker_user_id", "id"),
        Index("ix_trading_fills_taker_user", "taker_user_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trading_pair_id: Mapped[int] = mapped_column(ForeignKey("p2p_crypto_trading_pairs.id"))
    trade_id: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    maker_order_id: Mapped[int] = mapped_column(ForeignKey("p2p_crypto_trading_orders.id"))
    taker_order_id: Mapped[int] = mapped_column(ForeignKey("p2p_crypto_trading_orders.id"))
    maker_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    taker_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    taker_side: Mapped[str] = mapped_column(String(4))
    price: Mapped[int] = mapped_column(BaseUnits)
    quantity: Mapped[int] = mapped_column(BaseUnits)
    quote_amount: Mapped[int] = mapped_column(BaseUnits)
    maker_fee: Mapped[int] = mapped_column(BaseUnits)
    taker_fee: Mapped[int] = mapped_column(BaseUnits)
    ts: Mapped[int] = mapped_column(BigInteger)  # the engine's clock, ms since the epoch
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TradingEngineLog(Base):
    """The append-only input log of one pair's engine: every command in the
    order it was applied (``seq`` = 1, 2, ...). ``client_ref`` makes a request
    idempotent: the same ref is applied once."""

    __tablename__ = "trading_engine_log"
    __table_args__ = (
        UniqueConstraint("trading_pair_id", "seq"),
        UniqueConstraint("trading_pair_id", "client_ref"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    trading_pair_id: Mapped[int] = mapped_column(ForeignKey("p2p_crypto_trading_pairs.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    command: Mapped[dict[str, Any]] = mapped_column(JSON)
    client_ref: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TradingEngineSnapshot(Base):
    """The engine of one pair as of log command ``seq`` (pickled by the node
    itself, in the transaction of that command), so recovery replays only the
    log after it. ``trade_id``: the engine's last trade id at that point."""

    __tablename__ = "trading_engine_snapshots"

    trading_pair_id: Mapped[int] = mapped_column(
        ForeignKey("p2p_crypto_trading_pairs.id"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    trade_id: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
