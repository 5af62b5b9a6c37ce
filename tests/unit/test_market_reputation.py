"""Reputation math: counts, completion rate (cancelled-before-funding trades
say nothing; an expired unfunded trade counts against its seller), 30/90-day
volume per fiat, disputes won and lost from the ruling's split, median
release time, the score and the trusted-seller rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from node.market.reputation_calc import DisputeFact, Rules, TradeFact, compute, score

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def t(
    role: str,
    status: str,
    total: str = "100",
    days_ago: float = 1,
    fiat: str = "EUR",
    release_s: int | None = None,
) -> TradeFact:
    done = NOW - timedelta(days=days_ago)
    return TradeFact(
        role=role,
        status=status,
        fiat=fiat,
        total=Decimal(total),
        matched_at=done - timedelta(hours=1),
        paid_at=done - timedelta(seconds=release_s) if release_s else None,
        completed_at=done if status in ("completed", "resolved", "refunded") else None,
    )


def test_empty_history() -> None:
    r = compute([], [], level="unverified", now=NOW)
    assert r.total_trade_count == 0 and r.trade_completion_rate is None
    assert r.reputation_score == Decimal("0.00") and r.last_trade_at is None


def test_counts_rate_volume_and_release_time() -> None:
    trades = [
        t("seller", "completed", "100", 1, release_s=60),
        t("seller", "completed", "200", 40, release_s=600),
        t("seller", "completed", "50", 100, release_s=120),
        t("buyer", "completed", "10", 2, fiat="USD"),
        t("seller", "expired"),  # never funded: the seller's fault
        t("buyer", "expired"),  # the seller's fault, not this buyer's
        t("buyer", "cancelled"),  # says nothing
        t("seller", "funded"),  # not ended
    ]
    r = compute(trades, [], level="verified", now=NOW)
    assert r.total_trade_count == 7 and r.completed_trade_count == 4
    assert r.trade_completion_rate == Decimal("0.8000")  # 4 of 5 rated
    assert r.trade_volume_30d == {"EUR": Decimal(100), "USD": Decimal(10)}
    assert r.trade_volume_90d == {"EUR": Decimal(300), "USD": Decimal(10)}
    assert r.median_release_s == 120
    assert r.completed_as_seller == 3
    assert r.last_trade_at == trades[0].matched_at


def test_disputes_won_and_lost_follow_the_split() -> None:
    disputes = [
        DisputeFact(role="buyer", opened_by_user=True, status="resolved", buyer_bps=7000),
        DisputeFact(role="seller", opened_by_user=False, status="resolved", buyer_bps=10_000),
        DisputeFact(role="seller", opened_by_user=True, status="resolved", buyer_bps=0),
        DisputeFact(role="buyer", opened_by_user=False, status="resolved", buyer_bps=5000),
        DisputeFact(role="buyer", opened_by_user=True, status="open", buyer_bps=None),
    ]
    r = compute([], disputes, level="basic", now=NOW)
    assert (r.disputes_opened, r.disputes_won, r.disputes_lost) == (3, 2, 1)


def test_trusted_seller_needs_level_history_rate_and_no_lost_disputes() -> None:
    rules = Rules(trusted_min_trades=3, trusted_min_completion=Decimal("0.9"))
    good = [t("seller", "completed") for _ in range(3)]
    assert compute(good, [], level="verified", now=NOW, rules=rules).trusted_seller
    assert not compute(good, [], level="basic", now=NOW, rules=rules).trusted_seller
    assert not compute(good[:2], [], level="trusted", now=NOW, rules=rules).trusted_seller
    bad_rate = [*good, t("seller", "refunded")]
    assert not compute(bad_rate, [], level="trusted", now=NOW, rules=rules).trusted_seller
    lost = [DisputeFact(role="seller", opened_by_user=False, status="resolved", buyer_bps=9000)]
    assert not compute(good, lost, level="trusted", now=NOW, rules=rules).trusted_seller


def test_score_bounds() -> None:
    assert score(0, None, 0) == Decimal("0.00")
    assert score(10, Decimal(1), 0) == Decimal("2.50")
    assert score(990, Decimal(1), 0) == Decimal("4.95")
    assert score(10, Decimal(1), 9) == Decimal("0.00")
