"""Errors of the market slice (mapped to problem+json by ``api.problems``)."""

from __future__ import annotations

from node.errors import EscrowdError, PermissionDeniedError


class PriceUnavailableError(EscrowdError):
    """No price source has quoted this pair: a margin ad cannot be priced."""

    code = "price_unavailable"
    http_status = 503


class PriceStaleError(EscrowdError):
    """The index of this pair is older than ``market.price_max_age_s``."""

    code = "price_stale"
    http_status = 503


class TradeLimitError(PermissionDeniedError):
    """Opening this trade would exceed a party's verification-level limit."""

    code = "trade_limit_exceeded"
