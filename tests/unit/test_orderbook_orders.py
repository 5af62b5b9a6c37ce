"""Every order type and time in force of the matching engine: price-time
priority, market orders, limit GTC / IOC / FOK / GTD (expiry by the caller's
clock), stop-market, stop-limit, OCO (one leg filling or triggering cancels the
other), trailing stops by amount and by bps, reduce-only amends, cancels, and
the rejection codes of invalid commands. No ledger here (see
test_orderbook_ledger for funds)."""

from __future__ import annotations

import pytest

from node.orderbook import (
    AmendOrder,
    CancelOrder,
    Engine,
    Event,
    Fill,
    OcoLegCancelled,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderReduced,
    OrderRejected,
    OrderRested,
    OrderTriggered,
    OrderType,
    PairSpec,
    PlaceOrder,
    Side,
    Tick,
    TimeInForce,
)

PAIR = PairSpec(
    symbol="T/Q", base_asset="T", quote_asset="Q", tick_size=1, step_size=1, min_price=1,
    max_price=1_000_000, min_quantity=1, max_quantity=1_000_000,
)
BUY, SELL = Side.BUY, Side.SELL
M, L = OrderType.MARKET, OrderType.LIMIT
SM, SL, OCO, TR = (OrderType.STOP_MARKET, OrderType.STOP_LIMIT, OrderType.OCO,
                   OrderType.TRAILING_STOP)
GTC, IOC, FOK, GTD = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTD


def place(e: Engine, oid: int, side: Side, otype: OrderType, qty: int, price: int | None = None,
          *, user: int | None = None, **kw: object) -> list[Event]:
    return e.apply(PlaceOrder(oid, user if user is not None else oid, side, otype, qty,
                              price, **kw))  # type: ignore[arg-type]


def fills(events: list[Event]) -> list[tuple[int, int, int, int]]:
    """(maker, taker, price, qty) of each fill."""
    return [(f.maker_order_id, f.taker_order_id, f.price, f.quantity)
            for f in events if isinstance(f, Fill)]


def of(events: list[Event], kind: type) -> list[Event]:
    return [e for e in events if isinstance(e, kind)]


def rejected(events: list[Event]) -> str:
    assert len(events) == 1 and isinstance(events[0], OrderRejected), events
    return events[0].code


@pytest.fixture
def e() -> Engine:
    return Engine(PAIR)


# ------------------------------------------------------------ priority, market


def test_price_then_time_priority(e: Engine) -> None:
    place(e, 1, SELL, L, 5, 101)
    place(e, 2, SELL, L, 5, 100)
    place(e, 3, SELL, L, 5, 100)
    place(e, 4, SELL, L, 5, 102)
    ev = place(e, 10, BUY, L, 12, 101)
    assert fills(ev) == [(2, 10, 100, 5), (3, 10, 100, 5), (1, 10, 101, 2)]
    assert e.depth() == ([], [(101, 3), (102, 5)])
    assert e.order(10) is None  # fully filled: done
    assert e.order(1) is not None and e.order(1).filled == 2  # type: ignore[union-attr]
    e.check_invariants()


def test_taker_gets_maker_price_and_rests_rest(e: Engine) -> None:
    place(e, 1, BUY, L, 5, 100)
    ev = place(e, 2, SELL, L, 8, 95)
    assert fills(ev) == [(1, 2, 100, 5)]
    assert ev[-1] == OrderRested(2, 95, 3)
    assert e.best_ask() == 95 and e.best_bid() is None
    assert e.last_price == 100


def test_market_order_sweeps_and_cancels_unfilled(e: Engine) -> None:
    place(e, 1, SELL, L, 5, 100)
    place(e, 2, SELL, L, 5, 200)
    ev = place(e, 3, BUY, M, 20)
    assert fills(ev) == [(1, 3, 100, 5), (2, 3, 200, 5)]
    assert ev[-1] == OrderCancelled(3, 10, "market_unfilled")
    assert e.depth() == ([], [])


