"""Event numbers follow commit order on real PostgreSQL: a transaction that
wrote its event first but commits last still gets a number after the events
a reader has already seen, so resuming after the last number seen never skips
an event. A rolled-back transaction leaves no event."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker

from node.db.models import P2POrder
from node.db.models_disputes_ext import TradeEvent
from node.events.outbox import emit_trade_event, events_for_user
from node.trades import AdInput, CurrencySpec, create_ad, create_user, match_ad, upsert_currency


def _trade(sessions: sessionmaker[Session]) -> tuple[int, int]:
    with sessions() as s, s.begin():
        seller, _ = create_user(s, username="seller")
        buyer, _ = create_user(s, username="buyer")
        cur = upsert_currency(s, CurrencySpec(name="Ether", symbol="ETH", chain="evm",
                                              network="31337", decimals=18))
        ad = create_ad(s, seller=seller, data=AdInput(
            crypto_currency_id=cur.id, amount=10, min_amount=1, max_amount=10,
            price_per_unit=Decimal(1), fiat_currency="EUR", payment_methods=["SEPA"],
            seller_address="0x" + "11" * 20))
        trade = match_ad(s, ad_id=ad.id, buyer=buyer, amount=5, buyer_address="0x" + "22" * 20,
                         now=datetime.now(UTC))
        return trade.id, buyer.id


def test_numbers_follow_commit_order_not_insert_order(sessions: sessionmaker[Session]) -> None:
    trade_id, buyer_id = _trade(sessions)
    with sessions() as s:
        (opened,) = events_for_user(s, user_id=buyer_id)
        assert opened.kind == "trade.opened" and opened.seq is not None
        seen = opened.seq

    slow = sessions()
    slow.begin()
    early = emit_trade_event(slow, slow.get(P2POrder, trade_id), "test.first_written")  # type: ignore[arg-type]
    slow.flush()  # the event row is inserted (its id taken) before the other transaction's
    with sessions() as fast, fast.begin():
        late = emit_trade_event(fast, fast.get(P2POrder, trade_id), "test.first_committed")  # type: ignore[arg-type]
        fast.flush()
        assert late.id > early.id  # inserted after the slow transaction's event
    with sessions() as s:
        got = events_for_user(s, user_id=buyer_id, after_id=seen)
        assert [e.kind for e in got] == ["test.first_committed"]
        seen = got[-1].seq
    slow.commit()
    slow.close()
    with sessions() as s:
        got = events_for_user(s, user_id=buyer_id, after_id=seen)
        # a reader resuming after the last number it saw still gets it
        assert [e.kind for e in got] == ["test.first_written"]
        assert got[0].seq == seen + 1  # type: ignore[operator]

    with sessions() as s, s.begin():
        emit_trade_event(s, s.get(P2POrder, trade_id), "test.rolled_back")  # type: ignore[arg-type]
        s.rollback()
    with sessions() as s:
        kinds = [e.kind for e in s.query(TradeEvent).order_by(TradeEvent.id)]
        assert "test.rolled_back" not in kinds
        assert all(e.seq is not None for e in s.query(TradeEvent))
