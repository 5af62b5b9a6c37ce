"""Marketplace services: users, currencies, ads, matching, disputes.

Keyword-only data-access functions over a SQLAlchemy session; no HTTP here
(the API maps these errors to problem+json). Chain-specific parts (escrow ids,
funding instructions, signatures) are in the chain's trade module
(``node.evm_trades``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, select, union
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from node.db.models import CryptoCurrency, P2PDispute, P2PEscrow, P2POrder, User
from node.disputes.cases import open_case
from node.disputes.settings import DisputeSettings
from node.domain.escrow import FINAL_TRADE_STATUSES, TradeStatus
from node.errors import (
    AuthenticationError,
    EscrowStateError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from node.market.opening import (
    OpeningPolicy,
    check_trade_limits,
    price_at_match,
    price_new_ad,
    record_pricing,
)

AD_ACTIVE = "active"
AD_PAUSED = "paused"
AD_CANCELLED = "cancelled"
AD_COMPLETED = "completed"
ROLES = ("trader", "arbitrator", "admin")


# --- users ---------------------------------------------------------------


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(
    session: Session, *, username: str, role: str = "trader", evm_address: str | None = None
) -> tuple[User, str]:
    """A new user and their bearer token (shown once, only its hash is kept)."""
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}", field="role")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise ValidationError(f"username {username!r} is taken", code="username_taken")
    token = secrets.token_urlsafe(32)
    user = User(
        username=username, role=role, api_token_hash=hash_token(token), evm_address=evm_address
    )
    try:
        with session.begin_nested():  # a concurrent sign-up of the same name loses cleanly
            session.add(user)
            session.flush()
    except IntegrityError:
        raise ValidationError(f"username {username!r} is taken", code="username_taken") from None
    return user, token


def authenticate(session: Session, token: str | None) -> User:
    if not token:
        raise AuthenticationError("a bearer token is required")
    user = session.scalar(select(User).where(User.api_token_hash == hash_token(token)))
    if user is None:
        raise AuthenticationError("unknown or revoked token", code="invalid_token")
    return user


# --- currencies ----------------------------------------------------------


@dataclass(frozen=True)
class CurrencySpec:
    name: str
    symbol: str
    chain: str
    network: str
    decimals: int
    contract_address: str | None = None


def upsert_currency(session: Session, spec: CurrencySpec) -> CryptoCurrency:
    cur = session.scalar(
        select(CryptoCurrency).where(
            CryptoCurrency.chain == spec.chain,
            CryptoCurrency.network == spec.network,
            CryptoCurrency.symbol == spec.symbol,
        )
    )
    if cur is None:
        cur = CryptoCurrency(
            chain=spec.chain,
            network=spec.network,
            symbol=spec.symbol,
            slug=f"{spec.chain}-{spec.network}-{spec.symbol}".lower(),
        )
        session.add(cur)
    cur.name = spec.name
    cur.decimals = spec.decimals
    cur.contract_address = spec.contract_address
    cur.is_active = True
    session.flush()
    return cur


def list_currencies(session: Session) -> list[CryptoCurrency]:
    return list(
        session.scalars(
            select(CryptoCurrency)
            .where(CryptoCurrency.is_active.is_(True))
            .order_by(CryptoCurrency.id)
        )
    )


def get_currency(session: Session, currency_id: int) -> CryptoCurrency:
    cur = session.get(CryptoCurrency, currency_id)
    if cur is None or not cur.is_active:
        raise NotFoundError(f"no active currency {currency_id}", field="crypto_currency_id")
    return cur


# --- ads -----------------------------------------------------------------


@dataclass(frozen=True)
class AdInput:
    crypto_currency_id: int
    amount: int
    min_amount: int
    max_amount: int
    price_per_unit: Decimal | None  # None for a margin ad (priced from the index)
    fiat_currency: str
    payment_methods: list[str]
    seller_address: str
    terms_and_conditions: str | None = None
    additional_notes: str | None = None
    price_type: str = "fixed"  # fixed | margin (the index plus margin_bps)
    margin_bps: int | None = None


def create_ad(
    session: Session,
    *,
    seller: User,
    data: AdInput,
    now: datetime | None = None,
    policy: OpeningPolicy | None = None,
) -> P2POrder:
    currency = get_currency(session, data.crypto_currency_id)
    if data.amount <= 0:
        raise ValidationError("amount must be positive", field="amount")
    if not 0 < data.min_amount <= data.max_amount <= data.amount:
        raise ValidationError("need 0 < min_amount <= max_amount <= amount", field="min_amount")
    priced = price_new_ad(
        session,
        symbol=currency.symbol,
        fiat=data.fiat_currency.upper(),
        price_type=data.price_type,
        price_per_unit=data.price_per_unit,
        margin_bps=data.margin_bps,
        now=now or datetime.now(UTC),
        policy=policy or OpeningPolicy(),
    )
    ad = P2POrder(
        kind="ad",
        seller_id=seller.id,
        crypto_currency_id=currency.id,
        order_type="sell",
        amount=data.amount,
        min_amount=data.min_amount,
        max_amount=data.max_amount,
        remaining_amount=data.amount,
        price_per_unit=priced.price,
        fiat_currency=data.fiat_currency.upper(),
        total_amount=fiat_total(data.amount, priced.price, currency.decimals),
        payment_methods=list(data.payment_methods),
        payment_method=data.payment_methods[0] if data.payment_methods else None,
        status=AD_ACTIVE,
        seller_address=data.seller_address,
        terms_and_conditions=data.terms_and_conditions,
        additional_notes=data.additional_notes,
    )
    session.add(ad)
    session.flush()
    set_committed_value(ad, "escrow", None)  # an ad has none (no lookup for it)
    record_pricing(session, order=ad, priced=priced)
    return ad


def fiat_total(amount: int, price: Decimal, decimals: int) -> Decimal:
    return (Decimal(amount) / (Decimal(10) ** decimals) * price).quantize(Decimal("0.00000001"))


# Totals of listings are counted up to this many rows past the page: an
# exact count over a million matching ads costs a quarter of a second per
# page, and even 10,000 index entries cost milliseconds on every rebuild of a
# cached page. ``total == offset + limit + COUNT_AHEAD`` means "at least
# that many": a client paging deeper keeps paging while pages are full (and
# each deeper page counts further).
COUNT_AHEAD = 1_000


def count_cap(limit: int, offset: int) -> int:
    return offset + limit + COUNT_AHEAD


def _capped_count(session: Session, ids: Select[Any], cap: int) -> int:
    return session.scalar(select(func.count()).select_from(ids.limit(cap).subquery())) or 0


def list_ads(
    session: Session,
    *,
    crypto_currency_id: int | None = None,
    fiat_currency: str | None = None,
    payment_method: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[P2POrder], int]:
    """Active ads, cheapest first (``ix_p2p_orders_book`` walks them in that
    order); the total is capped at ``count_cap``."""
    conds = [P2POrder.kind == "ad", P2POrder.status == AD_ACTIVE]
    if crypto_currency_id is not None:
        conds.append(P2POrder.crypto_currency_id == crypto_currency_id)
    if fiat_currency is not None:
        conds.append(P2POrder.fiat_currency == fiat_currency.upper())
    if payment_method is not None:
        conds.append(P2POrder.payment_method == payment_method)
    total = _capped_count(session, select(P2POrder.id).where(*conds), count_cap(limit, offset))
    rows = session.scalars(
        select(P2POrder)
        .where(*conds)
        .order_by(P2POrder.price_per_unit, P2POrder.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total


def my_orders(
    session: Session, *, user: User, limit: int = 50, offset: int = 0
) -> tuple[list[P2POrder], int]:
    """The user's ads and trades, newest first: the newest ``offset + limit``
    ids as seller and as buyer, each read off its index, merged (not one
    ``seller OR buyer`` scan of the table); the total is capped."""
    def side(column: Any, n: int) -> Any:
        return (
            select(P2POrder.id).where(column == user.id).order_by(P2POrder.id.desc()).limit(n)
        ).subquery()

    n = offset + limit
    seller, buyer = side(P2POrder.seller_id, n), side(P2POrder.buyer_id, n)
    merged = union(select(seller.c.id), select(buyer.c.id)).subquery()
    page = select(merged.c.id).order_by(merged.c.id.desc()).limit(limit).offset(offset)
    rows = session.scalars(
        select(P2POrder).where(P2POrder.id.in_(page)).order_by(P2POrder.id.desc())
    ).all()
    cap = count_cap(limit, offset)
    cap_s, cap_b = side(P2POrder.seller_id, cap), side(P2POrder.buyer_id, cap)
    both = union(select(cap_s.c.id), select(cap_b.c.id)).subquery()
    total = session.scalar(select(func.count()).select_from(both)) or 0
    return list(rows), min(total, cap)


def get_order(session: Session, order_id: int, *, for_update: bool = False) -> P2POrder:
    q = select(P2POrder).where(P2POrder.id == order_id)
    if for_update:
        q = q.with_for_update(of=P2POrder)
    order = session.scalar(q)
    if order is None:
        raise NotFoundError(f"no order {order_id}", order_id=order_id)
    return order


def get_trade_for(
    session: Session, order_id: int, user: User, *, order: P2POrder | None = None
) -> P2POrder:
    """A trade the user is a party of (arbitrators and admins see every trade);
    anyone else gets 404, so ids of other people's trades leak nothing."""
    if order is None:
        order = get_order(session, order_id)
    if order.kind != "trade":
        raise EscrowStateError("this is an ad, not a trade", code="not_a_trade", order_id=order_id)
    if user.id not in (order.seller_id, order.buyer_id) and user.role not in (
        "arbitrator",
        "admin",
    ):
        raise NotFoundError(f"no order {order_id}", order_id=order_id)
    return order


