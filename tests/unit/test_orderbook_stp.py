"""Self-trade prevention: a taker never trades with a maker of the same user.
Each mode does exactly what it says (cancel newest, cancel oldest, cancel
both, decrement both without a trade or a fee), the taker's mode decides, the
engine's default applies when an order names none, and FOK counts only what
the mode lets it fill."""

from __future__ import annotations

import pytest

from node.orderbook import (
    STP,
    Deposit,
    Engine,
    Event,
    Fill,
    Ledger,
    OrderCancelled,
    OrderReduced,
    OrderRejected,
    OrderRested,
    OrderType,
    PairSpec,
    PlaceOrder,
    Side,
    TimeInForce,
)

PAIR = PairSpec(
    symbol="T/Q", base_asset="T", quote_asset="Q", tick_size=1, step_size=1, min_price=1,
    max_price=1_000_000, min_quantity=1, max_quantity=1_000_000,
)
BUY, SELL, L, M = Side.BUY, Side.SELL, OrderType.LIMIT, OrderType.MARKET


def fills(events: list[Event]) -> list[tuple[int, int, int]]:
    return [(f.maker_order_id, f.taker_order_id, f.quantity)
            for f in events if isinstance(f, Fill)]


def book(stp: STP | None = None, default: STP = STP.CANCEL_NEWEST) -> tuple[Engine, list[Event]]:
    """User 1 rests 5 @ 100 (order 1), user 2 rests 5 @ 101 (order 2); user 1
    then buys 8 @ 101 (order 3) with ``stp``."""
    e = Engine(PAIR, default_stp=default)
    e.apply(PlaceOrder(1, 1, SELL, L, 5, 100))
    e.apply(PlaceOrder(2, 2, SELL, L, 5, 101))
    return e, e.apply(PlaceOrder(3, 1, BUY, L, 8, 101, stp=stp))


def test_cancel_newest_cancels_the_taker() -> None:
    e, ev = book(STP.CANCEL_NEWEST)
    assert fills(ev) == []
    assert ev[-1] == OrderCancelled(3, 8, "self_trade")
    assert e.depth() == ([], [(100, 5), (101, 5)])


def test_cancel_oldest_cancels_the_maker_and_keeps_matching() -> None:
    e, ev = book(STP.CANCEL_OLDEST)
    assert OrderCancelled(1, 5, "self_trade") in ev
    assert fills(ev) == [(2, 3, 5)]
    assert ev[-1] == OrderRested(3, 101, 3)
    assert e.depth() == ([(101, 3)], [])


def test_cancel_both() -> None:
    e, ev = book(STP.CANCEL_BOTH)
    assert ev[1:] == [OrderCancelled(1, 5, "self_trade"), OrderCancelled(3, 8, "self_trade")]
    assert e.depth() == ([], [(101, 5)])


def test_decrement_reduces_both_without_trade() -> None:
    e, ev = book(STP.DECREMENT)
    assert ev[1:3] == [OrderReduced(3, 5, "self_trade"), OrderReduced(1, 5, "self_trade")]
    assert fills(ev) == [(2, 3, 3)]
    assert e.order(1) is None and e.order(3) is None
    assert e.depth() == ([], [(101, 2)])


def test_decrement_smaller_taker_leaves_maker_resting() -> None:
    e = Engine(PAIR)
    e.apply(PlaceOrder(1, 1, SELL, L, 5, 100))
    ev = e.apply(PlaceOrder(2, 1, BUY, L, 3, 100, stp=STP.DECREMENT))
    assert ev[1:] == [OrderReduced(2, 3, "self_trade"), OrderReduced(1, 3, "self_trade")]
    assert e.depth() == ([], [(100, 2)])
    assert e.order(1).remaining == 2  # type: ignore[union-attr]


def test_engine_default_applies_and_taker_mode_wins() -> None:
    e, ev = book(None, default=STP.CANCEL_OLDEST)
    assert OrderCancelled(1, 5, "self_trade") in ev
    e, ev = book(STP.CANCEL_NEWEST, default=STP.CANCEL_OLDEST)
    assert ev[-1] == OrderCancelled(3, 8, "self_trade")


@pytest.mark.parametrize("stp", list(STP))
def test_no_mode_ever_trades_with_self(stp: STP) -> None:
    e, ev = book(stp)
    assert all(f.maker_user_id != f.taker_user_id for f in ev if isinstance(f, Fill))
    e.check_invariants()


def test_fok_counts_only_what_stp_allows() -> None:
    e = Engine(PAIR)
    e.apply(PlaceOrder(1, 1, SELL, L, 5, 100))
    e.apply(PlaceOrder(2, 2, SELL, L, 5, 100))
    ev = e.apply(PlaceOrder(3, 1, BUY, L, 10, 100, time_in_force=TimeInForce.FOK))
    assert ev == [OrderRejected(3, "fok_not_fillable")]
    ev = e.apply(PlaceOrder(4, 1, BUY, L, 5, 100, time_in_force=TimeInForce.FOK,
                            stp=STP.CANCEL_OLDEST))
    assert fills(ev) == [(2, 4, 5)]


def test_stp_releases_holds() -> None:
    ledger = Ledger()
    e = Engine(PAIR, ledger)
    e.apply(Deposit(1, "T", 10))
    e.apply(Deposit(1, "Q", 10_000))
    e.apply(PlaceOrder(1, 1, SELL, L, 5, 100))
    e.apply(PlaceOrder(2, 1, BUY, L, 3, 100, stp=STP.DECREMENT))
    assert ledger.held(1, "Q") == 0 and ledger.available(1, "Q") == 10_000
    assert ledger.held(1, "T") == 2 and ledger.available(1, "T") == 8
    e.apply(PlaceOrder(3, 1, BUY, M, 3, stp=STP.CANCEL_OLDEST))
    assert ledger.held(1, "T") == 0 and ledger.available(1, "T") == 10
    assert ledger.held(1, "Q") == 0
    ledger.verify()
