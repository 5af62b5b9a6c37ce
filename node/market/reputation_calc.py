"""Reputation, pure: from a user's ended trades and their disputes to the
seed's fields (trade count, completion rate, 30/90-day volume, trusted seller)
plus disputes opened/won/lost and the median release time."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

# p2p_crypto_orders.status values (node.domain.escrow.TradeStatus)
COMPLETED = "completed"
ENDED = frozenset({"completed", "refunded", "resolved", "cancelled", "expired"})
HALF = 5000  # buyer_bps of an even split: neither side won


@dataclass(frozen=True)
class TradeFact:
    """One trade the user was a party of, as far as reputation cares."""

    role: str  # buyer | seller
    status: str
    fiat: str
    total: Decimal
    matched_at: datetime | None
    paid_at: datetime | None = None
    completed_at: datetime | None = None


@dataclass(frozen=True)
class DisputeFact:
    role: str  # the user's role in the disputed trade
    opened_by_user: bool
    status: str  # open | resolved | ...
    buyer_bps: int | None


@dataclass(frozen=True)
class Rules:
    trusted_min_trades: int = 20
    trusted_min_completion: Decimal = Decimal("0.95")
    trusted_max_disputes_lost: int = 0
    trusted_levels: frozenset[str] = frozenset({"verified", "trusted"})


@dataclass(frozen=True)
class Reputation:
    total_trade_count: int = 0
    completed_trade_count: int = 0
    completed_as_seller: int = 0
    trade_completion_rate: Decimal | None = None
    trade_volume_30d: dict[str, Decimal] = field(default_factory=dict)
    trade_volume_90d: dict[str, Decimal] = field(default_factory=dict)
    disputes_opened: int = 0
    disputes_won: int = 0
    disputes_lost: int = 0
    median_release_s: int | None = None
    reputation_score: Decimal = Decimal("0.00")
    trusted_seller: bool = False
    last_trade_at: datetime | None = None


RATED = frozenset(
    {
        ("buyer", "completed"),
        ("seller", "completed"),
        ("buyer", "refunded"),
        ("seller", "refunded"),
        ("buyer", "resolved"),
        ("seller", "resolved"),
        ("seller", "expired"),
    }
)
RELEASE_SAMPLE = 1000  # the median release time is over the seller's latest releases


@dataclass(frozen=True)
class TradeSummary:
    """What reputation needs from a user's trades, small whatever their
    number (the database builds it with aggregates; ``summarize`` from facts).

    ``counts``: (role, status) -> trades; ``volume_30d``/``volume_90d``: fiat
    -> total of completed trades by completion time; ``release_s``: seconds
    from paid to released of the latest completed trades as seller."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    volume_30d: dict[str, Decimal] = field(default_factory=dict)
    volume_90d: dict[str, Decimal] = field(default_factory=dict)
    release_s: tuple[float, ...] = ()
    last_trade_at: datetime | None = None


def summarize(trades: Iterable[TradeFact], *, now: datetime) -> TradeSummary:
    counts: dict[tuple[str, str], int] = {}
    vol30: dict[str, Decimal] = {}
    vol90: dict[str, Decimal] = {}
    releases: list[tuple[datetime, float]] = []
    last: datetime | None = None
    for t in trades:
        counts[(t.role, t.status)] = counts.get((t.role, t.status), 0) + 1
        if t.matched_at is not None and (last is None or t.matched_at > last):
            last = t.matched_at
        if t.status != COMPLETED or t.completed_at is None:
            continue
        age = now - t.completed_at
        if age <= timedelta(days=90):
            vol90[t.fiat] = vol90.get(t.fiat, Decimal(0)) + t.total
            if age <= timedelta(days=30):
                vol30[t.fiat] = vol30.get(t.fiat, Decimal(0)) + t.total
        if t.role == "seller" and t.paid_at is not None:
            releases.append((t.completed_at, (t.completed_at - t.paid_at).total_seconds()))
    releases.sort(reverse=True)
    return TradeSummary(
        counts=counts,
        volume_30d=vol30,
        volume_90d=vol90,
        release_s=tuple(x for _at, x in releases[:RELEASE_SAMPLE]),
        last_trade_at=last,
    )


def compute(
    trades: Iterable[TradeFact] | TradeSummary,
    disputes: Iterable[DisputeFact],
    *,
    level: str,
    now: datetime,
    rules: Rules | None = None,
) -> Reputation:
    """The reputation from the user's trades (facts or their summary) and
    the disputes on them.

    Completion rate: completed over the trades that say something about the
    user's reliability: every trade that reached the escrow (completed,
    refunded, resolved) and, as seller, an ad taken but never funded
    (expired). A trade cancelled before funding says nothing about either side."""
    rules = rules or Rules()
    summary = trades if isinstance(trades, TradeSummary) else summarize(trades, now=now)
    counts = summary.counts
    ended = sum(n for (_role, status), n in counts.items() if status in ENDED)
    completed = sum(n for (_role, status), n in counts.items() if status == COMPLETED)
    rated = sum(n for key, n in counts.items() if key in RATED)
    rate = (Decimal(completed) / Decimal(rated)).quantize(Decimal("0.0001")) if rated else None
    releases = summary.release_s
    median_release = int(statistics.median(releases)) if releases else None

    opened = won = lost = 0
    for d in disputes:
        opened += d.opened_by_user
        if d.status != "resolved" or d.buyer_bps is None or d.buyer_bps == HALF:
            continue
        buyer_won = d.buyer_bps > HALF
        if buyer_won == (d.role == "buyer"):
            won += 1
        else:
            lost += 1

    as_seller = counts.get(("seller", COMPLETED), 0)
    trusted = (
        level in rules.trusted_levels
        and as_seller >= rules.trusted_min_trades
        and rate is not None
        and rate >= rules.trusted_min_completion
        and lost <= rules.trusted_max_disputes_lost
    )
    return Reputation(
        total_trade_count=ended,
        completed_trade_count=completed,
        completed_as_seller=as_seller,
        trade_completion_rate=rate,
        trade_volume_30d=dict(summary.volume_30d),
        trade_volume_90d=dict(summary.volume_90d),
        disputes_opened=opened,
        disputes_won=won,
        disputes_lost=lost,
        median_release_s=median_release,
        reputation_score=score(rated, rate, lost),
        trusted_seller=trusted,
        last_trade_at=summary.last_trade_at,
    )


def score(rated: int, rate: Decimal | None, disputes_lost: int) -> Decimal:
    """0.00 to 5.00: the completion rate on a five-point scale, weighted by
    how much history backs it (n / (n + 10)), minus 0.5 per lost dispute."""
    if not rated or rate is None:
        return Decimal("0.00")
    confidence = Decimal(rated) / Decimal(rated + 10)
    raw = Decimal(5) * rate * confidence - Decimal("0.5") * disputes_lost
    return max(Decimal(0), min(Decimal(5), raw)).quantize(Decimal("0.01"), ROUND_HALF_UP)
