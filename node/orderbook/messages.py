"""Commands into the engine and events out of it: immutable values.

They are ``NamedTuple``s rather than frozen dataclasses: just as immutable and
typed, but built several times faster, which matters on the matching hot path
(one ``Fill`` per match). Every command carries the caller's clock ``ts``
(integer, e.g. milliseconds); the engine never reads a clock.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP_MARKET = "stop_market"  # stop-loss
    STOP_LIMIT = "stop_limit"
    OCO = "oco"  # a resting limit leg + a stop leg (market or limit)
    TRAILING_STOP = "trailing_stop"  # trailing stop-market


class TimeInForce(StrEnum):
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    GTD = "gtd"


class STP(StrEnum):
    """Self-trade prevention, applied when a taker meets a maker of the same user
    (the taker's mode decides)."""

    CANCEL_NEWEST = "cancel_newest"  # cancel the taker's remainder
    CANCEL_OLDEST = "cancel_oldest"  # cancel the resting maker, keep matching
    CANCEL_BOTH = "cancel_both"
    DECREMENT = "decrement"  # reduce both by the overlap, no trade, no fee


# ----------------------------------------------------------------- commands


class PlaceOrder(NamedTuple):
    """Place an order. ``price`` is the limit price (limit, stop-limit, the OCO's
    limit leg); ``stop_price`` the trigger (stop orders, the OCO's stop leg);
    ``stop_limit_price`` the OCO stop leg's limit (None: the leg is stop-market).
    A trailing stop trails the last trade by ``trail_amount`` (price units) or
    ``trail_bps``. ``expires_at`` is required for GTD."""

    order_id: int
    user_id: int
    side: Side
    order_type: OrderType
    quantity: int
    price: int | None = None
    stop_price: int | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    expires_at: int | None = None
    stop_limit_price: int | None = None
    trail_amount: int | None = None
    trail_bps: int | None = None
    stp: STP | None = None
    ts: int = 0


class CancelOrder(NamedTuple):
    order_id: int
    user_id: int | None = None  # None: an operator cancel, no owner check
    ts: int = 0


class AmendOrder(NamedTuple):
    """Reduce an open order's total quantity; it keeps its place in the queue."""

    order_id: int
    quantity: int
    user_id: int | None = None
    ts: int = 0


class Tick(NamedTuple):
    """The clock moved: expires GTD orders whose ``expires_at <= ts``."""

    ts: int


class Deposit(NamedTuple):
    """Credit a user's available balance (a confirmed deposit). Sequenced on the
    engine's command stream so that replaying it gives the same ledger."""

    user_id: int
    asset: str
    amount: int
    ts: int = 0
    ref: str = ""


class SetFunds(NamedTuple):
    """The user's available balance of ``asset`` is now ``available`` (what the
    custody ledger says, read just before the user's order): the engine's ledger
    books the difference against ``@custody``. Sequenced on the command stream,
    so replaying the log gives the same decisions (holds, market-buy budgets)."""

    user_id: int
    asset: str
    available: int
    ts: int = 0


Command = PlaceOrder | CancelOrder | AmendOrder | Tick | Deposit | SetFunds


# ------------------------------------------------------------------- events


class OrderAccepted(NamedTuple):
    order_id: int
    user_id: int
    command: PlaceOrder
    hold: int  # what the ledger holds for it (0 without a ledger)


class OrderRejected(NamedTuple):
    """A command was refused and changed nothing (``command``: place, cancel or
    amend; a refused place still uses up its order id)."""

    order_id: int | None
    code: str
    detail: str = ""
    command: str = "place"


class Fill(NamedTuple):
    trade_id: int
    maker_order_id: int
    taker_order_id: int
    maker_user_id: int
    taker_user_id: int
    taker_side: Side
    price: int
    quantity: int
    quote_amount: int
    maker_fee: int  # in the asset the maker receives
    taker_fee: int  # in the asset the taker receives
    ts: int


class OrderRested(NamedTuple):
    """The order now rests in the book (after any immediate fills)."""

    order_id: int
    price: int
    remaining: int


class OrderTriggered(NamedTuple):
    """A stop, the stop leg of an OCO, or a trailing stop fired at ``last_price``
    (it spends only what it held since it was placed)."""

    order_id: int
    last_price: int


class OrderCancelled(NamedTuple):
    """The order's ``remaining`` quantity is cancelled; the order is done.
    Reasons: user, ioc, market_unfilled, self_trade, oco, insufficient_funds."""

    order_id: int
    remaining: int
    reason: str


class OrderExpired(NamedTuple):
    order_id: int
    remaining: int


class OrderReduced(NamedTuple):
    """The order's quantity (and remaining quantity) went down by ``quantity``
    without a trade (an amend or a self-trade decrement); at zero remaining the
    order is done."""

    order_id: int
    quantity: int
    reason: str


class OcoLegCancelled(NamedTuple):
    """One leg of an OCO is gone because the other filled (``leg="stop"``) or
    triggered (``leg="limit"``); the order itself goes on."""

    order_id: int
    leg: str


class FundsDeposited(NamedTuple):
    user_id: int
    asset: str
    amount: int


class FundsSet(NamedTuple):
    """``SetFunds`` applied: ``change`` is what the engine's ledger booked."""

    user_id: int
    asset: str
    available: int
    change: int


Event = (
    OrderAccepted
    | OrderRejected
    | Fill
    | OrderRested
    | OrderTriggered
    | OrderCancelled
    | OrderExpired
    | OrderReduced
    | OcoLegCancelled
    | FundsDeposited
    | FundsSet
)


class OrderView(NamedTuple):
    """A live order as the engine holds it. ``state``: resting (in the book),
    pending (a stop waiting for its trigger) or oco (limit leg resting and stop
    leg pending)."""

    order_id: int
    user_id: int
    side: Side
    order_type: OrderType
    quantity: int
    filled: int
    remaining: int
    price: int | None
    stop_price: int | None
    state: str
    hold: int
