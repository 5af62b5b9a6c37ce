"""Reputation on a real node (anvil + PostgreSQL): a trade released on chain
updates both parties' reputation in the watcher's transaction (the
escrow-sync hook, before anyone asks); the backstop job catches what the hook
cannot see (here, a ruling recorded directly); own and public views."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text

from node.db.models import P2PDispute, P2POrder
from node.db.models_market import UserReputation
from node.db.session import transaction
from node.market.reputation import RULES_KEY
from node.market.reputation_calc import Rules
from node.market.service import ReputationBackstop, refresh_reputation
from tests.api.conftest import Api
from tests.api.market_fixtures import *  # noqa: F403
from tests.api.market_fixtures import user_id
from tests.api.test_api_p2p_orders import act, funded_trade, match, post_ad


def test_released_trade_updates_both_parties_at_once(api: Api) -> None:
    t = funded_trade(api)
    act(api, t, "payment", "buyer")
    api.sync()
    act(api, t, "release-escrow", "seller")
    api.sync()
    seller, buyer = user_id(api, "seller"), user_id(api, "buyer")
    with transaction(api.node.sessions) as s:
        rows = {r.user_id: r for r in s.scalars(select(UserReputation))}
        assert set(rows) == {seller, buyer}  # computed by the hook, nobody asked yet
        assert rows[seller].completed_trade_count == 1
        assert rows[seller].trade_volume_30d == {"EUR": "3150.50000000"}
        assert rows[seller].median_release_s is not None
        assert rows[buyer].median_release_s is None  # release time is the seller's

    mine = api.get("/api/p2p-crypto/reputation", "seller").json()
    assert mine["total_trade_count"] == 1 and mine["trade_completion_rate"] == "1.0000"
    assert mine["trade_volume_90d"] == {"EUR": "3150.50000000"}
    assert mine["trusted_seller"] is False  # one trade, unverified
    assert mine["reputation_score"] == "0.45"  # 5 * 1.0 * 1 / 11
    profile = api.get(f"/api/p2p-crypto/users/{buyer}/profile").json()  # no sign-in needed
    assert profile["username"] == "buyer" and profile["completed_trade_count"] == 1
    assert profile["verification_level"] == "unverified"
    assert api.get("/api/p2p-crypto/reputation").status_code == 401
    assert api.get("/api/p2p-crypto/users/999999/profile").status_code == 404
    assert api.get("/api/p2p-crypto/users/0/profile").status_code == 422


def test_backstop_job_counts_disputes_and_expired_trades(api: Api) -> None:
    ad = post_ad(api).json()
    won = match(api, ad["id"]).json()["order"]["id"]
    expired = match(api, ad["id"]).json()["order"]["id"]
    buyer = user_id(api, "buyer")
    now = datetime.now(UTC)
    with transaction(api.node.sessions) as s:
        # a ruling 70/30 for the buyer, recorded as the disputes slice does
        trade = s.get(P2POrder, won)
        assert trade is not None
        trade.status, trade.completed_at = "resolved", now
        s.add(
            P2PDispute(
                p2p_order_id=won,
                initiator_user_id=buyer,
                dispute_type="not_paid",
                description="x",
                status="resolved",
                buyer_bps=7000,
                resolved_at=now,
            )
        )
        late = s.get(P2POrder, expired)
        assert late is not None
        late.status, late.matched_at = "expired", now - timedelta(hours=2)
    jobs = {job_id: every for job_id, _fn, every in api.node.jobs}
    assert jobs["market-reputation"] == 300 and jobs["market-prices"] == 30
    with api.node.sessions() as s:
        assert isinstance(s.info[RULES_KEY], Rules)  # the hook applies the configured rules
    backstop = ReputationBackstop(api.node)
    assert backstop.run() == 2 and backstop.since is not None
    assert backstop.run() == 0  # nothing changed since
    with transaction(api.node.sessions) as s:  # a change the watermark no longer looks at
        s.execute(
            text("UPDATE p2p_user_reputation SET computed_at = :t"), {"t": now - timedelta(days=2)}
        )
        for table in ("p2p_crypto_orders", "p2p_crypto_trade_disputes"):
            s.execute(
                text(f"UPDATE {table} SET updated_at = :t"),  # noqa: S608
                {"t": now - timedelta(days=1)},
            )
    assert backstop.run() == 0
    assert refresh_reputation(api.node) == 2  # a full pass finds it
    got = {who: api.get("/api/p2p-crypto/reputation", who).json() for who in ("seller", "buyer")}
    assert (got["buyer"]["disputes_opened"], got["buyer"]["disputes_won"]) == (1, 1)
    assert (got["seller"]["disputes_lost"], got["seller"]["disputes_opened"]) == (1, 0)
    # the seller's never-funded trade counts against them, not the buyer
    assert got["seller"]["trade_completion_rate"] == "0.0000"
    assert got["buyer"]["trade_completion_rate"] == "0.0000"  # resolved, not completed
    assert got["seller"]["total_trade_count"] == 2 and got["seller"]["reputation_score"] == "0.00"


def test_database_summary_equals_the_pure_one(sessions: Any) -> None:
    """The aggregate queries the hook runs give what the pure ``summarize``
    gives from the same trades (PostgreSQL, trades of every kind and age)."""
    from decimal import Decimal

    from node.market.reputation import trade_summary
    from node.market.reputation_calc import TradeFact, summarize
    from node.trades import CurrencySpec, create_user, upsert_currency

    now = datetime.now(UTC).replace(microsecond=0)
    facts: list[TradeFact] = []
    with transaction(sessions) as s:
        me, _ = create_user(s, username="me")
        other, _ = create_user(s, username="other")
        eth = upsert_currency(s, CurrencySpec("Ether", "ETH", "evm", "1", 18))
        statuses = ["completed", "completed", "refunded", "expired", "cancelled", "funded"]
        for i in range(60):
            seller = i % 3 != 0
            status = statuses[i % len(statuses)]
            done = now - timedelta(days=i * 2)
            paid = done - timedelta(seconds=30 * (i + 1)) if i % 4 else None
            fiat = "EUR" if i % 5 else "USD"
            total = Decimal(100 + i)
            ended = status in ("completed", "refunded")
            s.add(
                P2POrder(
                    kind="trade",
                    seller_id=me.id if seller else other.id,
                    buyer_id=other.id if seller else me.id,
                    crypto_currency_id=eth.id,
                    amount=10**18,
                    price_per_unit=total,
                    fiat_currency=fiat,
                    total_amount=total,
                    payment_methods=[],
                    status=status,
                    matched_at=done - timedelta(hours=1),
                    paid_at=paid,
                    completed_at=done if ended else None,
                )
            )
            facts.append(
                TradeFact(
                    role="seller" if seller else "buyer",
                    status=status,
                    fiat=fiat,
                    total=total,
                    matched_at=done - timedelta(hours=1),
                    paid_at=paid,
                    completed_at=done if ended else None,
                )
            )
        s.flush()
        got = trade_summary(s, me.id, now=now)
    want = summarize(facts, now=now)
    assert got.counts == want.counts
    assert got.volume_30d == want.volume_30d and got.volume_90d == want.volume_90d
    assert sorted(got.release_s) == sorted(want.release_s)
    assert got.last_trade_at == want.last_trade_at
