"""Price math: the index is the median of fresh quotes, stale and missing
prices are refused with their codes, margins round half-up to 8 decimals,
fiat conversion uses a direct or inverse rate, and trades are valued in the
limits currency through the index or, failing that, at face value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.market.errors import PriceStaleError, PriceUnavailableError
from node.market.opening import value_in
from node.market.pricing import Quote, convert, index_of, margin_price

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def q(src: str, price: str, age_s: int = 0, base: str = "ETH", quote: str = "EUR") -> Quote:
    return Quote(src, base, quote, Decimal(price), NOW - timedelta(seconds=age_s))


def test_index_is_the_median_of_fresh_quotes() -> None:
    quotes = [
        q("a", "3000", 10),
        q("b", "3100", 20),
        q("c", "9999", 3600),
        q("d", "2900", 5),
        q("e", "1", 0, quote="USD"),
    ]
    ix = index_of(quotes, base="eth", quote="eur", now=NOW, max_age_s=300)
    assert ix.price == Decimal("3000") and ix.sources == ("a", "b", "d")
    assert ix.observed_at == NOW - timedelta(seconds=20)
    two = index_of(quotes[:2], base="ETH", quote="EUR", now=NOW, max_age_s=300)
    assert two.price == Decimal("3050")


def test_missing_and_stale_prices_are_refused() -> None:
    with pytest.raises(PriceUnavailableError) as missing:
        index_of([q("a", "3000")], base="BTC", quote="EUR", now=NOW, max_age_s=300)
    assert missing.value.code == "price_unavailable" and missing.value.http_status == 503
    with pytest.raises(PriceStaleError) as stale:
        index_of([q("a", "3000", 301)], base="ETH", quote="EUR", now=NOW, max_age_s=300)
    assert stale.value.code == "price_stale" and stale.value.fields["max_age_s"] == 300
    future = Quote("a", "ETH", "EUR", Decimal(1), NOW + timedelta(hours=1))
    with pytest.raises(PriceStaleError):  # a clock far ahead is not "fresh"
        index_of([future], base="ETH", quote="EUR", now=NOW, max_age_s=300)


@pytest.mark.parametrize(
    ("index", "bps", "want"),
    [
        ("3000", 200, "3060"),
        ("3000", -150, "2955"),
        ("0.000000015", 0, "0.00000002"),
        ("1.23456789", 1, "1.23469135"),
        ("100", -9999, "0.01"),
    ],
)
def test_margin_price(index: str, bps: int, want: str) -> None:
    assert margin_price(Decimal(index), bps) == Decimal(want)


def test_margin_of_minus_100_percent_is_refused() -> None:
    with pytest.raises(ValueError, match="margin"):
        margin_price(Decimal(1), -10_000)


@given(
    st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(10**9), places=4),
    st.integers(-9999, 100_000),
    st.integers(-9999, 100_000),
)
def test_margin_price_is_monotonic_in_the_margin(index: Decimal, a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    assert margin_price(index, lo) <= margin_price(index, hi)


def test_convert_direct_inverse_and_unknown() -> None:
    rates = {("EUR", "USD"): Decimal("1.10"), ("USD", "JPY"): Decimal("150")}
    assert convert(Decimal(100), from_fiat="eur", to_fiat="USD", rates=rates) == Decimal("110")
    assert convert(Decimal(300), from_fiat="JPY", to_fiat="USD", rates=rates) == Decimal(2)
    assert convert(Decimal(5), from_fiat="USD", to_fiat="USD", rates={}) == Decimal(5)
    assert convert(Decimal(5), from_fiat="GBP", to_fiat="USD", rates=rates) is None


def test_trade_value_in_the_limits_currency() -> None:
    rates = {("ETH", "USD"): Decimal(1000), ("EUR", "USD"): Decimal("1.1")}

    def v(total: int, fiat: str, symbol: str) -> Decimal:
        return value_in(
            Decimal(total),
            fiat=fiat,
            symbol=symbol,
            crypto_amount=Decimal("0.5"),
            target="USD",
            rates=rates,
        )

    assert v(40, "USD", "ETH") == Decimal(40)
    assert v(40, "EUR", "ETH") == Decimal(500)
    assert v(40, "EUR", "SOL") == Decimal("44.0")
    assert v(40, "NGN", "SOL") == Decimal(40)


def test_unpriced_trade_can_be_refused_instead_of_taken_at_face_value() -> None:
    with pytest.raises(PriceUnavailableError) as exc:
        value_in(
            Decimal(40),
            fiat="NGN",
            crypto_amount=Decimal(1),
            symbol="SOL",
            target="USD",
            rates={},
            face_value=False,
        )
    assert exc.value.code == "limit_value_unknown" and exc.value.http_status == 503
    assert value_in(
        Decimal(40),
        fiat="USD",
        crypto_amount=Decimal(1),
        symbol="SOL",
        target="USD",
        rates={},
        face_value=False,
    ) == Decimal(40)
