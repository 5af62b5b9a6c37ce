"""The audit log of security-relevant actions: sign-ins, 2FA changes, payment
details shown, rulings, releases. Rows are written in the caller's transaction,
so an action and its audit row commit (or roll back) together."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from node.db.models_accounts import AuditLog

MAX_SUBJECT = 128
MAX_ACTION = 64


def record_audit(
    session: Session,
    *,
    actor_id: int | None,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> None:
    """Add an audit row to ``session``'s transaction (committed with it).

    ``action`` is a dotted name (``auth.signin``, ``totp.enabled``,
    ``payment_details.shown``, ``dispute.ruled``, ``escrow.released``);
    ``subject`` names the object (``user:12``, ``trade:7``)."""
    session.add(
        AuditLog(
            actor_id=actor_id,
            action=action[:MAX_ACTION],
            subject=subject[:MAX_SUBJECT],
            details=dict(details or {}),
            ip=ip[:64] if ip else None,
        )
    )


@dataclass(frozen=True)
class AuditFilter:
    actor_id: int | None = None
    action: str | None = None  # exact, or a prefix ending in "." (``auth.``)
    subject: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_audit(
    session: Session, *, where: AuditFilter, limit: int = 50, offset: int = 0
) -> tuple[list[AuditLog], int]:
    """Audit rows matching ``where``, newest first, and how many match in all."""
    q = select(AuditLog)
    if where.actor_id is not None:
        q = q.where(AuditLog.actor_id == where.actor_id)
    if where.action:
        if where.action.endswith("."):
            q = q.where(AuditLog.action.startswith(where.action, autoescape=True))
        else:
            q = q.where(AuditLog.action == where.action)
    if where.subject:
        q = q.where(AuditLog.subject == where.subject)
    if where.since is not None:
        q = q.where(AuditLog.created_at >= where.since)
    if where.until is not None:
        q = q.where(AuditLog.created_at < where.until)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(q.order_by(AuditLog.id.desc()).limit(limit).offset(offset))
    return list(rows), total
