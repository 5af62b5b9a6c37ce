"""Dispute cases in the database: opening (deadlines, automatic assignment),
who may see and act on a dispute, reassignment, and the escalation job.
The time logic itself is pure (``node.disputes.deadlines``)."""

from __future__ import annotations

import logging
from datetime import datetime

from prometheus_client import Counter
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from node.db.models import P2PDispute, P2POrder, User, utcnow
from node.db.models_disputes_ext import DisputeCase
from node.disputes import deadlines
from node.disputes.deadlines import Clock, Stage, StepKind, Windows
from node.disputes.settings import DisputeSettings
from node.errors import NotFoundError, PermissionDeniedError, ValidationError
from node.events.outbox import emit_trade_event

log = logging.getLogger("escrowd.disputes")

ARBITRATOR_ROLES = ("arbitrator", "admin")

DEADLINE_STEPS = Counter(
    "escrowd_dispute_deadline_steps_total",
    "Dispute deadlines acted on: response_missed, reassign, flag_admins",
    ["step"],
)


def windows(cfg: DisputeSettings) -> Windows:
    return Windows(
        response_s=cfg.response_window_s,
        ruling_s=cfg.ruling_window_s,
        max_reassignments=cfg.max_reassignments,
    )


def clock_of(case: DisputeCase) -> Clock:
    return Clock(
        stage=Stage(case.stage),
        response_due=case.response_due_at,
        ruling_due=case.ruling_due_at,
        responded=case.responded_at is not None,
        response_missed=case.response_missed,
        escalations=case.escalations,
    )


def _apply(case: DisputeCase, clock: Clock) -> None:
    case.stage = clock.stage.value
    case.response_due_at = clock.response_due
    case.ruling_due_at = clock.ruling_due
    case.response_missed = clock.response_missed
    case.escalations = clock.escalations


# --- who is who --------------------------------------------------------------


def role_in(dispute: P2PDispute, trade: P2POrder, user: User) -> str | None:
    """``buyer``, ``seller``, ``arbitrator`` (the assigned one), ``admin``, or
    None for anyone else."""
    if user.id == trade.buyer_id:
        return "buyer"
    if user.id == trade.seller_id:
        return "seller"
    if user.role == "admin":
        return "admin"
    if user.role == "arbitrator" and dispute.arbitrator_user_id == user.id:
        return "arbitrator"
    return None


def require_role(dispute: P2PDispute, trade: P2POrder, user: User) -> str:
    """The caller's role in the dispute; a 404 for outsiders, so dispute ids
    of other people leak nothing."""
    role = role_in(dispute, trade, user)
    if role is None:
        raise NotFoundError(f"no dispute {dispute.id}", dispute_id=dispute.id)
    return role


def require_ruler(dispute: P2PDispute, user: User) -> None:
    """Only the assigned arbitrator, or an admin, rules."""
    if user.role == "admin":
        return
    if user.role == "arbitrator" and dispute.arbitrator_user_id == user.id:
        return
    raise PermissionDeniedError(
        "only the arbitrator assigned to this dispute (or an admin) may rule",
        code="not_assigned",
        arbitrator_user_id=dispute.arbitrator_user_id,
    )


# --- assignment ----------------------------------------------------------------


def arbitrator_loads(session: Session) -> dict[int, int]:
    """Open disputes per user with the arbitrator role (0 for the idle ones)."""
    ids = session.scalars(select(User.id).where(User.role == "arbitrator")).all()
    loads = dict.fromkeys(ids, 0)
    rows = session.execute(
        select(P2PDispute.arbitrator_user_id, func.count())
        .where(P2PDispute.status == "open", P2PDispute.arbitrator_user_id.in_(ids))
        .group_by(P2PDispute.arbitrator_user_id)
    ).all()
    for uid, n in rows:
        if uid is not None:
            loads[int(uid)] = int(n)
    return loads


def _parties(trade: P2POrder) -> frozenset[int]:
    return frozenset(uid for uid in (trade.seller_id, trade.buyer_id) if uid is not None)


