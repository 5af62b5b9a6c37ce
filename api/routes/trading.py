"""Order-book trading: pairs, depth, trading orders, trade history, market-data stream.

Prices and quantities are integers in base units sent as strings of digits: a
quantity in base units of the pair's base currency, a price in base units of
the quote currency per ``price_scale`` base units of the base currency (see
``GET /trading-pairs``). Off-tick prices and off-step quantities are 422s with
the engine's code (``price_not_on_tick``, ``quantity_not_on_step`` ...); an
order the engine refuses as the book stands is a 409 with its code
(``insufficient_funds``, ``fok_not_fillable``, ``stop_would_trigger`` ...) and
stays in the user's orders as ``rejected``. A user sees and cancels only their
own orders: anyone else's is a 404.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, aliased
from starlette.concurrency import run_in_threadpool

from api.deps import RowId, SessionDep, UserDep
from node.db.models import CryptoCurrency
from node.db.models_trading import TradingFill, TradingOrder, TradingPair
from node.errors import NotFoundError, ValidationError
from node.orderbook import STP, OrderType, Side, TimeInForce
from node.trading.service import OrderRequest, TradingService, service_for

router = APIRouter(prefix="/api/p2p-crypto", tags=["trading"])

Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
PairFilter = Annotated[int | None, Query(ge=1, le=2**31 - 1)]
MAX_UNITS = 10**40


def _service(request: Request) -> TradingService:
    return service_for(request.app.state.sessions, request.app.state.settings.trading)


def _units(value: Any, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 40:
        n = int(value)
        if 0 < n < MAX_UNITS:
            return n
    raise ValueError("must be a positive integer in base units, as a string of digits")


def _str(value: int | None) -> str | None:
    return None if value is None else str(value)


# ------------------------------------------------------------------ schemas


class PairPublic(BaseModel):
    id: int
    symbol: str
    pair_name: str
    base_currency_id: int
    quote_currency_id: int
    base_asset: str
    quote_asset: str
    min_price: str
    max_price: str
    min_quantity: str
    max_quantity: str
    price_tick_size: str
    quantity_step_size: str
    price_scale: str
    maker_fee_bps: int
    taker_fee_bps: int
    market_protection_bps: int
    status: str
    is_active: bool


class PairPage(BaseModel):
    data: list[PairPublic]
    total: int
    limit: int
    offset: int


class DepthPublic(BaseModel):
    pair_id: int
    seq: int
    last_price: str | None
    bids: list[tuple[str, str]] = Field(description="[price, quantity], best first")
    asks: list[tuple[str, str]]


class OrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trading_pair_id: int = Field(ge=1, le=2**31 - 1)
    side: Literal["buy", "sell"]
    order_type: Literal["market", "limit", "stop_market", "stop_limit", "oco", "trailing_stop"]
    quantity: str
    price: str | None = None
    stop_price: str | None = None
    stop_limit_price: str | None = Field(None, description="OCO: the stop leg's limit")
    trail_amount: str | None = None
    trail_bps: int | None = Field(None, ge=1, le=9999)
    time_in_force: Literal["gtc", "ioc", "fok", "gtd"] = "gtc"
    good_till_date: datetime | None = None
    stp: Literal["cancel_newest", "cancel_oldest", "cancel_both", "decrement"] | None = None
    client_order_id: str | None = Field(None, min_length=1, max_length=64,
                                        pattern=r"^[A-Za-z0-9._:-]+$")
    notes: str | None = Field(None, max_length=500)

    @field_validator("quantity")
    @classmethod
    def _quantity(cls, v: Any) -> Any:
        _units(v)
        return v

    @field_validator("price", "stop_price", "stop_limit_price", "trail_amount")
    @classmethod
    def _price(cls, v: Any) -> Any:
        _units(v, optional=True)
        return v

    @field_validator("good_till_date")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("must carry a timezone (e.g. 2026-01-01T00:00:00Z)")
        return v

    def request(self) -> OrderRequest:
        expires = None
        if self.good_till_date is not None:
            expires = int(self.good_till_date.timestamp() * 1000)
        return OrderRequest(
            pair_id=self.trading_pair_id,
            side=Side(self.side),
            order_type=OrderType(self.order_type),
            quantity=_units(self.quantity),  # type: ignore[arg-type]
            price=_units(self.price, optional=True),
            stop_price=_units(self.stop_price, optional=True),
            stop_limit_price=_units(self.stop_limit_price, optional=True),
            trail_amount=_units(self.trail_amount, optional=True),
            trail_bps=self.trail_bps,
            time_in_force=TimeInForce(self.time_in_force),
            expires_at=expires,
            stp=None if self.stp is None else STP(self.stp),
            client_order_id=self.client_order_id,
            notes=self.notes,
        )


class OrderAmend(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity: str = Field(description="the new total quantity: lower than now, above filled")

    @field_validator("quantity")
    @classmethod
    def _quantity(cls, v: Any) -> Any:
        _units(v)
        return v


class OrderPublic(BaseModel):
    id: int
    trading_pair_id: int
    client_order_id: str | None
    order_type: str
    side: str
    quantity: str
    executed_quantity: str
    executed_quote: str
    price: str | None
    stop_price: str | None
    avg_price: Decimal | None
    status: str
    time_in_force: str
    good_till_date: datetime | None
    fee: str
    fee_currency: str
    held: str
    reason: str | None
    notes: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class OrderPage(BaseModel):
    data: list[OrderPublic]
    total: int
    limit: int
    offset: int


class TradePublic(BaseModel):
    """One fill as the user sees it (their order, side, role and fee)."""

    id: int
    trade_id: int
    trading_pair_id: int
    order_id: int
    side: str
    role: Literal["maker", "taker"]
    price: str
    quantity: str
    quote_amount: str
    fee: str
    fee_currency: str
    executed_at: datetime


class TradePage(BaseModel):
    data: list[TradePublic]
    total: int
    limit: int
    offset: int


class MarketTradePublic(BaseModel):
    trade_id: int
    price: str
    quantity: str
    quote_amount: str
    taker_side: str
    ts: int


# -------------------------------------------------------------------- views


def _pair_public(pair: TradingPair, base: str, quote: str) -> PairPublic:
    return PairPublic(
        id=pair.id, symbol=pair.symbol, pair_name=pair.pair_name,
        base_currency_id=pair.base_currency_id, quote_currency_id=pair.quote_currency_id,
        base_asset=base, quote_asset=quote,
        min_price=str(pair.min_price), max_price=str(pair.max_price),
        min_quantity=str(pair.min_quantity), max_quantity=str(pair.max_quantity),
        price_tick_size=str(pair.price_tick_size),
        quantity_step_size=str(pair.quantity_step_size), price_scale=str(pair.price_scale),
        maker_fee_bps=pair.maker_fee_bps, taker_fee_bps=pair.taker_fee_bps,
        market_protection_bps=pair.market_protection_bps, status=pair.status,
        is_active=pair.is_active,
    )


def _order_public(o: TradingOrder) -> OrderPublic:
    return OrderPublic(
        id=o.id, trading_pair_id=o.trading_pair_id, client_order_id=o.client_order_id,
        order_type=o.order_type, side=o.side, quantity=str(o.quantity),
        executed_quantity=str(o.executed_quantity), executed_quote=str(o.executed_quote),
        price=_str(o.price), stop_price=_str(o.stop_price), avg_price=o.avg_price,
        status=o.status, time_in_force=o.time_in_force, good_till_date=o.good_till_date,
        fee=str(o.fee), fee_currency=o.fee_currency, held=str(o.held), reason=o.reason,
        notes=o.notes, metadata=dict(o.meta or {}), created_at=o.created_at,
        updated_at=o.updated_at,
    )


def _pairs_query() -> Any:
    base, quote = aliased(CryptoCurrency), aliased(CryptoCurrency)
    return (
        select(TradingPair, base.symbol, quote.symbol)
        .join(base, base.id == TradingPair.base_currency_id)
        .join(quote, quote.id == TradingPair.quote_currency_id)
    )


def _own_order(session: Session, user_id: int, order_id: int) -> TradingOrder:
    order = session.get(TradingOrder, order_id)
    if order is None or order.user_id != user_id:
        raise NotFoundError("no such order", code="order_not_found", order_id=order_id)
    return order


# ------------------------------------------------------------------- routes


@router.get("/trading-pairs", response_model=PairPage)
def list_pairs(session: SessionDep, limit: Limit = 50, offset: Offset = 0) -> PairPage:
    total = session.scalar(select(func.count()).select_from(TradingPair)) or 0
    rows = session.execute(_pairs_query().order_by(TradingPair.id).limit(limit).offset(offset))
    return PairPage(
        data=[_pair_public(p, b, q) for p, b, q in rows], total=total, limit=limit, offset=offset
    )


@router.get("/trading-pairs/{pair_id}", response_model=PairPublic)
def get_pair(session: SessionDep, pair_id: RowId) -> PairPublic:
    row = session.execute(_pairs_query().where(TradingPair.id == pair_id)).first()
    if row is None:
        raise NotFoundError("no such trading pair", code="pair_not_found", pair_id=pair_id)
    return _pair_public(*row)


@router.get("/trading-pairs/{pair_id}/orderbook", response_model=DepthPublic)
def orderbook(
    request: Request, pair_id: RowId, depth: Annotated[int, Query(ge=1, le=10_000)] = 50
) -> DepthPublic:
    """Aggregated depth: total open quantity per price level, best first."""
    service = _service(request)
    levels = min(depth, service.settings.max_depth)
    bids, asks, last, seq = service.depth(pair_id, levels)
    return DepthPublic(
        pair_id=pair_id, seq=seq, last_price=_str(last),
        bids=[(str(p), str(q)) for p, q in bids], asks=[(str(p), str(q)) for p, q in asks],
    )


@router.get("/trading-pairs/{pair_id}/trades", response_model=list[MarketTradePublic])
def market_trades(
    session: SessionDep, pair_id: RowId, limit: Limit = 50
) -> list[MarketTradePublic]:
    """The pair's latest trades, newest first (public)."""
    if session.get(TradingPair, pair_id) is None:
        raise NotFoundError("no such trading pair", code="pair_not_found", pair_id=pair_id)
    rows = session.scalars(
        select(TradingFill).where(TradingFill.trading_pair_id == pair_id)
        .order_by(TradingFill.trade_id.desc()).limit(limit)
    )
    return [
        MarketTradePublic(trade_id=f.trade_id, price=str(f.price), quantity=str(f.quantity),
                          quote_amount=str(f.quote_amount), taker_side=f.taker_side, ts=f.ts)
        for f in rows
    ]