# --- matching ------------------------------------------------------------


def match_ad(
    session: Session,
    *,
    ad_id: int,
    buyer: User,
    amount: int,
    buyer_address: str,
    now: datetime,
    policy: OpeningPolicy | None = None,
) -> P2POrder:
    """Take ``amount`` of an ad: a new trade row. The ad's remaining amount is
    reserved under a row lock, so concurrent matches never oversell it. The
    price is fixed now (a margin ad's from the fresh index) and stored on the
    trade; both parties' verification-level limits are checked (``policy``)."""
    policy = policy or OpeningPolicy()
    ad = get_order(session, ad_id, for_update=True)
    if ad.kind != "ad":
        raise EscrowStateError("only ads can be matched", code="not_an_ad")
    if ad.status != AD_ACTIVE:
        raise EscrowStateError(f"the ad is {ad.status}", code="ad_not_active", state=ad.status)
    if ad.seller_id == buyer.id:
        raise PermissionDeniedError("you cannot take your own ad", code="own_ad")
    assert ad.min_amount is not None and ad.max_amount is not None
    remaining = ad.remaining_amount if ad.remaining_amount is not None else ad.amount
    if not ad.min_amount <= amount <= ad.max_amount:
        raise ValidationError(
            f"amount must be between {ad.min_amount} and {ad.max_amount}", field="amount"
        )
    if amount > remaining:
        raise ValidationError(f"only {remaining} left on this ad", field="amount")
    priced = price_at_match(session, ad=ad, now=now, policy=policy)
    total = fiat_total(amount, priced.price, ad.currency.decimals)
    check_trade_limits(
        session, ad=ad, buyer=buyer, amount=amount, total=total, now=now, policy=policy
    )
    ad.remaining_amount = remaining - amount
    if ad.remaining_amount < ad.min_amount:
        ad.status = AD_COMPLETED
    trade = P2POrder(
        kind="trade",
        parent_id=ad.id,
        seller_id=ad.seller_id,
        buyer_id=buyer.id,
        crypto_currency_id=ad.crypto_currency_id,
        order_type="sell",
        amount=amount,
        price_per_unit=priced.price,
        fiat_currency=ad.fiat_currency,
        total_amount=total,
        payment_method=ad.payment_method,
        payment_methods=list(ad.payment_methods),
        status=TradeStatus.AWAITING_FUNDING.value,
        seller_address=ad.seller_address,
        buyer_address=buyer_address,
        matched_at=now,
        terms_and_conditions=ad.terms_and_conditions,
    )
    session.add(trade)
    session.flush()
    record_pricing(session, order=trade, priced=priced)
    return trade