def open_case(
    session: Session,
    *,
    dispute: P2PDispute,
    trade: P2POrder,
    cfg: DisputeSettings,
    now: datetime | None = None,
) -> DisputeCase:
    """The case of a newly opened dispute: deadlines from ``now``, assigned
    to the arbitrator with the fewest open disputes (never a party)."""
    existing = session.scalar(select(DisputeCase).where(DisputeCase.dispute_id == dispute.id))
    if existing is not None:
        return existing
    moment = now or utcnow()
    clock = deadlines.opened(moment, windows(cfg))
    respondent = trade.seller_id if dispute.initiator_user_id == trade.buyer_id else trade.buyer_id
    case = DisputeCase(dispute_id=dispute.id, respondent_user_id=respondent, escalations=0,
                       response_missed=False)
    _apply(case, clock)
    session.add(case)
    if dispute.arbitrator_user_id is None:
        pick = deadlines.pick_arbitrator(arbitrator_loads(session), exclude=_parties(trade))
        if pick is not None:
            dispute.arbitrator_user_id = pick
            case.assigned_at = moment
    session.flush()
    emit_trade_event(session, trade, "dispute.opened", {
        "dispute_id": dispute.id,
        "initiator_user_id": dispute.initiator_user_id,
        "arbitrator_user_id": dispute.arbitrator_user_id,
        "response_due_at": case.response_due_at.isoformat(),
    }, now=moment)
    return case


def case_of(
    session: Session, dispute: P2PDispute, *, cfg: DisputeSettings, now: datetime | None = None
) -> DisputeCase:
    """The dispute's case; disputes opened before cases existed get one now."""
    case = session.scalar(select(DisputeCase).where(DisputeCase.dispute_id == dispute.id))
    if case is None:
        trade = session.get(P2POrder, dispute.p2p_order_id)
        assert trade is not None
        case = open_case(session, dispute=dispute, trade=trade, cfg=cfg,
                         now=now or dispute.created_at)
    return case


def reassign(
    session: Session,
    *,
    dispute: P2PDispute,
    trade: P2POrder,
    arbitrator_id: int,
    by: User,
    cfg: DisputeSettings,
    now: datetime | None = None,
) -> DisputeCase:
    """An admin gives the dispute to ``arbitrator_id`` (an arbitrator or admin,
    not a party); the new arbitrator gets a fresh ruling deadline."""
    if by.role != "admin":
        raise PermissionDeniedError("only admins reassign disputes", code="admins_only")
    if dispute.status != "open":
        raise ValidationError("the dispute is already resolved", code="invalid_state",
                              state=dispute.status)
    target = session.get(User, arbitrator_id)
    if target is None or target.role not in ARBITRATOR_ROLES:
        raise ValidationError(f"user {arbitrator_id} is not an arbitrator",
                              field="arbitrator_user_id")
    if target.id in _parties(trade):
        raise ValidationError("a party of the trade cannot arbitrate it",
                              code="arbitrator_is_party", field="arbitrator_user_id")
    moment = now or utcnow()
    case = case_of(session, dispute, cfg=cfg, now=moment)
    dispute.arbitrator_user_id = target.id
    case.assigned_at = moment
    _apply(case, deadlines.reassigned(clock_of(case), moment, windows(cfg)))
    emit_trade_event(session, trade, "dispute.assigned", {
        "dispute_id": dispute.id, "arbitrator_user_id": target.id, "by_user_id": by.id,
        "ruling_due_at": case.ruling_due_at.isoformat() if case.ruling_due_at else None,
    }, now=moment)
    return case


def mark_responded(
    *, case: DisputeCase, user: User, cfg: DisputeSettings, now: datetime
) -> None:
    """The respondent's first evidence answers the dispute."""
    if case.responded_at is not None or user.id != case.respondent_user_id:
        return
    case.responded_at = now
    _apply(case, deadlines.responded(clock_of(case), now, windows(cfg)))


