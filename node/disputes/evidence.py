"""Dispute evidence: text and files from the buyer and the seller, notes
from the assigned arbitrator (or an admin). Files go to the node's file
store (``node.storage``) after their size and real type are checked; the
database keeps the key, name, type, size and SHA-256."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from node.db.models import P2PDispute, P2POrder, User
from node.db.models_disputes_ext import DisputeCase, DisputeEvidence
from node.disputes import cases
from node.disputes.settings import DisputeSettings
from node.errors import EscrowStateError, NotFoundError, ValidationError
from node.events.outbox import emit_trade_event
from node.storage import DOCUMENT_TYPES, FileStore, check_upload, new_key

PARTY_ROLES = ("buyer", "seller")


def _check_open(session: Session, dispute: P2PDispute, cfg: DisputeSettings) -> None:
    if dispute.status != "open":
        raise EscrowStateError("the dispute is closed: no more evidence", code="dispute_closed",
                               state=dispute.status)
    n = session.scalar(
        select(func.count()).select_from(DisputeEvidence).where(
            DisputeEvidence.dispute_id == dispute.id
        )
    ) or 0
    if n >= cfg.evidence_max_items:
        raise ValidationError(f"at most {cfg.evidence_max_items} pieces of evidence",
                              code="too_much_evidence")


def _added(
    session: Session, *, dispute: P2PDispute, trade: P2POrder, case: DisputeCase, user: User,
    item: DisputeEvidence, cfg: DisputeSettings, now: datetime,
) -> DisputeEvidence:
    session.add(item)
    session.flush()
    cases.mark_responded(case=case, user=user, cfg=cfg, now=now)
    if item.kind != "note":  # arbitrators' notes are not announced to the parties
        emit_trade_event(session, trade, "dispute.evidence_added", {
            "dispute_id": dispute.id, "evidence_id": item.id, "kind": item.kind,
            "author_role": item.author_role,
        }, now=now)
    return item


def add_text(
    session: Session, *, dispute: P2PDispute, trade: P2POrder, user: User, text: str,
    cfg: DisputeSettings, now: datetime,
) -> DisputeEvidence:
    role = cases.require_role(dispute, trade, user)
    _check_open(session, dispute, cfg)
    case = cases.case_of(session, dispute, cfg=cfg, now=now)
    kind = "text" if role in PARTY_ROLES else "note"
    item = DisputeEvidence(dispute_id=dispute.id, author_user_id=user.id, author_role=role,
                           kind=kind, body=text, created_at=now)
    return _added(session, dispute=dispute, trade=trade, case=case, user=user, item=item,
                  cfg=cfg, now=now)


def add_file(
    session: Session, *, store: FileStore, dispute: P2PDispute, trade: P2POrder, user: User,
    data: bytes, content_type: str, file_name: str | None, note: str | None,
    cfg: DisputeSettings, now: datetime,
) -> DisputeEvidence:
    role = cases.require_role(dispute, trade, user)
    _check_open(session, dispute, cfg)
    check_upload(data, content_type, allowed=set(DOCUMENT_TYPES), max_bytes=cfg.evidence_max_bytes)
    media = content_type.split(";", 1)[0].strip().lower()
    case = cases.case_of(session, dispute, cfg=cfg, now=now)
    key = store.put(new_key(f"disputes/{dispute.id}", media), data, media)
    item = DisputeEvidence(
        dispute_id=dispute.id, author_user_id=user.id, author_role=role,
        kind="file" if role in PARTY_ROLES else "note", body=note,
        file_key=key, file_name=(file_name or "")[:255] or None, content_type=media,
        size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), created_at=now,
    )
    return _added(session, dispute=dispute, trade=trade, case=case, user=user, item=item,
                  cfg=cfg, now=now)


def list_evidence(
    session: Session, *, dispute: P2PDispute, trade: P2POrder, user: User
) -> list[DisputeEvidence]:
    """What the caller may read: everything for the arbitrator and admins;
    the parties' evidence (not the arbitrators' notes) for the parties."""
    role = cases.require_role(dispute, trade, user)
    q = select(DisputeEvidence).where(DisputeEvidence.dispute_id == dispute.id)
    if role in PARTY_ROLES:
        q = q.where(DisputeEvidence.author_role.in_(PARTY_ROLES))
    return list(session.scalars(q.order_by(DisputeEvidence.id)))


def read_file(
    session: Session, *, store: FileStore, dispute: P2PDispute, trade: P2POrder, user: User,
    evidence_id: int,
) -> tuple[DisputeEvidence, bytes]:
    visible = {e.id: e for e in list_evidence(session, dispute=dispute, trade=trade, user=user)}
    item = visible.get(evidence_id)
    if item is None or item.file_key is None:
        raise NotFoundError(f"no evidence file {evidence_id}", evidence_id=evidence_id)
    return item, store.get(item.file_key)
