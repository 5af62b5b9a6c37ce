"""What the market adds when an ad is posted and when a trade opens: the
ad's price (fixed, or a margin over the index, computed again at match time
and stored on the trade) and each party's verification-level trade limits.

``node.trades.create_ad`` / ``match_ad`` call these in their transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Float, Numeric, cast, func, select
from sqlalchemy.orm import Session, object_session

from node.db.models import CryptoCurrency, P2POrder, User
from node.db.models_market import OrderPricing
from node.errors import ValidationError
from node.market import prices
from node.market.errors import PriceStaleError, PriceUnavailableError
from node.market.limits import Limit, check_limit
from node.market.pricing import convert, margin_price
from node.market.settings import MarketSettings, default_limits
from node.market.verification import levels_of

if TYPE_CHECKING:
    from node.config import Settings

PRICE_TYPES = ("fixed", "margin")
# trades that never moved money do not use up a 24-hour limit
NOT_COUNTED = ("cancelled", "expired")


@dataclass(frozen=True)
class OpeningPolicy:
    """The market rules ``create_ad`` and ``match_ad`` apply, from the settings.
    The default (no settings: direct callers, tests of other slices) checks
    no limits and takes the default price rules."""

    limits_enabled: bool = False
    limits: dict[str, Limit] = field(default_factory=dict)
    limits_fiat: str = "USD"
    price_max_age_s: int = 300
    margin_min_bps: int = -5000
    margin_max_bps: int = 10_000
    unpriced_face_value: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> OpeningPolicy:
        m: MarketSettings = settings.market
        enabled = m.trade_limits_enabled
        if enabled is None:
            enabled = settings.mode != "dev"
        table = {**default_limits(), **m.trade_limits}  # a level left out keeps its default
        return cls(
            limits_enabled=enabled,
            limits={lv: Limit(per_trade=x.per_trade, per_24h=x.per_24h) for lv, x in table.items()},
            limits_fiat=m.limits_fiat,
            price_max_age_s=m.price_max_age_s,
            margin_min_bps=m.margin_min_bps,
            margin_max_bps=m.margin_max_bps,
            unpriced_face_value=m.limits_unpriced == "face_value",
        )


@dataclass(frozen=True)
class Priced:
    price: Decimal
    price_type: str
    margin_bps: int | None = None
    index_price: Decimal | None = None
    index_observed_at: datetime | None = None


# --- ads -----------------------------------------------------------------


def price_new_ad(
    session: Session,
    *,
    symbol: str,
    fiat: str,
    price_type: str,
    price_per_unit: Decimal | None,
    margin_bps: int | None,
    now: datetime,
    policy: OpeningPolicy,
) -> Priced:
    """A new ad's price: the fixed price given, or the index now plus the
    margin (the index must be fresh: PriceUnavailableError / PriceStaleError)."""
    if price_type not in PRICE_TYPES:
        raise ValidationError("price_type must be fixed or margin", field="price_type")
    if price_type == "fixed":
        if price_per_unit is None or price_per_unit <= 0:
            raise ValidationError(
                "a fixed-price ad needs price_per_unit > 0", field="price_per_unit"
            )
        if margin_bps is not None:
            raise ValidationError("margin_bps is for margin ads", field="margin_bps")
        return Priced(price=price_per_unit, price_type="fixed")
    if margin_bps is None:
        raise ValidationError("a margin ad needs margin_bps", field="margin_bps")
    if price_per_unit is not None:
        raise ValidationError(
            "a margin ad's price follows the index; leave price_per_unit out",
            field="price_per_unit",
        )
    if not policy.margin_min_bps <= margin_bps <= policy.margin_max_bps:
        raise ValidationError(
            f"margin_bps must be between {policy.margin_min_bps} and {policy.margin_max_bps}",
            field="margin_bps",
        )
    return _at_index(
        session,
        symbol=symbol,
        fiat=fiat,
        margin_bps=margin_bps,
        now=now,
        max_age_s=policy.price_max_age_s,
    )


def _at_index(
    session: Session, *, symbol: str, fiat: str, margin_bps: int, now: datetime, max_age_s: int
) -> Priced:
    ix = prices.current_index(session, base=symbol, quote=fiat, now=now, max_age_s=max_age_s)
    return Priced(
        price=margin_price(ix.price, margin_bps),
        price_type="margin",
        margin_bps=margin_bps,
        index_price=ix.price,
        index_observed_at=ix.observed_at,
    )


def record_pricing(session: Session, *, order: P2POrder, priced: Priced) -> None:
    row = OrderPricing(
        p2p_order_id=order.id,
        price_type=priced.price_type,
        margin_bps=priced.margin_bps,
        index_price=priced.index_price,
        index_observed_at=priced.index_observed_at,
    )
    session.add(row)
    session.flush()
    # the order's public view reads it from here (the flushed row's server
    # defaults are expired: a lookup would read it back from the database)
    session.info.setdefault(_PRELOADED, {})[order.id] = row


def pricing_of(session: Session, order_ids: list[int]) -> dict[int, OrderPricing]:
    if not order_ids:
        return {}
    rows = session.scalars(select(OrderPricing).where(OrderPricing.p2p_order_id.in_(order_ids)))
    return {r.p2p_order_id: r for r in rows}


def reprice_margin_ads(session: Session, *, now: datetime, max_age_s: int) -> int:
    """Bring the shown price of active margin ads to the fresh index (the
    listing sorts by it); ads whose index is stale keep their last price
    and cannot be matched until it is fresh again."""
    from node.trades import AD_ACTIVE, fiat_total  # node.trades imports this module

    ads = session.execute(
        select(P2POrder, OrderPricing)
        .join(OrderPricing, OrderPricing.p2p_order_id == P2POrder.id)
        .where(
            P2POrder.kind == "ad", P2POrder.status == AD_ACTIVE, OrderPricing.price_type == "margin"
        )
    ).all()
    n = 0
    for ad, pr in ads:
        try:
            priced = _at_index(
                session,
                symbol=ad.currency.symbol,
                fiat=ad.fiat_currency,
                margin_bps=pr.margin_bps or 0,
                now=now,
                max_age_s=max_age_s,
            )
        except (PriceStaleError, PriceUnavailableError):
            continue
        if priced.price != ad.price_per_unit:
            ad.price_per_unit = priced.price
            ad.total_amount = fiat_total(ad.amount, priced.price, ad.currency.decimals)
            pr.index_price = priced.index_price
            pr.index_observed_at = priced.index_observed_at
            n += 1
    return n


# --- trades --------------------------------------------------------------


def price_at_match(
    session: Session, *, ad: P2POrder, now: datetime, policy: OpeningPolicy
) -> Priced:
    """The trade's price: the ad's fixed price, or the index now plus the
    ad's margin (refused on a stale or missing index)."""
    pr = session.get(OrderPricing, ad.id)
    if pr is None or pr.price_type == "fixed":
        return Priced(price=ad.price_per_unit, price_type="fixed")
    return _at_index(
        session,
        symbol=ad.currency.symbol,
        fiat=ad.fiat_currency,
        margin_bps=pr.margin_bps or 0,
        now=now,
        max_age_s=policy.price_max_age_s,
    )