def test_market_order_into_empty_book(e: Engine) -> None:
    ev = place(e, 1, SELL, M, 5)
    assert isinstance(ev[0], OrderAccepted) and ev[1] == OrderCancelled(1, 5, "market_unfilled")


# ----------------------------------------------------------------- time in force


def test_ioc_takes_what_it_can(e: Engine) -> None:
    place(e, 1, SELL, L, 5, 100)
    ev = place(e, 2, BUY, L, 8, 100, time_in_force=IOC)
    assert fills(ev) == [(1, 2, 100, 5)]
    assert ev[-1] == OrderCancelled(2, 3, "ioc")
    assert e.depth() == ([], [])


def test_fok_fills_in_full_or_not_at_all(e: Engine) -> None:
    place(e, 1, SELL, L, 5, 100)
    place(e, 2, SELL, L, 5, 101)
    before = e.snapshot()
    assert rejected(place(e, 3, BUY, L, 11, 101, time_in_force=FOK)) == "fok_not_fillable"
    assert rejected(place(e, 4, BUY, L, 6, 100, time_in_force=FOK)) == "fok_not_fillable"
    assert e.snapshot()[:3] == before[:3]
    ev = place(e, 5, BUY, L, 10, 101, time_in_force=FOK)
    assert fills(ev) == [(1, 5, 100, 5), (2, 5, 101, 5)]


def test_fok_market(e: Engine) -> None:
    place(e, 1, BUY, L, 5, 100)
    assert rejected(place(e, 2, SELL, M, 6, time_in_force=FOK)) == "fok_not_fillable"
    assert fills(place(e, 3, SELL, M, 5, time_in_force=FOK)) == [(1, 3, 100, 5)]


def test_gtd_expires_on_callers_clock(e: Engine) -> None:
    ev = place(e, 1, BUY, L, 5, 100, time_in_force=GTD, expires_at=1000, ts=10)
    assert ev[-1] == OrderRested(1, 100, 5)
    assert e.apply(Tick(999)) == []
    assert e.best_bid() == 100
    assert e.apply(Tick(1000)) == [OrderExpired(1, 5)]
    assert e.best_bid() is None and e.order(1) is None


def test_gtd_expiry_runs_before_the_command_that_brings_the_time(e: Engine) -> None:
    place(e, 1, BUY, L, 5, 100, time_in_force=GTD, expires_at=50)
    ev = place(e, 2, SELL, L, 5, 100, ts=60)
    assert ev[0] == OrderExpired(1, 5)
    assert fills(ev) == [] and ev[-1] == OrderRested(2, 100, 5)


def test_gtd_partly_filled_expires_its_remainder(e: Engine) -> None:
    place(e, 1, BUY, L, 5, 100, time_in_force=GTD, expires_at=50)
    place(e, 2, SELL, L, 2, 100, ts=10)
    assert e.apply(Tick(50)) == [OrderExpired(1, 3)]


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"time_in_force": GTD}, "missing_expiry"),
        ({"time_in_force": GTD, "expires_at": 5, "ts": 5}, "expiry_in_past"),
        ({"expires_at": 100}, "unexpected_expiry"),
    ],
)
def test_gtd_rules(e: Engine, kw: dict[str, object], code: str) -> None:
    assert rejected(place(e, 1, BUY, L, 5, 100, **kw)) == code


# ------------------------------------------------------------------------ stops


def trade_at(e: Engine, price: int, oid: int) -> None:
    """Make the last trade price ``price`` (users 900/901 trade 1 unit)."""
    place(e, oid, SELL, L, 1, price, user=900)
    assert fills(place(e, oid + 1, BUY, L, 1, price, user=901))


def test_stop_market_sell_triggers_at_or_below_stop(e: Engine) -> None:
    trade_at(e, 100, 100)
    place(e, 1, BUY, L, 10, 95)  # a bid to sell into
    ev = place(e, 2, SELL, SM, 4, stop_price=97)
    assert [type(x) for x in ev] == [OrderAccepted]
    assert e.order(2).state == "pending"  # type: ignore[union-attr]
    trade_at(e, 98, 102)
    assert e.order(2) is not None
    place(e, 104, SELL, L, 1, 97, user=900)
    ev = place(e, 105, BUY, L, 1, 97, user=901)
    assert ev[-2] == OrderTriggered(2, 97)
    assert fills(ev)[-1] == (1, 2, 95, 4)
    assert e.order(2) is None and e.order(1).remaining == 6  # type: ignore[union-attr]


