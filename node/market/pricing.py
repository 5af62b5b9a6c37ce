"""Price math, pure: the index from source quotes (median of the fresh ones),
margin prices, and converting a fiat amount with the index."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from node.market.errors import PriceStaleError, PriceUnavailableError

BPS = 10_000
PRICE_QUANTUM = Decimal("0.00000001")  # p2p_crypto_orders.price_per_unit scale


@dataclass(frozen=True)
class Quote:
    """One source's price of one ``base`` unit in ``quote`` at ``observed_at``."""

    source: str
    base: str
    quote: str
    price: Decimal
    observed_at: datetime


@dataclass(frozen=True)
class IndexPrice:
    base: str
    quote: str
    price: Decimal
    observed_at: datetime  # the oldest of the quotes it is made of
    sources: tuple[str, ...]


def pair(base: str, quote: str) -> tuple[str, str]:
    return base.strip().upper(), quote.strip().upper()


def index_of(
    quotes: Iterable[Quote], *, base: str, quote: str, now: datetime, max_age_s: int
) -> IndexPrice:
    """The index of ``base``/``quote``: the median of the quotes not older than
    ``max_age_s``. PriceUnavailableError if no source quotes the pair,
    PriceStaleError if every quote is too old (or from the future)."""
    b, q = pair(base, quote)
    mine = [x for x in quotes if pair(x.base, x.quote) == (b, q) and x.price > 0]
    if not mine:
        raise PriceUnavailableError(f"no price source quotes {b}/{q}", base=b, quote=q)
    oldest_ok = now - timedelta(seconds=max_age_s)
    skew = timedelta(seconds=60)
    fresh = [x for x in mine if oldest_ok <= x.observed_at <= now + skew]
    if not fresh:
        newest = max(x.observed_at for x in mine)
        raise PriceStaleError(
            f"the {b}/{q} price is stale (newest quote {newest.isoformat()}, "
            f"max age {max_age_s} s)",
            base=b,
            quote=q,
            observed_at=newest.isoformat(),
            max_age_s=max_age_s,
        )
    price = Decimal(statistics.median(x.price for x in fresh))
    return IndexPrice(
        base=b,
        quote=q,
        price=price,
        observed_at=min(x.observed_at for x in fresh),
        sources=tuple(sorted({x.source for x in fresh})),
    )


def margin_price(index: Decimal, margin_bps: int) -> Decimal:
    """The index plus ``margin_bps`` basis points (negative: below the index),
    rounded half-up to the order table's 8 decimals."""
    if margin_bps <= -BPS:
        raise ValueError("a margin of -100 % or less gives no price")
    price = index * (BPS + margin_bps) / BPS
    return price.quantize(PRICE_QUANTUM, rounding=ROUND_HALF_UP)


def convert(
    amount: Decimal, *, from_fiat: str, to_fiat: str, rates: Mapping[tuple[str, str], Decimal]
) -> Decimal | None:
    """``amount`` of ``from_fiat`` in ``to_fiat`` with a direct or inverse rate
    from ``rates`` ((base, quote) -> price); None when no rate is known."""
    src, dst = from_fiat.upper(), to_fiat.upper()
    if src == dst:
        return amount
    direct = rates.get((src, dst))
    if direct is not None and direct > 0:
        return amount * direct
    inverse = rates.get((dst, src))
    if inverse is not None and inverse > 0:
        return amount / inverse
    return None
