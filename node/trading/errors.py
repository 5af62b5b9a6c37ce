"""Errors of the trading slice, under ``node.errors`` (mapped to problem+json)."""

from __future__ import annotations

from node.errors import EscrowdError


class OrderRejectedError(EscrowdError):
    """The engine refused an order as the book stood (``code``: insufficient_funds,
    fok_not_fillable, stop_would_trigger, oco_limit_would_match ...). The refused
    order is kept, with status ``rejected``, in the user's order list."""

    code = "order_rejected"
    http_status = 409


class PairHaltedError(EscrowdError):
    code = "pair_halted"
    http_status = 409


class OrderNotOpenError(EscrowdError):
    code = "order_not_open"
    http_status = 409
