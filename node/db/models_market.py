"""Marketplace: payment methods, verification, reputation, prices.

Imported by node.db.models (at its end) so one Base.metadata holds every table.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from node.db.models import Base, P2POrder, Timestamps, utcnow


class PaymentMethod(Timestamps, Base):
    """A trader's way of being paid (the seed's table). The account name and
    number and the free-form details are ciphertext (AES-GCM, bound to the
    owner): only the owner and the counterparty of an active trade see them."""

    __tablename__ = "p2p_crypto_payment_methods"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    payment_type: Mapped[str] = mapped_column(String(32))
    payment_provider: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    payment_details: Mapped[str | None] = mapped_column(Text)  # ciphertext of a JSON object
    account_name: Mapped[str | None] = mapped_column(Text)  # ciphertext
    account_number: Mapped[str | None] = mapped_column(Text)  # ciphertext
    account_number_last4: Mapped[str | None] = mapped_column(String(4))
    bank_name: Mapped[str | None] = mapped_column(String(128))
    country_code: Mapped[str | None] = mapped_column(String(2))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    is_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class UserVerification(Timestamps, Base):
    """A user's verification level and the state of their current request
    (no row: unverified, nothing requested)."""

    __tablename__ = "p2p_user_verifications"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    level: Mapped[str] = mapped_column(String(16), default="unverified")
    # none | pending (documents missing) | under_review | approved | rejected
    kyc_status: Mapped[str] = mapped_column(String(16), default="none")
    requested_level: Mapped[str | None] = mapped_column(String(16))
    submitted_at: Mapped[datetime | None]
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None]
    review_notes: Mapped[str | None] = mapped_column(Text)


class VerificationDocument(Base):
    """One uploaded document; the bytes are in the file store under ``storage_key``."""

    __tablename__ = "p2p_verification_documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    document_type: Mapped[str] = mapped_column(String(32))
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)
    content_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    # submitted | accepted | rejected | superseded
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserReputation(Base):
    """A user's reputation, recomputed from their trades and disputes."""

    __tablename__ = "p2p_user_reputation"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    total_trade_count: Mapped[int] = mapped_column(Integer, default=0)
    completed_trade_count: Mapped[int] = mapped_column(Integer, default=0)
    trade_completion_rate: Mapped[Decimal | None] = mapped_column(Numeric(5, 4))
    # fiat volume of completed trades, per fiat currency: {"EUR": "3150.50"}
    trade_volume_30d: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    trade_volume_90d: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    disputes_opened: Mapped[int] = mapped_column(Integer, default=0)
    disputes_won: Mapped[int] = mapped_column(Integer, default=0)
    disputes_lost: Mapped[int] = mapped_column(Integer, default=0)
    median_release_s: Mapped[int | None] = mapped_column(Integer)
    reputation_score: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal(0))
    trusted_seller: Mapped[bool] = mapped_column(Boolean, default=False)
    last_trade_at: Mapped[datetime | None]
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class PriceQuote(Base):
    """The latest quote of one price source for one pair (base in quote)."""

    __tablename__ = "p2p_price_quotes"
    __table_args__ = (
        UniqueConstraint("source", "base", "quote"),
        Index("ix_p2p_price_quotes_pair", "base", "quote"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    base: Mapped[str] = mapped_column(String(16))
    quote: Mapped[str] = mapped_column(String(8))
    price: Mapped[Decimal] = mapped_column(Numeric(36, 12))
    observed_at: Mapped[datetime]
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)


class OrderPricing(Base):
    """How an ad is priced (fixed, or a margin over the index), and for a
    trade the index price and margin its price was computed from at match time."""

    __tablename__ = "p2p_order_pricing"

    p2p_order_id: Mapped[int] = mapped_column(ForeignKey("p2p_crypto_orders.id"), primary_key=True)
    price_type: Mapped[str] = mapped_column(String(8))  # fixed | margin
    margin_bps: Mapped[int | None] = mapped_column(Integer)
    index_price: Mapped[Decimal | None] = mapped_column(Numeric(36, 12))
    index_observed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# The 24-hour trade-limit sums (node.market.opening.used_24h) read a user's
# trades by party and time: indexes on the orders table, created by this
# slice's migration.
Index("ix_p2p_orders_buyer_matched", P2POrder.buyer_id, P2POrder.matched_at)
Index("ix_p2p_orders_seller_matched", P2POrder.seller_id, P2POrder.matched_at)
