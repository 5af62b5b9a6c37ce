"""The double-entry ledger and the engine's use of it: every entry balances per
asset or is refused whole, no user bucket goes negative, a balance is always
the sum of its entries (verify, replay); orders hold funds when accepted and
give back what is left when cancelled, expired or filled; a fill moves both
sides' funds and both fees into the fee account in one entry; market-priced
buys spend only what the user has."""

from __future__ import annotations

from typing import Any

import pytest

from node.orderbook import (
    Account,
    CancelOrder,
    Deposit,
    Engine,
    Fill,
    InsufficientFundsError,
    Ledger,
    LedgerError,
    OrderCancelled,
    OrderRejected,
    OrderType,
    PairSpec,
    PlaceOrder,
    Posting,
    Side,
    Tick,
    TimeInForce,
    UnbalancedEntryError,
)

# price in Q base units per 1000 T base units; tick 10 x step 100 = 1000: exact
PAIR = PairSpec(
    symbol="T/Q", base_asset="T", quote_asset="Q", tick_size=10, step_size=100,
    min_price=10, max_price=1_000_000, min_quantity=100, max_quantity=1_000_000,
    price_scale=1000, maker_fee_bps=10, taker_fee_bps=25,
)
BUY, SELL = Side.BUY, Side.SELL
L, M = OrderType.LIMIT, OrderType.MARKET


def funded() -> tuple[Engine, Ledger]:
    ledger = Ledger()
    e = Engine(PAIR, ledger)
    for user in (1, 2):
        e.apply(Deposit(user, "T", 1_000_000))
        e.apply(Deposit(user, "Q", 1_000_000))
    return e, ledger


def sound(ledger: Ledger) -> None:
    ledger.verify()
    assert all(v == 0 for v in ledger.asset_totals().values())


# ------------------------------------------------------------------ the ledger


def test_unbalanced_entry_is_refused_whole() -> None:
    ledger = Ledger()
    with pytest.raises(UnbalancedEntryError) as info:
        ledger.post("x", [Posting(Account(1, "Q", "available"), 5)])
    assert info.value.code == "unbalanced_entry"
    # balanced in total but not per asset
    with pytest.raises(UnbalancedEntryError):
        ledger.post("x", [Posting(Account(1, "Q", "available"), 5),
                          Posting(Account(1, "T", "available"), -5)])
    assert ledger.entries == [] and ledger.balances() == {}


def test_no_user_bucket_goes_negative() -> None:
    ledger = Ledger()
    ledger.deposit(1, "Q", 100, "d1")
    with pytest.raises(InsufficientFundsError) as info:
        ledger.hold(1, "Q", 101, "h")
    assert info.value.code == "insufficient_funds"
    with pytest.raises(LedgerError):
        ledger.release(1, "Q", 1, "r")  # nothing held
    with pytest.raises(LedgerError):
        ledger.withdraw(1, "Q", 0, "w")
    assert ledger.available(1, "Q") == 100 and len(ledger.entries) == 1


def test_custody_mirrors_user_balances_and_replay_rebuilds() -> None:
    ledger = Ledger()
    ledger.deposit(1, "Q", 100, "d1")
    ledger.deposit(2, "Q", 50, "d2")
    ledger.hold(1, "Q", 30, "h")
    ledger.withdraw(2, "Q", 20, "w")
    assert ledger.custody_total("Q") == 130
    assert ledger.available(1, "Q") == 70 and ledger.held(1, "Q") == 30
    sound(ledger)
    again = Ledger.replay(ledger.entries)
    assert again.balances() == ledger.balances()
    assert again.entries == ledger.entries


def test_verify_catches_a_balance_that_is_not_the_sum_of_entries() -> None:
    ledger = Ledger()
    ledger.deposit(1, "Q", 100, "d1")
    ledger._balances[Account(1, "Q", "available")] = 99  # corrupt the cache
    with pytest.raises(LedgerError):
        ledger.verify()


# ------------------------------------------------------------ engine and funds


def test_limit_orders_hold_and_cancel_releases() -> None:
    e, ledger = funded()
    ev = e.apply(PlaceOrder(1, 1, BUY, L, 2000, 500))  # 2000 T @ 500 Q/1000T = 1000 Q
    assert ev[0].hold == 1000  # type: ignore[union-attr]
    assert ledger.held(1, "Q") == 1000 and ledger.available(1, "Q") == 999_000
    e.apply(PlaceOrder(2, 2, SELL, L, 300, 600))
    assert ledger.held(2, "T") == 300
    e.apply(CancelOrder(1, 1))
    e.apply(CancelOrder(2, 2))
    assert ledger.held(1, "Q") == 0 and ledger.available(1, "Q") == 1_000_000
    assert ledger.held(2, "T") == 0
    sound(ledger)


