"""The input log's encoding: every engine command survives JSON exactly
(``decode(encode(c)) == c`` through a real JSON round trip, enums by value);
an unknown kind is refused. Default pair parameters from a currency's
decimals keep every fill exact (``tick * step == price_scale``)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.orderbook import (
    STP,
    AmendOrder,
    CancelOrder,
    Deposit,
    OrderType,
    PairSpec,
    PlaceOrder,
    SetFunds,
    Side,
    Tick,
    TimeInForce,
)
from node.trading.codec import decode, encode, kind_of
from node.trading.pairs import PairDefaults

ids = st.integers(1, 2**31 - 1)
amounts = st.integers(1, 10**30)
maybe = st.none() | amounts
places = st.builds(
    PlaceOrder, ids, ids, st.sampled_from(Side), st.sampled_from(OrderType), amounts, maybe,
    maybe, st.sampled_from(TimeInForce), maybe, maybe, maybe, st.none() | st.integers(1, 9999),
    st.none() | st.sampled_from(STP), st.integers(0, 2**53),
)
commands = (
    places
    | st.builds(CancelOrder, ids, st.none() | ids, st.integers(0, 2**53))
    | st.builds(AmendOrder, ids, amounts, st.none() | ids, st.integers(0, 2**53))
    | st.builds(Tick, st.integers(0, 2**53))
    | st.builds(SetFunds, ids, st.sampled_from(["BTC", "USDT", "USDC-SOL"]),
                st.integers(0, 10**30), st.integers(0, 2**53))
    | st.builds(Deposit, ids, st.just("ETH"), amounts, st.integers(0, 2**53), st.text(max_size=8))
)


@settings(derandomize=True, max_examples=300)
@given(commands)
def test_every_command_survives_the_log(command: object) -> None:
    stored = json.loads(json.dumps(encode(command)))  # type: ignore[arg-type]
    again = decode(kind_of(command), stored)  # type: ignore[arg-type]
    assert again == command and type(again) is type(command)
    if isinstance(again, PlaceOrder):
        assert type(again.side) is Side and type(again.order_type) is OrderType


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown command kind"):
        decode("withdraw", {})


@pytest.mark.parametrize("decimals", [0, 2, 6, 8, 9, 18])
def test_default_pair_parameters_are_exact(decimals: int) -> None:
    d = PairDefaults.for_decimals(decimals)
    assert d.tick * d.step == d.price_scale == 10**decimals
    PairSpec(symbol="X/Y", base_asset="X", quote_asset="Y", tick_size=d.tick, step_size=d.step,
             min_price=d.min_price, max_price=d.max_price, min_quantity=d.min_quantity,
             max_quantity=d.max_quantity, price_scale=d.price_scale)  # refuses inexact pairs
