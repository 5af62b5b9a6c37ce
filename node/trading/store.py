"""What one engine command did, written to the database in the command's
transaction: fills (trade history), the orders' states, and the money
movements as entries of the custody ledger.

The engine's own ledger is the plan: each of its journal entries for the
command (holds, releases, fill settlements with fees) becomes one custody entry
with the same legs, under the ref ``trading:<pair>:<seq>:<n>`` (idempotent).
Entries against ``@custody`` only mirror the custody ledger into the engine
(``SetFunds``) and are not posted back."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from node.custody.ledger import FEES as CUSTODY_FEES
from node.custody.ledger import Leg, post_entry, user_account
from node.db.models_trading import TradingFill, TradingOrder
from node.orderbook import (
    Engine,
    Entry,
    Event,
    Fill,
    OcoLegCancelled,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderReduced,
    OrderRejected,
    OrderRested,
    OrderTriggered,
    OrderType,
    ReplayMismatchError,
)
from node.orderbook.ledger import CUSTODY, FEES

TERMINAL = frozenset({"filled", "cancelled", "expired", "rejected"})
_STOPS = frozenset({OrderType.STOP_MARKET, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP})
_AVG = Decimal("0.00000001")


def custody_legs(entry: Entry) -> list[Leg] | None:
    """The custody legs of one engine ledger entry; None for a mirror entry
    (against ``@custody``) or one whose legs are all zero."""
    legs: list[Leg] = []
    for account, amount in entry.postings:
        if account.owner == CUSTODY:
            return None
        if not amount:
            continue
        if account.owner == FEES:
            name = CUSTODY_FEES
        else:
            assert isinstance(account.owner, int)
            name = user_account(account.owner, account.bucket)  # type: ignore[arg-type]
        legs.append(Leg(name, account.asset, amount))
    return legs or None


def post_ledger(session: Session, *, pair_id: int, seq: int, entries: list[Entry]) -> None:
    for n, entry in enumerate(entries):
        legs = custody_legs(entry)
        if legs is not None:
            kind = "trading:" + entry.ref.split(":", 1)[0]
            post_entry(session, ref=f"trading:{pair_id}:{seq}:{n}", kind=kind, legs=legs)


def fill_message(pair_id: int, seq: int, f: Fill) -> dict[str, Any]:
    return {
        "type": "trade", "pair_id": pair_id, "seq": seq, "trade_id": f.trade_id,
        "price": str(f.price),
        "quantity": str(f.quantity), "quote_amount": str(f.quote_amount),
        "taker_side": f.taker_side.value, "ts": f.ts,
    }


def record_events(
    session: Session,
    *,
    pair_id: int,
    price_scale: int,
    seq: int,
    events: list[Event],
    engine: Engine,
) -> list[dict[str, Any]]:
    """Write what ``events`` (of log command ``seq``) did to fills and order
    rows; return the trade messages for the market-data stream."""
    touched: dict[int, TradingOrder] = {}

    def row(oid: int) -> TradingOrder:
        found = touched.get(oid)
        if found is None:
            found = session.get(TradingOrder, oid)
            if found is None:
                raise ReplayMismatchError(f"the engine knows order {oid}, the database does not")
            touched[oid] = found
        return found

    trades: list[dict[str, Any]] = []
    for ev in events:
        kind = type(ev)
        if kind is Fill:
            f: Fill = ev  # type: ignore[assignment]
            session.add(TradingFill(
                trading_pair_id=pair_id, trade_id=f.trade_id, seq=seq,
                maker_order_id=f.maker_order_id, taker_order_id=f.taker_order_id,
                maker_user_id=f.maker_user_id, taker_user_id=f.taker_user_id,
                taker_side=f.taker_side.value, price=f.price, quantity=f.quantity,
                quote_amount=f.quote_amount, maker_fee=f.maker_fee, taker_fee=f.taker_fee,
                ts=f.ts,
            ))
            for oid, fee in ((f.maker_order_id, f.maker_fee), (f.taker_order_id, f.taker_fee)):
                r = row(oid)
                r.executed_quantity += f.quantity
                r.executed_quote += f.quote_amount
                r.fee += fee
            trades.append(fill_message(pair_id, seq, f))
        elif kind is OrderAccepted:
            a: OrderAccepted = ev  # type: ignore[assignment]
            r = row(a.order_id)
            r.status = "pending" if a.command.order_type in _STOPS else "open"
            r.held = a.hold
        elif kind is OrderRejected:
            rej: OrderRejected = ev  # type: ignore[assignment]
            if rej.command == "place" and rej.order_id is not None:
                found = session.get(TradingOrder, rej.order_id)
                if found is not None and found.status == "new":  # never an older order
                    touched[rej.order_id] = found
                    found.status, found.reason = "rejected", rej.code
        elif kind is OrderCancelled:
            c: OrderCancelled = ev  # type: ignore[assignment]
            r = row(c.order_id)
            r.status, r.reason = "cancelled", c.reason
        elif kind is OrderExpired:
            x: OrderExpired = ev  # type: ignore[assignment]
            row(x.order_id).status = "expired"
        elif kind is OrderReduced:
            red: OrderReduced = ev  # type: ignore[assignment]
            r = row(red.order_id)
            r.quantity -= red.quantity
            r.meta = {**r.meta, "reduced_by": r.meta.get("reduced_by", 0) + red.quantity}
        elif kind is OrderTriggered:
            t: OrderTriggered = ev  # type: ignore[assignment]
            r = row(t.order_id)
            r.meta = {**r.meta, "triggered_at_price": str(t.last_price)}
        elif kind is OcoLegCancelled:
            leg: OcoLegCancelled = ev  # type: ignore[assignment]
            r = row(leg.order_id)
            r.meta = {**r.meta, "oco_leg_cancelled": leg.leg}
        elif kind is OrderRested:
            rest: OrderRested = ev  # type: ignore[assignment]
            r = row(rest.order_id)
            r.meta = {**r.meta, "resting_price": str(rest.price)}
    for oid, r in touched.items():
        view = engine.order(oid)
        if view is not None:
            r.held = view.hold
            if view.state == "pending":
                r.status = "pending"
            else:
                r.status = "partially_filled" if view.filled else "open"
        else:
            r.held = 0
            if r.status not in TERMINAL:
                done = r.executed_quantity and r.executed_quantity >= r.quantity
                r.status = "filled" if done else "cancelled"
        if r.executed_quantity:
            avg = Decimal(r.executed_quote * price_scale) / Decimal(r.executed_quantity)
            r.avg_price = avg.quantize(_AVG)
    return trades