def test_fill_settles_both_sides_and_fees() -> None:
    e, ledger = funded()
    e.apply(PlaceOrder(1, 1, SELL, L, 4000, 500))  # maker sells 4000 T
    ev = e.apply(PlaceOrder(2, 2, BUY, L, 4000, 510))  # taker buys, holds 2040 Q
    (fill,) = [f for f in ev if isinstance(f, Fill)]
    assert (fill.price, fill.quantity, fill.quote_amount) == (500, 4000, 2000)
    assert fill.taker_fee == 10  # 25 bps of 4000 T received
    assert fill.maker_fee == 2  # 10 bps of 2000 Q received
    assert ledger.available(2, "T") == 1_000_000 + 4000 - 10
    assert ledger.available(2, "Q") == 1_000_000 - 2000  # price improvement given back
    assert ledger.held(2, "Q") == 0
    assert ledger.available(1, "Q") == 1_000_000 + 2000 - 2
    assert ledger.available(1, "T") == 1_000_000 - 4000 and ledger.held(1, "T") == 0
    assert ledger.fees("T") == 10 and ledger.fees("Q") == 2
    settle = [x for x in ledger.entries if x.ref == f"trade:{fill.trade_id}"]
    assert len(settle) == 1 and len(settle[0].postings) == 6
    sound(ledger)


def test_fee_rounds_up_on_small_fill() -> None:
    e, ledger = funded()
    e.apply(PlaceOrder(1, 1, SELL, L, 100, 10))
    ev = e.apply(PlaceOrder(2, 2, BUY, L, 100, 10))
    (fill,) = [f for f in ev if isinstance(f, Fill)]
    assert fill.quote_amount == 1 and fill.maker_fee == 1 and fill.taker_fee == 1
    assert ledger.available(1, "Q") == 1_000_000  # received 1, paid 1 fee
    sound(ledger)


def test_insufficient_funds_is_rejected_and_changes_nothing() -> None:
    e, ledger = funded()
    before = ledger.balances()
    ev = e.apply(PlaceOrder(1, 1, SELL, L, 1_000_100, 500))
    assert ev == [OrderRejected(1, "quantity_out_of_range", ev[0].detail)]  # type: ignore[union-attr]
    e.apply(PlaceOrder(9, 3, SELL, L, 100, 500))
    assert e.apply(PlaceOrder(2, 3, BUY, L, 100, 500)) == [OrderRejected(2, "insufficient_funds")]
    assert e.apply(PlaceOrder(3, 3, BUY, M, 100)) == [OrderRejected(3, "insufficient_funds")]
    assert ledger.balances() == before


def test_market_buy_spends_only_what_the_user_has() -> None:
    ledger = Ledger()
    e = Engine(PAIR, ledger)
    e.apply(Deposit(1, "T", 1_000_000))
    e.apply(Deposit(2, "Q", 1005))  # affords 2000 T at 500, not 2100
    e.apply(PlaceOrder(1, 1, SELL, L, 5000, 500))
    ev = e.apply(PlaceOrder(2, 2, BUY, M, 5000))
    (fill,) = [f for f in ev if isinstance(f, Fill)]
    assert fill.quantity == 2000 and fill.quote_amount == 1000
    assert ev[-1] == OrderCancelled(2, 3000, "insufficient_funds")
    assert ledger.available(2, "Q") == 5 and ledger.held(2, "Q") == 0
    sound(ledger)


def test_stop_market_buy_holds_at_its_protected_price_when_placed() -> None:
    """A stop-market buy holds price x quantity at stop + 10 % (the pair's
    market protection) when placed, and spends no more than that when it fires."""
    e, ledger = funded()
    e.apply(PlaceOrder(1, 1, SELL, L, 100, 500))
    e.apply(PlaceOrder(2, 2, BUY, L, 100, 500))  # last = 500
    ev = e.apply(PlaceOrder(3, 2, BUY, OrderType.STOP_MARKET, 1000, stop_price=600))
    assert ev[0].hold == 660 and ledger.held(2, "Q") == 660  # type: ignore[union-attr]
    e.apply(PlaceOrder(4, 1, SELL, L, 2000, 600))
    before = ledger.available(2, "Q")
    e.apply(PlaceOrder(5, 2, BUY, L, 100, 600))  # last = 600: the stop fires
    assert e.order(3) is None
    assert e.order(4).remaining == 900  # type: ignore[union-attr]
    assert ledger.held(2, "Q") == 0
    # order 5 paid 60 from available; the stop paid its 600 from the 660 it held
    # since it was placed, and the unspent 60 came back
    assert ledger.available(2, "Q") == before - 60 + 60
    sound(ledger)


