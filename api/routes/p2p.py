"""The seed's P2P endpoints (/api/p2p-crypto/...): thin handlers over
``node.trades`` (marketplace) and the trade's chain (``node.chain_trades``)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session

from api.deps import ChainsDep, RowId, SessionDep, UserDep
from api.market_deps import MarketDep, PolicyDep
from api.schemas import (
    AdCreate,
    CurrencyPublic,
    DisputeCreate,
    DisputeOpened,
    MatchCreate,
    OrderPublic,
    Page,
    SignedAction,
    SignPayload,
    SubmittedPublic,
    TradeOpened,
)
from api.views import dispute_public, order_public, sign_payload, submitted_public
from node import trades
from node.chain_trades import ChainRegistry
from node.changes import hub, start_listener
from node.db.models import P2POrder, User
from node.domain.escrow import Action, Role, check_action, role_of
from node.errors import PermissionDeniedError, ValidationError
from node.market.opening import preload_pricing

router = APIRouter(prefix="/api/p2p-crypto", tags=["p2p"])

Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]


@router.get("/currencies", response_model=list[CurrencyPublic])
def currencies(session: SessionDep, market: MarketDep) -> list[CurrencyPublic]:
    """Active currencies; ``price`` is the price index in ``price_currency``
    (null when no source quotes it or its quotes are stale)."""
    return [
        CurrencyPublic.model_validate(c, from_attributes=True).model_copy(
            update={"price_currency": market.limits_fiat if c.price is not None else None}
        )
        for c in trades.list_currencies(session)
    ]


@router.get("/orders", response_model=Page)
def list_orders(
    session: SessionDep,
    crypto_currency_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    fiat_currency: Annotated[str | None, Query(max_length=8)] = None,
    payment_method: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page:
    """Active ads, cheapest first."""
    rows, total = trades.list_ads(
        session,
        crypto_currency_id=crypto_currency_id,
        fiat_currency=fiat_currency,
        payment_method=payment_method,
        limit=limit,
        offset=offset,
    )
    preload_pricing(session, rows)
    return Page(data=[order_public(o) for o in rows], total=total, limit=limit, offset=offset)


@router.post("/orders", response_model=OrderPublic, status_code=201)
def create_order(
    body: AdCreate, session: SessionDep, chains: ChainsDep, user: UserDep, policy: PolicyDep
) -> OrderPublic:
    """Post an ad: a sell offer with min and max amounts per trade, at a
    fixed price or at a margin over the price index (``price_type``)."""
    currency = trades.get_currency(session, body.crypto_currency_id)
    chain = chains.get(currency.chain)
    seller_address = chain.validate_address(body.seller_address, field="seller_address")
    amount = int(body.amount)
    ad = trades.create_ad(
        session,
        seller=user,
        data=trades.AdInput(
            crypto_currency_id=currency.id,
            amount=amount,
            min_amount=int(body.min_amount) if body.min_amount is not None else amount,
            max_amount=int(body.max_amount) if body.max_amount is not None else amount,
            price_per_unit=body.price_per_unit,
            fiat_currency=body.fiat_currency,
            payment_methods=body.payment_methods,
            seller_address=seller_address,
            terms_and_conditions=body.terms_and_conditions,
            additional_notes=body.additional_notes,
            price_type=body.price_type,
            margin_bps=body.margin_bps,
        ),
        policy=policy,
    )
    _chain_keys(chain, session, ad, seller_pubkey=body.seller_pubkey,
                seller_refund_pubkey=body.seller_refund_pubkey)
    return order_public(ad)


def _chain_keys(chain: object, session: Session, order: P2POrder, **keys: str | None) -> None:
    """Chain-specific keys the trader brought (Bitcoin: their own public keys)
    go to the chain, which stores them; a chain without keys refuses them."""
    given = {k: v for k, v in keys.items() if v is not None}
    store = getattr(chain, "store_party_keys", None)
    if store is not None:
        store(session, order=order, keys=given)
    elif given:
        raise ValidationError(f"{next(iter(given))} is not used on this chain",
                              field=next(iter(given)))


@router.get("/orders/my", response_model=Page)
def my_orders(session: SessionDep, user: UserDep, limit: Limit = 50, offset: Offset = 0) -> Page:
    rows, total = trades.my_orders(session, user=user, limit=limit, offset=offset)
    preload_pricing(session, rows)
    return Page(data=[order_public(o) for o in rows], total=total, limit=limit, offset=offset)


# Requests holding a long-poll at once (each holds a worker thread; beyond
# this a long-poll answers at once, as a plain read).
LONG_POLLS = threading.BoundedSemaphore(16)


@router.get("/orders/{order_id}", response_model=OrderPublic)
def get_order(
    order_id: RowId,
    request: Request,
    session: SessionDep,
    user: UserDep,
    wait: Annotated[float, Query(ge=0, le=30, description=(
        "long-poll: with `if_status`, hold the request up to this many seconds "
        "while the order's status is still `if_status`; answers the moment it changes"
    ))] = 0,
    if_status: Annotated[str | None, Query(max_length=32)] = None,
) -> OrderPublic:
    polling = wait > 0 and if_status is not None
    seen = hub.watch(order_id) if polling else 0
    try:
        order = trades.get_order(session, order_id)
        if order.kind == "trade":
            trades.get_trade_for(session, order_id, user, order=order)
        if not polling or order.status != if_status or not LONG_POLLS.acquire(blocking=False):
            return order_public(order)
        try:
            factory = request.app.state.sessions
            # changes committed by other processes (a fleet's watcher) arrive
            # by LISTEN; this process' own by the hub directly
            start_listener(factory.kw["bind"].url.render_as_string(hide_password=False))
            session.commit()  # give the connection back while waiting
            deadline = time.monotonic() + wait
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                changed = hub.wait(order_id, seen, min(left, 1.0))
                seen = hub.version(order_id)
                with factory() as fresh:
                    order = trades.get_order(fresh, order_id)
                    if changed or order.status != if_status:
                        return order_public(order)
            with factory() as fresh:
                return order_public(trades.get_order(fresh, order_id))
        finally:
            LONG_POLLS.release()
    finally:
        if polling:
            hub.unwatch(order_id)


@router.post("/orders/{order_id}/match", response_model=TradeOpened, status_code=201)
def match(
    order_id: RowId,
    body: MatchCreate,
    session: SessionDep,
    chains: ChainsDep,
    user: UserDep,
    policy: PolicyDep,
) -> TradeOpened:
    """Take an ad: opens a trade with its escrow; the response tells the
    seller's own wallet exactly how to fund it."""
    ad = trades.get_order(session, order_id)
    chain = chains.get(ad.currency.chain)
    buyer_address = chain.validate_address(body.buyer_address, field="buyer_address")
    now = datetime.now(UTC)
    trade = trades.match_ad(
        session,
        ad_id=order_id,
        buyer=user,
        amount=int(body.amount),
        buyer_address=buyer_address,
        now=now,
        policy=policy,
    )
    _chain_keys(chain, session, trade, buyer_pubkey=body.buyer_pubkey)
    escrow = chain.open_escrow(
        session, trade=trade, currency=ad.currency, arbitrator_address=None, now=now
    )
    session.refresh(trade)
    return TradeOpened(
        order=order_public(trade), funding=chain.funding_instructions(escrow, ad.currency)
    )


