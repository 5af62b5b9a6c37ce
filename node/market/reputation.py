"""Reputation rows: computed (``reputation_calc``) from the user's trades
(``p2p_crypto_orders`` with kind 'trade'), the disputes on them and the
escrow-derived times (paid, completed), and stored in ``p2p_user_reputation``.

Recomputed for both parties when a trade ends (``trades_ended``, called where
the escrow sync moves a trade to a final status) and by a periodic job for
anything that hook could not see (trades ended by other chains' syncs, the
expiry job, rulings).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import ColumnElement, and_, case, func, or_, select, union_all
from sqlalchemy.orm import Session

from node.db.models import P2PDispute, P2POrder
from node.db.models_market import UserReputation
from node.market.reputation_calc import (
    COMPLETED,
    ENDED,
    RELEASE_SAMPLE,
    DisputeFact,
    Reputation,
    Rules,
    TradeSummary,
    compute,
)
from node.market.verification import level_of

# Session.info key under which the node puts its configured Rules
# (``node.market.service.install``); without it the defaults apply.
RULES_KEY = "escrowd.market.reputation_rules"


def rules_of(session: Session) -> Rules:
    rules = session.info.get(RULES_KEY)
    return rules if isinstance(rules, Rules) else Rules()


def _party(user_id: int) -> ColumnElement[bool]:
    return and_(
        P2POrder.kind == "trade",
        or_(P2POrder.buyer_id == user_id, P2POrder.seller_id == user_id),
    )


def trade_summary(session: Session, user_id: int, *, now: datetime) -> TradeSummary:
    """The user's trades summed up in the database: a few small aggregate
    queries, whatever the number of trades (this runs in the watcher's
    transaction when a trade ends)."""
    role = case((P2POrder.seller_id == user_id, "seller"), else_="buyer")
    counts: dict[tuple[str, str], int] = {}
    last: datetime | None = None
    for r, status, n, latest in session.execute(
        select(role, P2POrder.status, func.count(), func.max(P2POrder.matched_at))
        .where(_party(user_id))
        .group_by(role, P2POrder.status)
    ):
        counts[(str(r), str(status))] = int(n)
        if latest is not None:
            latest = latest if latest.tzinfo else latest.replace(tzinfo=UTC)
            last = latest if last is None or latest > last else last
    d30, d90 = now - timedelta(days=30), now - timedelta(days=90)
    recent = case((P2POrder.completed_at >= d30, P2POrder.total_amount), else_=0)
    vol30: dict[str, Decimal] = {}
    vol90: dict[str, Decimal] = {}
    for fiat, v30, v90 in session.execute(
        select(P2POrder.fiat_currency, func.sum(recent), func.sum(P2POrder.total_amount))
        .where(_party(user_id), P2POrder.status == COMPLETED, P2POrder.completed_at >= d90)
        .group_by(P2POrder.fiat_currency)
    ):
        vol90[fiat] = Decimal(str(v90 or 0))
        if v30:
            vol30[fiat] = Decimal(str(v30))
    releases = session.execute(
        select(P2POrder.paid_at, P2POrder.completed_at)
        .where(
            P2POrder.kind == "trade",
            P2POrder.seller_id == user_id,
            P2POrder.status == COMPLETED,
            P2POrder.paid_at.is_not(None),
            P2POrder.completed_at.is_not(None),
        )
        .order_by(P2POrder.completed_at.desc())
        .limit(RELEASE_SAMPLE)
    ).all()
    return TradeSummary(
        counts=counts,
        volume_30d=vol30,
        volume_90d=vol90,
        release_s=tuple(
            (done - paid).total_seconds()
            for paid, done in releases
            if paid is not None and done is not None
        ),
        last_trade_at=last,
    )


def dispute_facts(session: Session, user_id: int) -> list[DisputeFact]:
    rows = session.execute(
        select(
            P2POrder.seller_id,
            P2PDispute.initiator_user_id,
            P2PDispute.status,
            P2PDispute.buyer_bps,
        )
        .join(P2POrder, P2POrder.id == P2PDispute.p2p_order_id)
        .where(_party(user_id))
    ).all()
    return [
        DisputeFact(
            role="seller" if seller == user_id else "buyer",
            opened_by_user=initiator == user_id,
            status=status,
            buyer_bps=bps,
        )
        for seller, initiator, status, bps in rows
    ]


def recompute(
    session: Session, user_id: int, *, now: datetime | None = None, rules: Rules | None = None
) -> UserReputation:
    now = now or datetime.now(UTC)
    rep = compute(
        trade_summary(session, user_id, now=now),
        dispute_facts(session, user_id),
        level=level_of(session, user_id),
        now=now,
        rules=rules or rules_of(session),
    )
    row = session.get(UserReputation, user_id)
    if row is None:
        row = UserReputation(user_id=user_id)
        session.add(row)
    _apply(row, rep, now)
    session.flush()
    return row


def _apply(row: UserReputation, rep: Reputation, now: datetime) -> None:
    row.total_trade_count = rep.total_trade_count
    row.completed_trade_count = rep.completed_trade_count
    row.trade_completion_rate = rep.trade_completion_rate
    row.trade_volume_30d = {k: str(v) for k, v in sorted(rep.trade_volume_30d.items())}
    row.trade_volume_90d = {k: str(v) for k, v in sorted(rep.trade_volume_90d.items())}
    row.disputes_opened = rep.disputes_opened
    row.disputes_won = rep.disputes_won
    row.disputes_lost = rep.disputes_lost
    row.median_release_s = rep.median_release_s
    row.reputation_score = rep.reputation_score
    row.trusted_seller = rep.trusted_seller
    row.last_trade_at = rep.last_trade_at
    row.computed_at = now


def trades_ended(session: Session, order_ids: Iterable[int]) -> None:
    """The hook: recompute both parties of each of these trades that is now
    in a final status (others are ignored), in the caller's transaction."""
    ids = list(order_ids)
    if not ids:
        return
    users: set[int] = set()
    for seller, buyer, status in session.execute(
        select(P2POrder.seller_id, P2POrder.buyer_id, P2POrder.status).where(
            P2POrder.id.in_(ids), P2POrder.kind == "trade"
        )
    ):
        if status in ENDED:
            users.update(u for u in (seller, buyer) if u is not None)
    now = datetime.now(UTC)
    for uid in sorted(users):
        recompute(session, uid, now=now)


