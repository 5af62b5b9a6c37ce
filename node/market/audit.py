"""Audit records of this slice (written through the accounts slice's audit log)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from node.accounts.audit import record_audit
from node.db.models import P2POrder, User

PAYMENT_DETAILS_SHOWN = "payment_details.shown"


def record_shown(
    session: Session, *, viewer: User, trade: P2POrder, owner_id: int, method_ids: list[int]
) -> None:
    """The counterparty ``viewer`` was shown ``owner_id``'s payment details
    for ``trade`` (in the same transaction as the showing)."""
    record_audit(
        session,
        actor_id=viewer.id,
        action=PAYMENT_DETAILS_SHOWN,
        subject=f"trade:{trade.id}",
        details={
            "owner_id": owner_id,
            "payment_method_ids": method_ids,
            "trade_status": trade.status,
        },
    )


def record_review(
    session: Session, *, admin: User, user_id: int, approved: bool, level: str | None, notes: str
) -> None:
    record_audit(
        session,
        actor_id=admin.id,
        action="verification.approved" if approved else "verification.rejected",
        subject=f"user:{user_id}",
        details={"level": level, "notes": notes[:500]},
    )


def record_document_viewed(
    session: Session, *, admin: User, document_id: int, owner_id: int
) -> None:
    record_audit(
        session,
        actor_id=admin.id,
        action="verification_document.viewed",
        subject=f"user:{owner_id}",
        details={"document_id": document_id},
    )


def record_level_set(
    session: Session, *, admin: User, user_id: int, level: str, notes: str
) -> None:
    record_audit(
        session,
        actor_id=admin.id,
        action="verification.level_set",
        subject=f"user:{user_id}",
        details={"level": level, "notes": notes[:500]},
    )
