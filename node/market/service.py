"""This slice's hook into a running node (see ``node.runtime.SLICE_SERVICES``):
the price refresh and the reputation backstop as periodic jobs, and the
configured reputation rules handed to every session (``Session.info``) so the
trade-ended hook applies them too."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
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


def refresh_reputation(node: Node) -> int:
    """Recompute every reputation older than its user's latest ended trade
    or dispute change (the backstop of the trade-ended hook)."""
    with transaction(node.sessions) as session:
        n = reputation.refresh_stale(
            session, now=datetime.now(UTC), rules=rules_from(node.settings)
        )
    if n:
        log.info("recomputed %d reputations", n)
    return n


def install(node: Node) -> None:
    """Register this slice's periodic jobs (``node.jobs``), threads and closers."""
    info = dict(node.sessions.kw.get("info") or {})
    info[reputation.RULES_KEY] = rules_from(node.settings)
    node.sessions.configure(info=info)
    m = node.settings.market
    # failures propagate to the job runner, which logs and counts them
    node.jobs.append(("market-prices", lambda: _run(refresh_prices, node), m.price_refresh_s))
    node.jobs.append(
        ("market-reputation", lambda: _run(refresh_reputation, node), m.reputation_refresh_s)
    )


def _run(job: Callable[[Node], int], node: Node) -> None:
    job(node)