@router.post("/trading-orders", response_model=OrderPublic, status_code=201)
def place_order(request: Request, user: UserDep, body: OrderCreate) -> OrderPublic:
    """Place an order: it matches at once as far as it can, then rests, waits
    for its trigger, or is cancelled, as its type and time in force say."""
    if body.time_in_force == "gtd" and body.good_till_date is None:
        raise ValidationError("GTD needs good_till_date", code="missing_expiry",
                              field="good_till_date")
    return _order_public(_service(request).place(user.id, body.request()))


@router.get("/trading-orders", response_model=OrderPage)
def my_orders(
    session: SessionDep,
    user: UserDep,
    trading_pair_id: PairFilter = None,
    status: Annotated[
        Literal["open", "pending", "partially_filled", "filled", "cancelled", "expired",
                "rejected"] | None,
        Query(),
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> OrderPage:
    """The caller's trading orders, newest first."""
    where = [TradingOrder.user_id == user.id]
    if trading_pair_id is not None:
        where.append(TradingOrder.trading_pair_id == trading_pair_id)
    if status is not None:
        where.append(TradingOrder.status == status)
    total = session.scalar(select(func.count()).select_from(TradingOrder).where(*where)) or 0
    rows = session.scalars(
        select(TradingOrder).where(*where).order_by(TradingOrder.id.desc())
        .limit(limit).offset(offset)
    )
    return OrderPage(data=[_order_public(o) for o in rows], total=total, limit=limit,
                     offset=offset)


@router.get("/trading-orders/{order_id}", response_model=OrderPublic)
def get_order(session: SessionDep, user: UserDep, order_id: RowId) -> OrderPublic:
    return _order_public(_own_order(session, user.id, order_id))


@router.delete("/trading-orders/{order_id}", response_model=OrderPublic)
def cancel_order(request: Request, user: UserDep, order_id: RowId) -> OrderPublic:
    """Cancel one of the caller's open orders; its hold goes back to available."""
    return _order_public(_service(request).cancel(user.id, order_id))


@router.patch("/trading-orders/{order_id}", response_model=OrderPublic)
def amend_order(
    request: Request, user: UserDep, order_id: RowId, body: OrderAmend
) -> OrderPublic:
    """Lower one of the caller's open orders' quantity; it keeps its time priority
    (422 ``amend_not_reduce`` unless ``filled < quantity < current``)."""
    quantity = _units(body.quantity)
    assert quantity is not None
    return _order_public(_service(request).amend(user.id, order_id, quantity))


@router.post("/trading-orders/{order_id}/cancel", response_model=OrderPublic)
def cancel_order_post(request: Request, user: UserDep, order_id: RowId) -> OrderPublic:
    """The same as ``DELETE /trading-orders/{id}``, for clients that cannot send DELETE."""
    return _order_public(_service(request).cancel(user.id, order_id))


@router.get("/trade-history", response_model=TradePage)
def trade_history(
    session: SessionDep,
    user: UserDep,
    trading_pair_id: PairFilter = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> TradePage:
    """The caller's fills (as maker or taker), newest first."""
    where = [or_(TradingFill.maker_user_id == user.id, TradingFill.taker_user_id == user.id)]
    if trading_pair_id is not None:
        where.append(TradingFill.trading_pair_id == trading_pair_id)
    total = session.scalar(select(func.count()).select_from(TradingFill).where(*where)) or 0
    fills = session.scalars(
        select(TradingFill).where(*where).order_by(TradingFill.id.desc())
        .limit(limit).offset(offset)
    ).all()
    pairs = {p.id: (b, q) for p, b, q in session.execute(_pairs_query().where(
        TradingPair.id.in_({f.trading_pair_id for f in fills})))}
    data = []
    for f in fills:
        maker = f.maker_user_id == user.id
        taker_buys = f.taker_side == "buy"
        side = ("sell" if taker_buys else "buy") if maker else f.taker_side
        base, quote = pairs[f.trading_pair_id]
        data.append(TradePublic(
            id=f.id, trade_id=f.trade_id, trading_pair_id=f.trading_pair_id,
            order_id=f.maker_order_id if maker else f.taker_order_id, side=side,
            role="maker" if maker else "taker", price=str(f.price), quantity=str(f.quantity),
            quote_amount=str(f.quote_amount), fee=str(f.maker_fee if maker else f.taker_fee),
            fee_currency=base if side == "buy" else quote, executed_at=f.created_at,
        ))
    return TradePage(data=data, total=total, limit=limit, offset=offset)


@router.websocket("/trading-pairs/{pair_id}/stream")
async def stream(ws: WebSocket, pair_id: int) -> None:
    """Market data of one pair: first a ``snapshot`` (depth and ``seq``), then
    ``book`` messages with the changed levels (quantity "0": the level is gone)
    and ``trade`` messages, each with the ``seq`` of the command that made it."""
    await ws.accept()
    service = service_for(ws.app.state.sessions, ws.app.state.settings.trading)
    if not 1 <= pair_id <= 2**31 - 1:
        await ws.send_json({"type": "error", "code": "pair_not_found"})
        await ws.close(code=1008)
        return
    with service.hub.subscribe(pair_id) as sub:
        try:
            snapshot = await run_in_threadpool(service.stream_snapshot, pair_id)
        except NotFoundError as exc:
            await ws.send_json({"type": "error", "code": exc.code, "detail": exc.message})
            await ws.close(code=1008)
            return
        await ws.send_json(snapshot)
        seen = snapshot["seq"]
        receive = asyncio.ensure_future(ws.receive())
        try:
            while True:
                get = asyncio.ensure_future(sub.queue.get())
                done, _ = await asyncio.wait(
                    {receive, get}, timeout=service.settings.stream_poll_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if receive in done:
                    get.cancel()
                    if receive.result().get("type") == "websocket.disconnect":
                        return
                    receive = asyncio.ensure_future(ws.receive())  # clients only listen
                    continue
                if get not in done:
                    get.cancel()
                    await run_in_threadpool(service.poll, pair_id)  # other processes' commands
                    continue
                if sub.lagged:
                    await ws.close(code=1013, reason="too slow: reconnect for a fresh snapshot")
                    return
                message = get.result()
                if message.get("seq", seen + 1) <= seen:
                    continue  # already in the snapshot
                await ws.send_json(message)
        except WebSocketDisconnect:
            return
        finally:
            receive.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await receive