def value_in(
    total: Decimal,
    *,
    fiat: str,
    crypto_amount: Decimal,
    symbol: str,
    target: str,
    rates: dict[tuple[str, str], Decimal],
    face_value: bool = True,
) -> Decimal:
    """A trade's worth in ``target``: its fiat total when that is the target
    currency; else the fresh index (crypto in target, or fiat in target);
    failing both, its fiat total taken at face value (``face_value``; add FX
    quotes to a price source for exact limits in other currencies), or
    PriceUnavailableError (``market.limits_unpriced = "refuse"``)."""
    if fiat.upper() == target.upper():
        return total
    crypto_rate = rates.get((symbol.upper(), target.upper()))
    if crypto_rate is not None:
        return crypto_amount * crypto_rate
    converted = convert(total, from_fiat=fiat, to_fiat=target, rates=rates)
    if converted is not None:
        return converted
    if face_value:
        return total
    raise PriceUnavailableError(
        f"a {fiat.upper()} trade cannot be valued in {target.upper()} for the trade limits: "
        f"no fresh {symbol.upper()}/{target.upper()} or {fiat.upper()}/{target.upper()} price",
        code="limit_value_unknown",
        fiat=fiat.upper(),
        target=target.upper(),
    )


def check_trade_limits(
    session: Session,
    *,
    ad: P2POrder,
    buyer: User,
    amount: int,
    total: Decimal,
    now: datetime,
    policy: OpeningPolicy,
) -> None:
    """Both parties' limits for a new trade worth ``total`` of the ad's fiat.
    The parties' user rows are locked first (in id order), so two trades
    opening at once for one user cannot both slip under a 24-hour limit."""
    if not policy.limits_enabled:
        return
    ids = sorted({buyer.id, ad.seller_id})
    session.execute(select(User.id).where(User.id.in_(ids)).order_by(User.id).with_for_update())
    rates = prices.fresh_rates(session, now=now, max_age_s=policy.price_max_age_s)
    target = policy.limits_fiat
    decimals = ad.currency.decimals

    value = value_in(
        total,
        fiat=ad.fiat_currency,
        crypto_amount=Decimal(amount) / (Decimal(10) ** decimals),
        symbol=ad.currency.symbol,
        target=target,
        rates=rates,
        face_value=policy.unpriced_face_value,
    )
    levels = levels_of(session, ids)
    since = now - timedelta(hours=24)
    for role, uid in (("buyer", buyer.id), ("seller", ad.seller_id)):
        level = levels.get(uid, "unverified")
        limit = policy.limits.get(level, Limit())
        used = Decimal(0)
        if limit.per_24h is not None:
            used = used_24h(session, uid, since=since, target=target, rates=rates)
        check_limit(role=role, level=level, limit=limit, value=value, used_24h=used, fiat=target)


