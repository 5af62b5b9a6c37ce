"""This slice's hook into a running node (see ``node.runtime.SLICE_SERVICES``):
the price refresh and the reputation backstop as periodic jobs, and the
configured reputation rules handed to every session (``Session.info``) so the
trade-ended hook applies them too."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from node.db.session import transaction
from node.market import prices, reputation
from node.market.reputation_calc import Rules

if TYPE_CHECKING:
    from node.config import Settings
    from node.runtime import Node

log = logging.getLogger("escrowd.market")


def rules_from(settings: Settings) -> Rules:
    m = settings.market
    return Rules(
        trusted_min_trades=m.trusted_seller_min_trades,
        trusted_min_completion=m.trusted_seller_min_completion,
        trusted_max_disputes_lost=m.trusted_seller_max_disputes_lost,
    )


def refresh_prices(node: Node) -> int:
    """One price refresh (the periodic job; tests call it directly)."""
    sources = prices.make_sources(node.settings)
    with transaction(node.sessions) as session:
        return prices.refresh_prices(
            session, sources=sources, now=datetime.now(UTC), settings=node.settings
        )


@dataclass
class ReputationBackstop:
    """The backstop job of the trade-ended hook: recompute every reputation
    older than its user's latest ended trade or dispute change. Its first
    run reads every ended trade; later runs only rows changed since the
    previous run started (minus a margin for transactions still open then)."""

    node: Node
    since: datetime | None = None
    margin: timedelta = timedelta(minutes=10)

    def run(self) -> int:
        started = datetime.now(UTC)
        with transaction(self.node.sessions) as session:
            n = reputation.refresh_stale(
                session,
                now=started,
                rules=rules_from(self.node.settings),
                since=self.since - self.margin if self.since is not None else None,
            )
        if n < reputation.STALE_BATCH:  # a full batch may have left some for next time
            self.since = started
        if n:
            log.info("recomputed %d reputations", n)
        return n


def refresh_reputation(node: Node) -> int:
    """One full backstop pass (tests and operators call it directly)."""
    return ReputationBackstop(node).run()


def install(node: Node) -> None:
    """Register this slice's periodic jobs (``node.jobs``), threads and closers."""
    info = dict(node.sessions.kw.get("info") or {})
    info[reputation.RULES_KEY] = rules_from(node.settings)
    node.sessions.configure(info=info)
    m = node.settings.market
    backstop = ReputationBackstop(node)

    # failures propagate to the job runner, which logs and counts them
    def prices_job() -> None:
        refresh_prices(node)

    def reputation_job() -> None:
        backstop.run()

    node.jobs.append(("market-prices", prices_job, m.price_refresh_s))
    node.jobs.append(("market-reputation", reputation_job, m.reputation_refresh_s))