def test_stop_limit_buy_rests_at_limit_after_trigger(e: Engine) -> None:
    trade_at(e, 100, 100)
    place(e, 1, BUY, SL, 5, 106, stop_price=105)
    trade_at(e, 104, 102)
    assert e.order(1).state == "pending"  # type: ignore[union-attr]
    place(e, 104, SELL, L, 1, 105, user=900)
    ev = place(e, 105, BUY, L, 1, 105, user=901)
    assert OrderTriggered(1, 105) in ev
    assert ev[-1] == OrderRested(1, 106, 5)
    assert e.best_bid() == 106


def test_stop_that_would_trigger_at_once_is_refused(e: Engine) -> None:
    trade_at(e, 100, 100)
    assert rejected(place(e, 1, SELL, SM, 5, stop_price=100)) == "stop_would_trigger"
    assert rejected(place(e, 2, BUY, SL, 5, 120, stop_price=99)) == "stop_would_trigger"


def test_stops_cascade_in_placement_order(e: Engine) -> None:
    trade_at(e, 100, 100)
    place(e, 50, BUY, L, 3, 90, user=50)
    place(e, 51, BUY, L, 3, 80, user=51)
    place(e, 1, SELL, SM, 3, stop_price=95)  # fills at 90 -> sets last 90
    place(e, 2, SELL, SM, 3, stop_price=85)  # then triggers at 90? no: 90 > 85; at 80 yes
    place(e, 104, SELL, L, 1, 95, user=900)
    ev = place(e, 105, BUY, L, 1, 95, user=901)
    trig = of(ev, OrderTriggered)
    assert trig == [OrderTriggered(1, 95)]
    assert e.last_price == 90 and e.order(2) is not None
    place(e, 3, SELL, SM, 1, stop_price=89)
    ev = place(e, 4, SELL, M, 1, user=4)  # trades 1 @ 80 -> last 80: both 2 and 3 fire
    assert of(ev, OrderTriggered) == [OrderTriggered(2, 80), OrderTriggered(3, 80)]
    assert [f[1] for f in fills(ev)] == [4, 2]  # 2 took the remaining 2 at 80
    assert ev[-1] == OrderCancelled(3, 1, "market_unfilled")


# -------------------------------------------------------------------------- OCO


def test_oco_limit_fill_cancels_stop_leg(e: Engine) -> None:
    trade_at(e, 100, 100)
    ev = place(e, 1, SELL, OCO, 10, 110, stop_price=90)
    assert ev[-1] == OrderRested(1, 110, 10)
    assert e.order(1).state == "oco"  # type: ignore[union-attr]
    ev = place(e, 2, BUY, L, 4, 110)
    assert fills(ev) == [(1, 2, 110, 4)]
    assert OcoLegCancelled(1, "stop") in ev
    assert e.order(1).state == "resting"  # type: ignore[union-attr]
    place(e, 3, BUY, L, 1, 80)
    ev = place(e, 4, SELL, M, 1)  # last -> 80, the stop leg is gone
    assert of(ev, OrderTriggered) == []
    assert e.order(1).remaining == 6  # type: ignore[union-attr]


def test_oco_stop_trigger_pulls_limit_leg(e: Engine) -> None:
    trade_at(e, 100, 100)
    place(e, 1, SELL, OCO, 10, 110, stop_price=90, stop_limit_price=88)
    place(e, 2, BUY, L, 1, 90)
    place(e, 3, BUY, L, 4, 89)
    ev = place(e, 4, SELL, M, 1)  # trades at 90: triggers the stop leg
    assert OrderTriggered(1, 90) in ev and OcoLegCancelled(1, "limit") in ev
    assert fills(ev)[-1] == (3, 1, 89, 4)
    assert ev[-1] == OrderRested(1, 88, 6)
    assert e.depth()[1] == [(88, 6)]  # the 110 leg is out of the book