@router.get("/orders/{order_id}/funding")
def funding(
    order_id: RowId, session: SessionDep, chains: ChainsDep, user: UserDep
) -> dict[str, object]:
    trade = trades.get_trade_for(session, order_id, user)
    escrow = trades.escrow_of(session, trade)
    return chains.get(escrow.chain).funding_instructions(escrow, trade.currency)


def _party_action(
    *,
    session: Session,
    chains: ChainRegistry,
    user: User,
    order_id: RowId,
    action: Action,
    body: SignedAction,
    buyer_bps: int = 0,
) -> SignPayload | SubmittedPublic:
    """The two steps of every party action: without a signature, what to
    sign; with one, the signed instruction goes to the relayer."""
    trade = trades.get_trade_for(session, order_id, user)
    escrow = trades.escrow_of(session, trade)
    chain = chains.get(escrow.chain)
    role = _role(trade, user)
    view = chain.escrow_view(escrow)
    check_action(view, action, role, now=_chain_now(chain))
    signed = body.psbt if body.psbt is not None else body.signature
    if signed is None:
        return sign_payload(chain.sign_request(escrow, action, buyer_bps=buyer_bps))
    if body.expiry is None and body.psbt is None:
        raise ValidationError("expiry is required with a signature", field="expiry")
    submitted = chain.submit_signed(
        session,
        escrow=escrow,
        action=action,
        buyer_bps=buyer_bps,
        expiry=body.expiry or 0,
        signatures=[signed],
        requested_by=user,
    )
    return submitted_public(submitted, action)