def cancel_order(session: Session, *, order: P2POrder, user: User, now: datetime) -> P2POrder:
    """Cancel an ad (its seller) or an unfunded trade (either party). A funded
    trade is cancelled on chain instead (the buyer's signed CANCEL)."""
    if order.kind == "ad":
        if order.seller_id != user.id:
            raise NotFoundError(f"no order {order.id}", order_id=order.id)
        if order.status in (AD_CANCELLED, AD_COMPLETED):
            raise EscrowStateError(f"the ad is already {order.status}", state=order.status)
        order.status = AD_CANCELLED
        order.cancelled_at = now
        return order
    if order.status != TradeStatus.AWAITING_FUNDING.value:
        raise EscrowStateError(
            "a funded trade is cancelled on chain: the buyer signs CANCEL",
            code="funded_trade",
            state=order.status,
        )
    order.status = TradeStatus.CANCELLED.value
    order.cancelled_at = now
    _give_back_to_ad(session, order)
    return order


def _give_back_to_ad(session: Session, trade: P2POrder) -> None:
    if trade.parent_id is None:
        return
    ad = get_order(session, trade.parent_id, for_update=True)
    ad.remaining_amount = (ad.remaining_amount or 0) + trade.amount
    if ad.status == AD_COMPLETED:
        ad.status = AD_ACTIVE


