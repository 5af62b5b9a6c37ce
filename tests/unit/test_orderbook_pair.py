"""Trading pair parameters: a pair whose tick, step, bounds, scale or fees make no
sense is refused with a code; prices off tick or out of bounds and quantities
off step or out of bounds are refused with a code naming the rule; the fee and
quote-amount rounding rules hold exactly as documented."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.errors import ValidationError
from node.orderbook import MAX_FEE_BPS, OrderValidationError, PairSpec, fee_amount

GOOD: dict[str, object] = {
    "symbol": "BTC/USDT", "base_asset": "BTC", "quote_asset": "USDT", "tick_size": 10,
    "step_size": 1000, "min_price": 10, "max_price": 1_000_000, "min_quantity": 1000,
    "max_quantity": 10_000_000, "price_scale": 1000, "maker_fee_bps": 10, "taker_fee_bps": 20,
}


def pair(**over: object) -> PairSpec:
    return PairSpec(**{**GOOD, **over})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"quote_asset": "BTC"}, "pair_same_asset"),
        ({"tick_size": 0}, "pair_bad_tick_size"),
        ({"step_size": -1}, "pair_bad_step_size"),
        ({"price_scale": 0}, "pair_bad_price_scale"),
        ({"min_price": 0}, "pair_bad_price_bounds"),
        ({"min_price": 2_000_000}, "pair_bad_price_bounds"),
        ({"min_quantity": 20_000_000}, "pair_bad_quantity_bounds"),
        ({"min_price": 15}, "pair_bounds_off_tick"),
        ({"max_quantity": 10_000_500}, "pair_bounds_off_step"),
        ({"price_scale": 3}, "pair_inexact_notional"),
        ({"maker_fee_bps": MAX_FEE_BPS + 1}, "pair_bad_fee"),
        ({"taker_fee_bps": -1}, "pair_bad_fee"),
    ],
)
def test_bad_pair_is_refused_with_code(over: dict[str, object], code: str) -> None:
    with pytest.raises(OrderValidationError) as info:
        pair(**over)
    assert info.value.code == code
    assert isinstance(info.value, ValidationError)  # maps to HTTP 422 in one place
    assert info.value.to_dict()["symbol"] == "BTC/USDT"


def test_pair_is_immutable() -> None:
    p = pair()
    with pytest.raises(AttributeError):
        p.tick_size = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("price", "code"),
    [(15, "price_not_on_tick"), (0, "price_out_of_range"), (1_000_010, "price_out_of_range")],
)
def test_price_rules(price: int, code: str) -> None:
    with pytest.raises(OrderValidationError) as info:
        pair().check_price(price)
    assert info.value.code == code
    assert info.value.fields["value"] == price


@pytest.mark.parametrize(
    ("qty", "code"),
    [(1500, "quantity_not_on_step"), (0, "quantity_out_of_range"),
     (10_001_000, "quantity_out_of_range")],
)
def test_quantity_rules(qty: int, code: str) -> None:
    with pytest.raises(OrderValidationError) as info:
        pair().check_quantity(qty)
    assert info.value.code == code


def test_bounds_are_inclusive() -> None:
    p = pair()
    p.check_price(10)
    p.check_price(1_000_000)
    p.check_quantity(1000)
    p.check_quantity(10_000_000)


def test_fee_rounds_up_and_never_exceeds_amount() -> None:
    assert fee_amount(10_000, 20) == 20
    assert fee_amount(10_001, 20) == 21  # 20.002 -> 21
    assert fee_amount(1, 1) == 1  # dust goes to the fee account
    assert fee_amount(0, 20) == 0
    assert fee_amount(12_345, 0) == 0


@settings(derandomize=True, max_examples=200)
@given(st.integers(0, 10**30), st.integers(0, MAX_FEE_BPS))
def test_fee_is_the_ceiling(amount: int, bps: int) -> None:
    fee = fee_amount(amount, bps)
    assert fee * 10_000 >= amount * bps > (fee - 1) * 10_000 or fee == 0 == amount * bps
    assert 0 <= fee <= amount


@settings(derandomize=True, max_examples=200)
@given(st.integers(1, 100_000), st.integers(1, 10_000))
def test_quote_amount_is_exact_on_tick_and_step(ticks: int, steps: int) -> None:
    p = pair()
    price, qty = ticks * p.tick_size, steps * p.step_size
    assert p.quote_amount(price, qty) * p.price_scale == price * qty
    assert p.quote_hold(price, qty) == p.quote_amount(price, qty)