def _role(trade: P2POrder, user: User) -> Role:
    if user.id == trade.seller_id:
        return Role.SELLER
    if user.id == trade.buyer_id:
        return Role.BUYER
    return Role.OUTSIDER


def _chain_now(chain: object) -> int:
    chain_time = getattr(chain, "chain_time", None)
    return int(chain_time()) if callable(chain_time) else int(datetime.now(UTC).timestamp())


def _action_route(path: str, action: Action, doc: str) -> None:
    """One POST endpoint per party action; all work the same two steps."""

    def endpoint(
        order_id: RowId,
        body: SignedAction,
        session: SessionDep,
        chains: ChainsDep,
        user: UserDep,
        response: Response,
    ) -> SignPayload | SubmittedPublic:
        out = _party_action(
            session=session, chains=chains, user=user, order_id=order_id, action=action,
            body=body,
        )
        response.status_code = 202 if isinstance(out, SubmittedPublic) else 200
        return out

    endpoint.__doc__ = doc
    endpoint.__name__ = f"{action.name.lower()}_escrow"
    router.add_api_route(
        f"/orders/{{order_id}}/{path}",
        endpoint,
        methods=["POST"],
        response_model=SignPayload | SubmittedPublic,
        name=endpoint.__name__,
    )


_action_route(
    "payment", Action.MARK_PAID, "The buyer marks the off-chain payment as sent (MARK_PAID)."
)
_action_route(
    "release-escrow", Action.RELEASE, "The seller releases the escrow to the buyer (RELEASE)."
)
_action_route(
    "cancel-escrow",
    Action.CANCEL,
    "The buyer cancels a funded trade; the seller is refunded (CANCEL).",
)
_action_route(
    "reclaim",
    Action.RECLAIM,
    "The seller takes the escrow back after the windows closed (RECLAIM).",
)


@router.post("/orders/{order_id}/dispute", response_model=DisputeOpened, status_code=201)
def dispute(
    order_id: RowId,
    body: DisputeCreate,
    request: Request,
    session: SessionDep,
    chains: ChainsDep,
    user: UserDep,
) -> DisputeOpened:
    """Open a dispute: recorded at once; on chain it needs the party's signed
    DISPUTE (returned to sign when no signature is given)."""
    trade = trades.get_trade_for(session, order_id, user)
    if user.id not in (trade.seller_id, trade.buyer_id):
        raise PermissionDeniedError("only the trade's parties open disputes", code="wrong_party")
    d = trades.open_dispute(
        session,
        trade=trade,
        user=user,
        dispute_type=body.dispute_type,
        description=body.description,
        evidence=list(body.evidence),
        settings=request.app.state.settings.disputes,
    )
    chain_part = _party_action(
        session=session,
        chains=chains,
        user=user,
        order_id=order_id,
        action=Action.DISPUTE,
        body=SignedAction(signature=body.signature, expiry=body.expiry),
    )
    return DisputeOpened(dispute=dispute_public(d), chain=chain_part)


@router.delete("/orders/{order_id}", response_model=OrderPublic)
def cancel(order_id: RowId, session: SessionDep, user: UserDep) -> OrderPublic:
    """Cancel an ad (its seller) or a trade not yet funded (either party)."""
    order = trades.get_order(session, order_id, for_update=True)
    if order.kind == "trade":
        order = trades.get_trade_for(session, order_id, user)
        if user.id not in (order.seller_id, order.buyer_id):
            raise PermissionDeniedError("only the trade's parties cancel it", code="wrong_party")
    trades.cancel_order(session, order=order, user=user, now=datetime.now(UTC))
    return order_public(order)


__all__ = ["router", "role_of"]