def test_stop_market_buy_stops_where_the_market_gaps_past_its_protection() -> None:
    e, ledger = funded()
    e.apply(PlaceOrder(1, 1, SELL, L, 100, 500))
    e.apply(PlaceOrder(2, 2, BUY, L, 100, 500))  # last = 500
    e.apply(PlaceOrder(3, 2, BUY, OrderType.STOP_MARKET, 1000, stop_price=600))  # holds 660
    e.apply(PlaceOrder(4, 1, SELL, L, 100, 600))
    e.apply(PlaceOrder(5, 1, SELL, L, 2000, 1000))  # far above the protected 660
    ev = e.apply(PlaceOrder(6, 2, BUY, L, 100, 600))  # last = 600: the stop fires
    fills = [f for f in ev if isinstance(f, Fill) and f.taker_order_id == 3]
    assert [(f.price, f.quantity) for f in fills] == [(1000, 600)]  # 600 affordable of 660
    assert ev[-1] == OrderCancelled(3, 400, "insufficient_funds")
    assert ledger.held(2, "Q") == 0
    sound(ledger)


def test_oco_buy_holds_the_higher_price_once() -> None:
    e, ledger = funded()
    e.apply(PlaceOrder(1, 1, SELL, L, 100, 500))
    e.apply(PlaceOrder(2, 2, BUY, L, 100, 500))  # last = 500
    ev = e.apply(PlaceOrder(3, 2, BUY, OrderType.OCO, 1000, 400, stop_price=600,
                            stop_limit_price=650))
    assert ev[0].hold == 650 and ledger.held(2, "Q") == 650  # type: ignore[union-attr]
    e.apply(CancelOrder(3))
    assert ledger.held(2, "Q") == 0
    sound(ledger)


def test_expiry_releases_hold() -> None:
    e, ledger = funded()
    e.apply(PlaceOrder(1, 1, BUY, L, 1000, 500, time_in_force=TimeInForce.GTD, expires_at=10))
    assert ledger.held(1, "Q") == 500
    e.apply(Tick(10))
    assert ledger.held(1, "Q") == 0
    sound(ledger)


def test_settle_fill_refuses_bad_fees_and_unheld_funds() -> None:
    ledger = Ledger()
    ledger.deposit(1, "Q", 1000, "d1")
    ledger.deposit(2, "T", 1000, "d2")
    ledger.hold(1, "Q", 500, "h1")
    ledger.hold(2, "T", 100, "h2")
    fill: dict[str, Any] = {
        "ref": "t", "buyer": 1, "seller": 2, "base_asset": "T", "quote_asset": "Q",
    }
    with pytest.raises(LedgerError):
        ledger.settle_fill(**fill, quantity=100, quote_amount=500, buyer_fee=101, seller_fee=0)
    with pytest.raises(LedgerError):  # the seller holds 100 T, not 200
        ledger.settle_fill(**fill, quantity=200, quote_amount=500, buyer_fee=0, seller_fee=0)
    with pytest.raises(LedgerError):  # the buyer holds 500 Q, not 600
        ledger.settle_fill(**fill, quantity=100, quote_amount=600, buyer_fee=0, seller_fee=0)
    assert len(ledger.entries) == 4
    ledger.settle_fill(**fill, quantity=100, quote_amount=500, buyer_fee=1, seller_fee=2)
    assert ledger.available(1, "T") == 99 and ledger.available(2, "Q") == 498
    assert ledger.fees("T") == 1 and ledger.fees("Q") == 2
    sound(ledger)


def test_set_funds_books_the_difference_against_custody() -> None:
    from node.orderbook import FundsSet, SetFunds

    e, ledger = funded()
    assert e.apply(SetFunds(1, "Q", 400)) == [FundsSet(1, "Q", 400, -999_600)]
    assert ledger.available(1, "Q") == 400
    assert e.apply(SetFunds(1, "Q", 500)) == [FundsSet(1, "Q", 500, 100)]
    assert e.apply(PlaceOrder(1, 1, BUY, L, 1000, 600)) == [OrderRejected(1, "insufficient_funds")]
    assert e.apply(SetFunds(1, "Q", 500)) == [FundsSet(1, "Q", 500, 0)]
    sound(ledger)


def test_protected_price_is_on_tick_and_capped() -> None:
    assert PAIR.protected_price(600) == 660
    assert PAIR.protected_price(601) == 670  # 661.1 up to the next tick
    assert PAIR.protected_price(999_990) == PAIR.max_price
    with pytest.raises(Exception, match="market_protection_bps"):
        PairSpec(**{**PAIR.__dict__, "market_protection_bps": 10_001})
