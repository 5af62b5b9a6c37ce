"""Trading pairs: the engine's ``PairSpec`` from a pair row, default parameters
from the currencies' decimals (pure), and idempotent creation of a pair."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.db.models import CryptoCurrency
from node.db.models_trading import TradingPair
from node.errors import NotFoundError
from node.orderbook import PairSpec


def spec_of(pair: TradingPair, base_symbol: str, quote_symbol: str) -> PairSpec:
    """The engine's view of a pair row (raises ``OrderValidationError`` if the
    row's parameters are inconsistent)."""
    return PairSpec(
        symbol=pair.symbol,
        base_asset=base_symbol,
        quote_asset=quote_symbol,
        tick_size=pair.price_tick_size,
        step_size=pair.quantity_step_size,
        min_price=pair.min_price,
        max_price=pair.max_price,
        min_quantity=pair.min_quantity,
        max_quantity=pair.max_quantity,
        price_scale=pair.price_scale,
        maker_fee_bps=pair.maker_fee_bps,
        taker_fee_bps=pair.taker_fee_bps,
        market_protection_bps=pair.market_protection_bps,
    )


def load_spec(session: Session, pair_id: int) -> tuple[TradingPair, PairSpec]:
    pair = session.get(TradingPair, pair_id)
    if pair is None:
        raise NotFoundError("no such trading pair", code="pair_not_found", pair_id=pair_id)
    base = session.get(CryptoCurrency, pair.base_currency_id)
    quote = session.get(CryptoCurrency, pair.quote_currency_id)
    assert base is not None and quote is not None  # foreign keys
    return pair, spec_of(pair, base.symbol, quote.symbol)


@dataclass(frozen=True)
class PairDefaults:
    """Parameters for a new pair from the currencies' decimals: the price is in
    quote base units per whole base coin (``price_scale = 10**base_decimals``),
    a quantity step of 10**-4 coin, and a tick that keeps every fill exact
    (``tick * step == price_scale``)."""

    price_scale: int
    step: int
    tick: int
    min_price: int
    max_price: int
    min_quantity: int
    max_quantity: int

    @classmethod
    def for_decimals(cls, base_decimals: int) -> PairDefaults:
        scale = 10**base_decimals
        step = 10 ** max(base_decimals - 4, 0)
        tick = scale // step
        return cls(
            price_scale=scale, step=step, tick=tick, min_price=tick, max_price=tick * 10**12,
            min_quantity=step, max_quantity=step * 10**10,
        )


def ensure_pair(
    session: Session,
    base: CryptoCurrency,
    quote: CryptoCurrency,
    *,
    maker_fee_bps: int = 10,
    taker_fee_bps: int = 20,
) -> TradingPair:
    """The pair ``BASE/QUOTE``, created with ``PairDefaults`` if it does not exist."""
    symbol = f"{base.symbol}{quote.symbol}"
    found = session.execute(
        select(TradingPair).where(TradingPair.symbol == symbol)
    ).scalar_one_or_none()
    if found is not None:
        return found
    d = PairDefaults.for_decimals(base.decimals)
    pair = TradingPair(
        base_currency_id=base.id, quote_currency_id=quote.id,
        pair_name=f"{base.symbol}/{quote.symbol}", symbol=symbol,
        min_price=d.min_price, max_price=d.max_price,
        min_quantity=d.min_quantity, max_quantity=d.max_quantity,
        price_tick_size=d.tick, quantity_step_size=d.step, price_scale=d.price_scale,
        maker_fee_bps=maker_fee_bps, taker_fee_bps=taker_fee_bps, market_protection_bps=1000,
        status="trading", is_active=True, last_seq=0,
    )
    spec_of(pair, base.symbol, quote.symbol)  # refuse inconsistent parameters now
    session.add(pair)
    session.flush()
    return pair


def seed_pairs(session: Session, wanted: tuple[tuple[str, str], ...]) -> list[TradingPair]:
    """Create each ``(base, quote)`` pair whose two currencies exist (by symbol)."""
    by_symbol: dict[str, CryptoCurrency] = {}
    for cur in session.execute(select(CryptoCurrency).order_by(CryptoCurrency.id)).scalars():
        by_symbol.setdefault(cur.symbol, cur)
    out = []
    for base, quote in wanted:
        if base in by_symbol and quote in by_symbol:
            out.append(ensure_pair(session, by_symbol[base], by_symbol[quote]))
    return out
