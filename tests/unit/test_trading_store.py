"""How the engine's ledger entries become custody ledger legs (pure): user
buckets map to ``user:<id>:available|held``, the fee account to ``fees``,
zero legs are dropped, and entries against ``@custody`` (the mirror of the
custody ledger's balances, ``SetFunds``) are not posted back."""

from __future__ import annotations

from node.custody.ledger import Leg, net_legs
from node.orderbook import Engine, Ledger, OrderType, PairSpec, PlaceOrder, SetFunds, Side
from node.trading.store import custody_legs

PAIR = PairSpec(symbol="BTCUSDT", base_asset="BTC", quote_asset="USDT", tick_size=1,
                step_size=1, min_price=1, max_price=10**9, min_quantity=1,
                max_quantity=10**9, maker_fee_bps=10, taker_fee_bps=1000)


def test_engine_entries_map_to_balanced_custody_legs() -> None:
    ledger = Ledger()
    e = Engine(PAIR, ledger)
    e.apply(SetFunds(1, "BTC", 100))
    e.apply(SetFunds(2, "USDT", 10_000))
    e.apply(PlaceOrder(1, 1, Side.SELL, OrderType.LIMIT, 10, 50))
    e.apply(PlaceOrder(2, 2, Side.BUY, OrderType.LIMIT, 1, 50))
    mirror, _usdt, hold, buy_hold, fill = ledger.entries
    assert custody_legs(mirror) is None
    assert custody_legs(hold) == [Leg("user:1:available", "BTC", -10),
                                  Leg("user:1:held", "BTC", 10)]
    assert custody_legs(buy_hold) == [Leg("user:2:available", "USDT", -50),
                                      Leg("user:2:held", "USDT", 50)]
    legs = custody_legs(fill)
    assert legs is not None
    net_legs(legs)  # balanced per asset, no zero leg (custody refuses both)
    # the buyer's 10 % taker fee on 1 BTC unit is the whole unit: no zero leg for them
    assert Leg("user:2:available", "BTC", 0) not in legs
    assert Leg("fees", "BTC", 1) in legs and Leg("fees", "USDT", 1) in legs
    assert Leg("user:1:available", "USDT", 49) in legs