def expire_unfunded(session: Session, *, now: datetime, funding_window_s: int) -> list[int]:
    """Trades never funded within the funding window: expired, amount back to the ad."""
    cutoff = now.timestamp() - funding_window_s
    trades = session.scalars(
        select(P2POrder)
        .where(P2POrder.kind == "trade", P2POrder.status == TradeStatus.AWAITING_FUNDING.value)
        # of=P2POrder: the escrow is joined (outer) and PostgreSQL locks no nullable side
        .with_for_update(skip_locked=True, of=P2POrder)
    ).all()
    expired = []
    for t in trades:
        matched = t.matched_at
        if matched is None:
            continue
        if matched.tzinfo is None:
            matched = matched.replace(tzinfo=UTC)
        if matched.timestamp() < cutoff:
            t.status = TradeStatus.EXPIRED.value
            t.cancelled_at = now
            _give_back_to_ad(session, t)
            expired.append(t.id)
    return expired


# --- disputes ------------------------------------------------------------


def open_dispute(
    session: Session,
    *,
    trade: P2POrder,
    user: User,
    dispute_type: str,
    description: str,
    evidence: list[Any],
    settings: DisputeSettings | None = None,
) -> P2PDispute:
    """Open a dispute (or return the open one): its case gets deadlines and
    an arbitrator (``node.disputes.cases``), and a trade event is emitted."""
    if user.id not in (trade.seller_id, trade.buyer_id):
        raise NotFoundError(f"no order {trade.id}", order_id=trade.id)
    if TradeStatus(trade.status) in FINAL_TRADE_STATUSES:
        raise EscrowStateError(f"the trade is {trade.status}", state=trade.status)
    existing = session.scalar(
        select(P2PDispute).where(P2PDispute.p2p_order_id == trade.id, P2PDispute.status == "open")
    )
    if existing is not None:
        return existing
    dispute = P2PDispute(
        p2p_order_id=trade.id,
        initiator_user_id=user.id,
        dispute_type=dispute_type,
        description=description,
        evidence=evidence,
        status="open",
    )
    session.add(dispute)
    session.flush()
    open_case(session, dispute=dispute, trade=trade, cfg=settings or DisputeSettings())
    return dispute


def get_dispute(session: Session, dispute_id: int) -> P2PDispute:
    d = session.get(P2PDispute, dispute_id)
    if d is None:
        raise NotFoundError(f"no dispute {dispute_id}", dispute_id=dispute_id)
    return d


def list_disputes(session: Session, *, status: str | None = None) -> list[P2PDispute]:
    q = select(P2PDispute).order_by(P2PDispute.id)
    if status:
        q = q.where(P2PDispute.status == status)
    return list(session.scalars(q))


def escrow_of(session: Session, trade: P2POrder) -> P2PEscrow:
    escrow = session.scalar(select(P2PEscrow).where(P2PEscrow.p2p_order_id == trade.id))
    if escrow is None:
        raise NotFoundError(f"trade {trade.id} has no escrow", order_id=trade.id)
    return escrow
