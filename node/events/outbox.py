"""The trade-event outbox: events are written in the transaction of the
change they report, so an event exists exactly when its change committed.

- Every change of a trade's status, on every chain and from any code path
  (EVM/Bitcoin/Solana sync, cancellation, expiry), and every new trade, is
  recorded by a ``before_flush`` hook (``trade.opened``, ``trade.<status>``
  with the status it came from): nothing that moves a trade can forget it.
- Other happenings (``dispute.opened``, ``dispute.evidence_added``,
  ``dispute.ruled``, ...) are emitted explicitly with ``emit_trade_event``.

Each event also gets a pending delivery per active webhook of the trade's
parties (``node.events.webhooks`` sends them).

Commit order: row ids come from a sequence when the row is inserted, so a
transaction that inserted event 10 may commit after one that inserted event
11, and a reader resuming after 11 would never see 10. So the public number
``seq`` is given just before commit, under a transaction-level advisory lock
on PostgreSQL (released when the commit is visible), from the highest number
given so far: numbers become visible in the order they are given. The lock
is taken last in the transaction, after every row lock, so it cannot
deadlock with them; SQLite has one writer at a time and needs no lock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import func, inspect, or_, select, text
from sqlalchemy.orm import Session, UOWTransaction

from node.db.models import P2POrder, utcnow
from node.db.models_disputes_ext import TradeEvent, WebhookDelivery, WebhookSubscription

_PENDING = "escrowd.trade_events"
# pg_advisory_xact_lock key of the event numbering
_LOCK_KEY = 0x6573_6372_6F77_6465  # "escrowde"
_numbering_lock = text("SELECT pg_advisory_xact_lock(:key)")


def _stage(
    session: Session, trade: P2POrder, kind: str, data: dict[str, Any] | None,
    now: datetime | None,
) -> TradeEvent:
    """Add the event and its deliveries without flushing (safe in a flush hook)."""
    moment = now or utcnow()
    ev = TradeEvent(trade=trade, kind=kind, data={"status": trade.status, **(data or {})},
                    created_at=moment)
    session.add(ev)
    session.info.setdefault(_PENDING, []).append(ev)
    parties = [uid for uid in (trade.seller_id, trade.buyer_id) if uid is not None]
    if parties:
        with session.no_autoflush:
            subs = session.scalars(
                select(WebhookSubscription.id).where(
                    WebhookSubscription.user_id.in_(parties),
                    WebhookSubscription.is_active.is_(True),
                )
            ).all()
        for sub_id in subs:
            session.add(WebhookDelivery(subscription_id=sub_id, event=ev, status="pending",
                                        next_attempt_at=moment))
    return ev


def emit_trade_event(
    session: Session,
    trade: P2POrder,
    kind: str,
    data: dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> TradeEvent:
    """Record that ``trade`` changed (``kind``: "dispute.ruled", ...) with
    JSON ``data``; queue it for the parties' webhooks. Nothing is sent here:
    the delivery job and the SSE streams read the outbox after the commit.
    (Status changes need no call: the flush hook records them.)"""
    return _stage(session, trade, kind, data, now)


@sa_event.listens_for(P2POrder.status, "set", active_history=True)
def _load_old_status(_target: P2POrder, value: str, _old: object, _initiator: object) -> str:
    """Makes SQLAlchemy load the old status before it is replaced (even when
    it was expired), so the flush hook always sees where a trade came from."""
    return value


@sa_event.listens_for(Session, "before_flush")
def _trade_changes(session: Session, _ctx: UOWTransaction, _instances: object) -> None:
    """New trades and trade status changes become events in the same flush."""
    for obj in list(session.new):
        if isinstance(obj, P2POrder) and obj.kind == "trade":
            _stage(session, obj, "trade.opened", {"amount": str(obj.amount)}, None)
    for obj in list(session.dirty):
        if not isinstance(obj, P2POrder) or obj.kind != "trade":
            continue
        hist = inspect(obj).attrs.status.history
        if not hist.added or not hist.deleted:
            continue
        before, after = hist.deleted[0], hist.added[0]
        if before == after:
            continue
        _stage(session, obj, f"trade.{after}",
               {"from": before, "tx": obj.crypto_transaction_id}, None)


@sa_event.listens_for(Session, "before_commit")
def _number_events(session: Session) -> None:
    """Give this transaction's events their public numbers, in commit order."""
    # the commit's own flush comes after this hook: flush now, which stages
    # the events of status changes not flushed yet
    session.flush()
    staged = session.info.pop(_PENDING, None)
    if not staged:
        return
    events = [e for e in staged if inspect(e).persistent]
    if not events:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_numbering_lock, {"key": _LOCK_KEY})
    top = session.scalar(select(func.max(TradeEvent.seq))) or 0
    for n, ev in enumerate(sorted(events, key=lambda e: e.id), start=1):
        ev.seq = top + n
    session.flush()


@sa_event.listens_for(Session, "after_rollback")
def _forget_events(session: Session) -> None:
    session.info.pop(_PENDING, None)


def event_body(event: TradeEvent) -> dict[str, Any]:
    """The JSON an SSE ``data:`` line and a webhook POST carry (``id`` is the
    event's public number)."""
    return {
        "id": event.seq,
        "type": event.kind,
        "trade_id": event.p2p_order_id,
        "created_at": event.created_at.isoformat(),
        "data": event.data,
    }


def events_for_user(
    session: Session, *, user_id: int, after_id: int = 0, limit: int = 100
) -> list[TradeEvent]:
    """Events of the trades ``user_id`` is a party of, numbered after
    ``after_id``, oldest first."""
    q = (
        select(TradeEvent)
        .join(P2POrder, P2POrder.id == TradeEvent.p2p_order_id)
        .where(or_(P2POrder.seller_id == user_id, P2POrder.buyer_id == user_id))
        .where(TradeEvent.seq > after_id)
        .order_by(TradeEvent.seq)
        .limit(limit)
    )
    return list(session.scalars(q))