STALE_BATCH = 500  # users recomputed per backstop run at most


def stale_users(
    session: Session, *, since: datetime | None = None, limit: int = STALE_BATCH
) -> list[int]:
    """Parties of ended trades, or of disputes, changed since their
    reputation was last computed (or never computed), in one query; with
    ``since``, only rows changed from then on are looked at (the job's
    watermark, so a run does not read the whole history)."""
    ended = sorted(ENDED)
    trade_at, dispute_at = P2POrder.updated_at, P2PDispute.updated_at
    trade_ok: ColumnElement[bool] = and_(P2POrder.kind == "trade", P2POrder.status.in_(ended))
    dispute_ok: ColumnElement[bool] = P2PDispute.id.is_not(None)
    if since is not None:
        trade_ok = and_(trade_ok, trade_at >= since)
        dispute_ok = dispute_at >= since
    touched = union_all(
        select(P2POrder.seller_id.label("uid"), trade_at.label("at")).where(trade_ok),
        select(P2POrder.buyer_id.label("uid"), trade_at.label("at")).where(trade_ok),
        select(P2POrder.seller_id.label("uid"), dispute_at.label("at"))
        .join(P2PDispute, P2PDispute.p2p_order_id == P2POrder.id)
        .where(dispute_ok),
        select(P2POrder.buyer_id.label("uid"), dispute_at.label("at"))
        .join(P2PDispute, P2PDispute.p2p_order_id == P2POrder.id)
        .where(dispute_ok),
    ).subquery()
    q = (
        select(touched.c.uid)
        .outerjoin(UserReputation, UserReputation.user_id == touched.c.uid)
        .where(touched.c.uid.is_not(None))
        .where(or_(UserReputation.computed_at.is_(None), touched.c.at > UserReputation.computed_at))
        .distinct()
        .order_by(touched.c.uid)
        .limit(limit)
    )
    return [int(u) for u in session.scalars(q)]


def refresh_stale(
    session: Session, *, now: datetime, rules: Rules | None = None, since: datetime | None = None
) -> int:
    users = stale_users(session, since=since)
    for uid in users:
        recompute(session, uid, now=now, rules=rules)
    return len(users)


def get_or_compute(session: Session, user_id: int) -> UserReputation:
    row = session.get(UserReputation, user_id)
    return row if row is not None else recompute(session, user_id)