def test_oco_cancel_removes_both_legs(e: Engine) -> None:
    trade_at(e, 100, 100)
    place(e, 1, BUY, OCO, 10, 90, stop_price=110)
    assert e.apply(CancelOrder(1, 1)) == [OrderCancelled(1, 10, "user")]
    assert e.depth() == ([], [])
    trade_at(e, 120, 102)  # no trigger of a cancelled stop leg
    assert e.order(1) is None


@pytest.mark.parametrize(
    ("side", "price", "stop", "code"),
    [(SELL, 110, 120, "oco_bad_prices"), (BUY, 110, 100, "oco_bad_prices"),
     (SELL, 95, 90, "oco_limit_would_match")],
)
def test_oco_rules(e: Engine, side: Side, price: int, stop: int, code: str) -> None:
    trade_at(e, 100, 100)
    place(e, 5, BUY, L, 1, 96)
    assert rejected(place(e, 1, side, OCO, 5, price, stop_price=stop)) == code


# --------------------------------------------------------------------- trailing


def test_trailing_sell_by_amount_follows_the_peak(e: Engine) -> None:
    trade_at(e, 100, 100)
    place(e, 1, SELL, TR, 5, trail_amount=10)
    assert e.order(1).stop_price == 90  # type: ignore[union-attr]
    trade_at(e, 120, 102)
    assert e.order(1).stop_price == 110  # type: ignore[union-attr]
    trade_at(e, 111, 104)
    assert e.order(1) is not None
    place(e, 2, BUY, L, 10, 105)
    place(e, 106, SELL, L, 1, 110, user=900)
    ev = place(e, 107, BUY, L, 1, 110, user=901)
    assert OrderTriggered(1, 110) in ev
    assert fills(ev)[-1] == (2, 1, 105, 5)


def test_trailing_buy_by_bps_follows_the_trough(e: Engine) -> None:
    trade_at(e, 1000, 100)
    place(e, 1, BUY, TR, 5, trail_bps=500)  # 5%
    assert e.order(1).stop_price == 1050  # type: ignore[union-attr]
    trade_at(e, 800, 102)
    assert e.order(1).stop_price == 840  # type: ignore[union-attr]
    place(e, 2, SELL, L, 10, 900)
    place(e, 106, SELL, L, 1, 840, user=900)
    ev = place(e, 107, BUY, L, 1, 840, user=901)
    assert OrderTriggered(1, 840) in ev
    assert fills(ev)[-1] == (2, 1, 900, 5)


def test_trailing_without_a_last_price_waits_for_the_first_trade(e: Engine) -> None:
    place(e, 1, SELL, TR, 5, trail_amount=10)
    assert e.order(1).stop_price is None  # type: ignore[union-attr]
    trade_at(e, 100, 100)
    assert e.order(1).stop_price == 90  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "kw",
    [{}, {"trail_amount": 5, "trail_bps": 5}, {"trail_amount": 0}, {"trail_bps": 10_000}],
)
def test_trailing_rules(e: Engine, kw: dict[str, object]) -> None:
    assert rejected(place(e, 1, SELL, TR, 5, **kw)) == "invalid_trail"


# -------------------------------------------------------------- cancel, amend


def test_cancel_rules(e: Engine) -> None:
    place(e, 1, BUY, L, 5, 100, user=7)
    assert e.apply(CancelOrder(2, 7)) == [OrderRejected(2, "unknown_order", "", "cancel")]
    assert rejected(e.apply(CancelOrder(1, 8))) == "not_owner"
    assert e.apply(CancelOrder(1, 7)) == [OrderCancelled(1, 5, "user")]
    assert rejected(e.apply(CancelOrder(1, 7))) == "unknown_order"


