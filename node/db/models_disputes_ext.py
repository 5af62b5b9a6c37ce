"""Disputes beyond the ruling: evidence, assignment, deadlines; trade events outbox and webhooks.

Imported by node.db.models (at its end) so one Base.metadata holds every table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from node.db.models import Base, P2POrder, Timestamps, utcnow

# --- disputes ------------------------------------------------------------


class DisputeCase(Timestamps, Base):
    """The workflow of one dispute: who answers and by when, who rules and by
    when, and how often it was escalated. ``p2p_crypto_trade_disputes.status``
    stays ``open`` until the ruling (the chains' signing policies read it);
    the stage here says where the case is (``node.disputes.deadlines.Stage``)."""

    __tablename__ = "p2p_dispute_cases"
    __table_args__ = (Index("ix_p2p_dispute_cases_stage", "stage"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dispute_id: Mapped[int] = mapped_column(
        ForeignKey("p2p_crypto_trade_disputes.id"), unique=True
    )
    stage: Mapped[str] = mapped_column(String(24))
    respondent_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    response_due_at: Mapped[datetime]
    ruling_due_at: Mapped[datetime | None]
    responded_at: Mapped[datetime | None]
    response_missed: Mapped[bool] = mapped_column(Boolean, default=False)
    assigned_at: Mapped[datetime | None]
    escalations: Mapped[int] = mapped_column(Integer, default=0)
    escalated_at: Mapped[datetime | None]
    escalation_reason: Mapped[str | None] = mapped_column(Text)


class DisputeEvidence(Base):
    """One piece of evidence: text, or a file in the file store (``file_key``),
    from a party; or an arbitrator's note (``kind='note'``, not shown to the
    parties)."""

    __tablename__ = "p2p_dispute_evidence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dispute_id: Mapped[int] = mapped_column(
        ForeignKey("p2p_crypto_trade_disputes.id"), index=True
    )
    author_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    author_role: Mapped[str] = mapped_column(String(16))  # buyer | seller | arbitrator | admin
    kind: Mapped[str] = mapped_column(String(8))  # text | file | note
    body: Mapped[str | None] = mapped_column(Text)
    file_key: Mapped[str | None] = mapped_column(String(512))
    file_name: Mapped[str | None] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DisputeRuling(Base):
    """The ruling as the arbitrator signed it (EIP-712, ``scheme='eip712'``),
    or recorded unsigned where the settings allow it (``scheme='unsigned'``)."""

    __tablename__ = "p2p_dispute_rulings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dispute_id: Mapped[int] = mapped_column(
        ForeignKey("p2p_crypto_trade_disputes.id"), unique=True
    )
    p2p_order_id: Mapped[int] = mapped_column(ForeignKey("p2p_crypto_orders.id"))
    arbitrator_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    chain: Mapped[str] = mapped_column(String(40))  # e.g. "evm:31337"
    escrow_key: Mapped[str] = mapped_column(String(128))
    buyer_bps: Mapped[int] = mapped_column(Integer)
    reason_hash: Mapped[str] = mapped_column(String(66))
    signed_at: Mapped[int] = mapped_column(BigInteger)  # unix seconds, as signed
    scheme: Mapped[str] = mapped_column(String(16))  # eip712 | unsigned
    signer_address: Mapped[str | None] = mapped_column(String(42))
    digest: Mapped[str | None] = mapped_column(String(66))
    signature: Mapped[str | None] = mapped_column(String(200))
    typed_data: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- trade events ----------------------------------------------------------


class TradeEvent(Base):
    """The outbox: one row per change of a trade, written in the transaction
    of the change. ``seq`` is given at commit, in commit order (see
    ``node.events.outbox``): it is the public event id (SSE ``id``,
    ``Last-Event-ID``, webhook event id), so a reader that saw event N has
    seen every event before N."""

    __tablename__ = "trade_events"
    __table_args__ = (Index("ix_trade_events_order", "p2p_order_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    p2p_order_id: Mapped[int] = mapped_column(ForeignKey("p2p_crypto_orders.id"))
    kind: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # lets an event be staged for a trade inserted in the same flush
    trade: Mapped[P2POrder] = relationship(lazy="raise")


class WebhookSubscription(Timestamps, Base):
    """A user's webhook: events of their trades are POSTed to ``url``, signed
    with HMAC-SHA256 under the secret, stored sealed (``node.events.secrets``)."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(512))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class WebhookDelivery(Timestamps, Base):
    """One event to one webhook: pending until a 2xx answer, retried with
    exponential backoff, ``failed`` after the last attempt."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    event_id: Mapped[int] = mapped_column(ForeignKey("trade_events.id"))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]

    event: Mapped[TradeEvent] = relationship(lazy="raise")
