"""The trade-event outbox: ``emit_trade_event`` adds an event (and a pending
delivery per webhook of the trade's parties) in the caller's transaction, so
an event exists exactly when the change it reports was committed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from node.db.models import P2POrder, utcnow
from node.db.models_disputes_ext import TradeEvent, WebhookDelivery, WebhookSubscription


def emit_trade_event(
    session: Session,
    trade: P2POrder,
    kind: str,
    data: dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> TradeEvent:
    """Record that ``trade`` changed (``kind``: "trade.funded",
    "dispute.ruled", ...) with JSON ``data``; queue it for the parties'
    webhooks. Nothing is sent here: the delivery job and the SSE streams read
    the outbox after the transaction commits."""
    moment = now or utcnow()
    event = TradeEvent(
        p2p_order_id=trade.id,
        kind=kind,
        data={"status": trade.status, **(data or {})},
        created_at=moment,
    )
    session.add(event)
    session.flush()
    parties = [uid for uid in (trade.seller_id, trade.buyer_id) if uid is not None]
    subs = session.scalars(
        select(WebhookSubscription.id).where(
            WebhookSubscription.user_id.in_(parties), WebhookSubscription.is_active.is_(True)
        )
    ).all()
    for sub_id in subs:
        session.add(
            WebhookDelivery(
                subscription_id=sub_id, event_id=event.id, status="pending",
                next_attempt_at=moment,
            )
        )
    return event


def event_body(event: TradeEvent) -> dict[str, Any]:
    """The JSON an SSE ``data:`` line and a webhook POST carry."""
    return {
        "id": event.id,
        "type": event.kind,
        "trade_id": event.p2p_order_id,
        "created_at": event.created_at.isoformat(),
        "data": event.data,
    }


def events_for_user(
    session: Session, *, user_id: int, after_id: int = 0, limit: int = 100
) -> list[TradeEvent]:
    """Events of the trades ``user_id`` is a party of, after ``after_id``, oldest first."""
    q = (
        select(TradeEvent)
        .join(P2POrder, P2POrder.id == TradeEvent.p2p_order_id)
        .where(or_(P2POrder.seller_id == user_id, P2POrder.buyer_id == user_id))
        .where(TradeEvent.id > after_id)
        .order_by(TradeEvent.id)
        .limit(limit)
    )
    return list(session.scalars(q))
