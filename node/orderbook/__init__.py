"""The order book: a pure, deterministic matching engine and a double-entry
ledger core. No I/O, no clock, no randomness; integers in base units."""

from node.orderbook.engine import Engine
from node.orderbook.errors import (
    InsufficientFundsError,
    LedgerError,
    OrderValidationError,
    ReplayMismatchError,
    UnbalancedEntryError,
)
from node.orderbook.ledger import Account, Entry, Ledger, Posting
from node.orderbook.messages import (
    STP,
    AmendOrder,
    CancelOrder,
    Command,
    Deposit,
    Event,
    Fill,
    FundsDeposited,
    FundsSet,
    OcoLegCancelled,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderReduced,
    OrderRejected,
    OrderRested,
    OrderTriggered,
    OrderType,
    OrderView,
    PlaceOrder,
    SetFunds,
    Side,
    Tick,
    TimeInForce,
)
from node.orderbook.pair import BPS, MAX_FEE_BPS, PairSpec, fee_amount

__all__ = [
    "BPS", "MAX_FEE_BPS", "STP", "Account", "AmendOrder", "CancelOrder", "Command",
    "Deposit", "Engine", "Entry", "Event", "Fill", "FundsDeposited", "FundsSet",
    "InsufficientFundsError", "Ledger", "LedgerError", "OcoLegCancelled", "OrderAccepted",
    "OrderCancelled", "OrderExpired", "OrderReduced", "OrderRejected", "OrderRested",
    "OrderTriggered", "OrderType", "OrderValidationError", "OrderView", "PairSpec",
    "PlaceOrder", "Posting", "ReplayMismatchError", "SetFunds", "Side", "Tick", "TimeInForce",
    "UnbalancedEntryError", "fee_amount",
]