def used_24h(
    session: Session,
    user_id: int,
    *,
    since: datetime,
    target: str,
    rates: dict[tuple[str, str], Decimal],
) -> Decimal:
    """What ``user_id``'s trades opened since ``since`` are worth in
    ``target`` (trades that never moved money left out), summed in the
    database per (fiat, currency) so a busy trader costs one small query."""
    # exact on PostgreSQL; SQLite keeps base units as text and its integer
    # sum overflows at 2**63, so there they are summed as floats (plenty for a
    # limit check)
    exact = session.get_bind().dialect.name != "sqlite"
    amount = func.sum(cast(P2POrder.amount, Numeric(78, 0) if exact else Float()))
    rows = session.execute(
        select(
            P2POrder.fiat_currency,
            CryptoCurrency.symbol,
            CryptoCurrency.decimals,
            func.sum(P2POrder.total_amount),
            amount,
        )
        .join(CryptoCurrency, CryptoCurrency.id == P2POrder.crypto_currency_id)
        .where(
            P2POrder.kind == "trade",
            (P2POrder.buyer_id == user_id) | (P2POrder.seller_id == user_id),
            P2POrder.matched_at >= since,
            P2POrder.status.not_in(NOT_COUNTED),
        )
        .group_by(P2POrder.fiat_currency, CryptoCurrency.symbol, CryptoCurrency.decimals)
    ).all()
    used = Decimal(0)
    for fiat, symbol, decimals, total, units in rows:
        used += value_in(
            Decimal(str(total or 0)),
            fiat=fiat,
            crypto_amount=Decimal(str(units or 0)) / (Decimal(10) ** decimals),
            symbol=symbol,
            target=target,
            rates=rates,
        )
    return used


_PRELOADED = "escrowd.pricing_preloaded"


def preload_pricing(session: Session, orders: Sequence[P2POrder]) -> None:
    """Load the pricing of a page of orders in one query, so their public
    views (``pricing_fields``) read it from the session instead of one query
    per order."""
    ids = [o.id for o in orders]
    found = pricing_of(session, ids)
    session.info.setdefault(_PRELOADED, {}).update({i: found.get(i) for i in ids})


def pricing_fields(order: P2POrder) -> dict[str, Any]:
    """``price_type`` and ``margin_bps`` of an order, for its public view."""
    session = object_session(order)
    preloaded = session.info.get(_PRELOADED, {}) if session is not None else {}
    if order.id in preloaded:
        pr = preloaded[order.id]
    else:
        pr = session.get(OrderPricing, order.id) if session is not None else None
    if pr is None:
        return {"price_type": "fixed", "margin_bps": None}
    return {"price_type": pr.price_type, "margin_bps": pr.margin_bps}
