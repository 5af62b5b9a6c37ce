"""Trade limits per verification level, pure: checks a new trade's value
against one party's per-trade and rolling 24-hour limits."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from node.market.errors import TradeLimitError

LEVELS = ("unverified", "basic", "verified", "trusted")


def level_rank(level: str) -> int:
    return LEVELS.index(level)


@dataclass(frozen=True)
class Limit:
    per_trade: Decimal | None = None  # None: no limit
    per_24h: Decimal | None = None


def check_limit(
    *, role: str, level: str, limit: Limit, value: Decimal, used_24h: Decimal, fiat: str
) -> None:
    """Refuse a trade worth ``value`` (in ``fiat``) when it is above the
    per-trade limit, or when with ``used_24h`` (the party's other trades
    opened in the last 24 hours) it is above the 24-hour limit."""
    if limit.per_trade is not None and value > limit.per_trade:
        raise TradeLimitError(
            f"the {role}'s verification level ({level}) allows at most "
            f"{limit.per_trade} {fiat} per trade; this trade is worth {value:.2f} {fiat}",
            party=role,
            level=level,
            limit="per_trade",
            limit_value=str(limit.per_trade),
            value=str(value.quantize(Decimal("0.01"))),
            fiat=fiat,
        )
    if limit.per_24h is not None and used_24h + value > limit.per_24h:
        raise TradeLimitError(
            f"the {role}'s verification level ({level}) allows at most "
            f"{limit.per_24h} {fiat} per 24 hours; {used_24h:.2f} {fiat} used, "
            f"this trade is worth {value:.2f} {fiat}",
            party=role,
            level=level,
            limit="per_24h",
            limit_value=str(limit.per_24h),
            used=str(used_24h.quantize(Decimal("0.01"))),
            value=str(value.quantize(Decimal("0.01"))),
            fiat=fiat,
        )