def test_amend_down_keeps_priority(e: Engine) -> None:
    place(e, 1, SELL, L, 10, 100)
    place(e, 2, SELL, L, 10, 100)
    assert e.apply(AmendOrder(1, 4, user_id=1)) == [OrderReduced(1, 6, "amend")]
    assert e.depth()[1] == [(100, 14)]
    assert fills(place(e, 3, BUY, M, 5)) == [(1, 3, 100, 4), (2, 3, 100, 1)]
    assert rejected(e.apply(AmendOrder(2, 10))) == "amend_not_reduce"
    assert rejected(e.apply(AmendOrder(2, 1))) == "amend_not_reduce"  # <= filled
    assert rejected(e.apply(AmendOrder(2, 5, user_id=9))) == "not_owner"


# ------------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    ("otype", "price", "kw", "code"),
    [
        (L, None, {}, "missing_price"),
        (M, 100, {}, "unexpected_price"),
        (SM, None, {}, "missing_stop_price"),
        (L, 100, {"stop_price": 90}, "unexpected_stop_price"),
        (L, 100, {"stop_limit_price": 90}, "unexpected_stop_limit_price"),
        (L, 100, {"trail_amount": 5}, "unexpected_trail"),
        (M, None, {"time_in_force": GTD, "expires_at": 10}, "invalid_time_in_force"),
        (SM, None, {"stop_price": 90, "time_in_force": FOK}, "invalid_time_in_force"),
        (SL, 90, {"stop_price": 90, "time_in_force": FOK}, "invalid_time_in_force"),
        (OCO, 110, {"stop_price": 90, "time_in_force": IOC}, "invalid_time_in_force"),
        (L, 2_000_000, {}, "price_out_of_range"),
        (SM, None, {"stop_price": 0}, "price_out_of_range"),
    ],
)
def test_invalid_orders_are_rejected_with_a_code(
    e: Engine, otype: OrderType, price: int | None, kw: dict[str, object], code: str
) -> None:
    assert rejected(place(e, 1, SELL, otype, 5, price, **kw)) == code
    assert e.order(1) is None and e.depth() == ([], [])


def test_tick_and_step_rejections() -> None:
    e = Engine(PairSpec(symbol="X/Y", base_asset="X", quote_asset="Y", tick_size=5, step_size=10,
                        min_price=5, max_price=1000, min_quantity=10, max_quantity=1000))
    assert rejected(place(e, 1, BUY, L, 10, 7)) == "price_not_on_tick"
    assert rejected(place(e, 2, BUY, L, 15, 10)) == "quantity_not_on_step"
    assert rejected(place(e, 3, BUY, L, 2000, 10)) == "quantity_out_of_range"
    assert isinstance(place(e, 4, BUY, L, 10, 10)[-1], OrderRested)


def test_duplicate_order_id_is_rejected_even_after_done(e: Engine) -> None:
    place(e, 1, BUY, M, 5)
    assert rejected(place(e, 1, BUY, L, 5, 100)) == "duplicate_order_id"


def test_clock_never_goes_back(e: Engine) -> None:
    e.apply(Tick(100))
    e.apply(Tick(50))
    assert e.now == 100
    assert rejected(place(e, 1, BUY, L, 5, 100, time_in_force=GTD, expires_at=80, ts=90)) \
        == "expiry_in_past"


def test_oco_stop_leg_cancelled_by_an_earlier_trigger_in_the_same_batch(e: Engine) -> None:
    """Regression: a trailing stop and an OCO's stop leg fire on the same trade;
    the trailing stop fills the OCO's limit leg first, so the stop leg is gone
    and must not fire (it used to, booking the order twice)."""
    place(e, 1, BUY, TR, 400, trail_bps=10)  # no last price yet
    place(e, 2, SELL, L, 300, 940)
    place(e, 3, SELL, OCO, 700, 1030, stop_price=970)
    ev = place(e, 4, BUY, L, 300, 940)  # last 940: fires 1, and 3's stop leg
    assert of(ev, OrderTriggered) == [OrderTriggered(1, 940)]
    assert fills(ev) == [(2, 4, 940, 300), (3, 1, 1030, 400)]
    assert OcoLegCancelled(3, "stop") in ev
    assert e.depth() == ([], [(1030, 300)])
    e.check_invariants()