def mark_ruled(case: DisputeCase) -> None:
    case.stage = Stage.RULED.value
    case.ruling_due_at = None


def list_disputes(
    session: Session, *, status: str | None = None, stage: str | None = None,
    arbitrator_id: int | None = None,
) -> list[P2PDispute]:
    """Disputes by status, case stage (``escalated``: the admins' queue) and
    assigned arbitrator, oldest first."""
    q = select(P2PDispute).order_by(P2PDispute.id)
    if status:
        q = q.where(P2PDispute.status == status)
    if stage:
        q = q.join(DisputeCase, DisputeCase.dispute_id == P2PDispute.id).where(
            DisputeCase.stage == stage
        )
    if arbitrator_id is not None:
        q = q.where(P2PDispute.arbitrator_user_id == arbitrator_id)
    return list(session.scalars(q))


# --- escalation job ---------------------------------------------------------------


def escalate_overdue(
    session: Session, *, cfg: DisputeSettings, now: datetime
) -> list[tuple[int, str]]:
    """Apply the deadlines at ``now`` to every open dispute that has one due:
    missed answers move the case on, overdue rulings are reassigned or flagged
    to the admins (stage ``escalated``). Returns (dispute id, step) for each
    change; running it again at the same ``now`` changes nothing. Rows are
    claimed with SKIP LOCKED, so concurrent runs share the work."""
    due = or_(
        DisputeCase.id.is_(None),  # opened before cases existed
        and_(DisputeCase.stage == Stage.AWAITING_RESPONSE.value,
             DisputeCase.response_due_at <= now),
        DisputeCase.ruling_due_at <= now,
    )
    disputes = session.scalars(
        select(P2PDispute)
        .outerjoin(DisputeCase, DisputeCase.dispute_id == P2PDispute.id)
        .where(P2PDispute.status == "open", due)
        .order_by(P2PDispute.id)
        .with_for_update(of=P2PDispute, skip_locked=True)
    ).all()
    changes: list[tuple[int, str]] = []
    for dispute in disputes:
        # a missed answer and an overdue ruling can both be due: at most
        # three steps (missed, escalated), then the clock has nothing due
        for _ in range(3):
            kind = _escalate_once(session, dispute=dispute, cfg=cfg, now=now)
            if kind is None:
                break
            changes.append((dispute.id, kind))
    return changes


def _escalate_once(
    session: Session, *, dispute: P2PDispute, cfg: DisputeSettings, now: datetime
) -> str | None:
    case = case_of(session, dispute, cfg=cfg, now=now)
    trade = session.get(P2POrder, dispute.p2p_order_id)
    assert trade is not None
    exclude = _parties(trade) | (
        {dispute.arbitrator_user_id} if dispute.arbitrator_user_id is not None else set()
    )
    other = deadlines.pick_arbitrator(arbitrator_loads(session), exclude=frozenset(exclude))
    step = deadlines.next_step(clock_of(case), now, windows(cfg),
                               other_arbitrator=other is not None)
    if step.kind is StepKind.NONE:
        return None
    _apply(case, step.clock)
    data: dict[str, object] = {"dispute_id": dispute.id, "reason": step.reason}
    if step.kind is StepKind.RESPONSE_MISSED:
        kind = "dispute.response_missed"
    else:
        kind = "dispute.escalated"
        case.escalated_at = now
        case.escalation_reason = step.reason
        if step.kind is StepKind.REASSIGN and other is not None:
            data["from_arbitrator_user_id"] = dispute.arbitrator_user_id
            dispute.arbitrator_user_id = other
            case.assigned_at = now
        data["arbitrator_user_id"] = dispute.arbitrator_user_id
        data["flagged_to_admins"] = step.kind is StepKind.FLAG_ADMINS
        log.warning("dispute %s escalated: %s", dispute.id, step.reason)
    emit_trade_event(session, trade, kind, data, now=now)
    DEADLINE_STEPS.labels(step.kind.value).inc()
    return step.kind.value
