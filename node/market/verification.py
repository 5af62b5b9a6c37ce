"""Verification: levels (unverified < basic < verified < trusted), a request
for a higher level, its documents (checked, kept in the file store), and the
admin's review. A user without a row is unverified and has asked for nothing.

States of a request (``kyc_status``): ``pending`` (documents missing) ->
``under_review`` (all there) -> ``approved`` (level granted) or ``rejected``
(may start again).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from node.db.models import User
from node.db.models_market import UserVerification, VerificationDocument
from node.errors import EscrowStateError, NotFoundError, ValidationError
from node.market.limits import LEVELS, level_rank
from node.market.settings import MarketSettings
from node.storage import FileStore, check_upload, new_key, sniff_type

LIVE_DOCS = ("submitted", "accepted")


def levels_of(session: Session, user_ids: Iterable[int]) -> dict[int, str]:
    ids = list(user_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(UserVerification.user_id, UserVerification.level).where(
            UserVerification.user_id.in_(ids)
        )
    ).all()
    return {int(uid): str(level) for uid, level in rows}  # noqa: C416


def level_of(session: Session, user_id: int) -> str:
    return levels_of(session, [user_id]).get(user_id, "unverified")


def _row(session: Session, user_id: int, *, for_update: bool = False) -> UserVerification:
    q = select(UserVerification).where(UserVerification.user_id == user_id)
    if for_update:
        q = q.with_for_update()
    row = session.scalar(q)
    if row is None:
        row = UserVerification(user_id=user_id, level="unverified", kyc_status="none")
        session.add(row)
        session.flush()
    return row


def documents(
    session: Session, user_id: int, *, live_only: bool = False
) -> list[VerificationDocument]:
    q = select(VerificationDocument).where(VerificationDocument.user_id == user_id)
    if live_only:
        q = q.where(VerificationDocument.status.in_(LIVE_DOCS))
    return list(session.scalars(q.order_by(VerificationDocument.id)))


@dataclass(frozen=True)
class Status:
    row: UserVerification
    required: list[str]
    missing: list[str]
    documents: list[VerificationDocument]


def status(session: Session, *, user: User, cfg: MarketSettings) -> Status:
    row = session.get(UserVerification, user.id) or UserVerification(
        user_id=user.id, level="unverified", kyc_status="none"
    )
    docs = documents(session, user.id)
    required = list(cfg.required_documents.get(row.requested_level or "", []))
    have = {d.document_type for d in docs if d.status in LIVE_DOCS}
    return Status(
        row=row, required=required, missing=[t for t in required if t not in have], documents=docs
    )


def initiate(
    session: Session, *, user: User, level: str, cfg: MarketSettings, now: datetime
) -> UserVerification:
    """Ask for ``level`` (above the current one). Documents already accepted
    or submitted count towards it."""
    if level not in LEVELS[1:]:
        raise ValidationError(f"level must be one of {', '.join(LEVELS[1:])}", field="level")
    row = _row(session, user.id, for_update=True)
    if level_rank(level) <= level_rank(row.level):
        raise EscrowStateError(
            f"you are already {row.level}", code="already_at_level", level=row.level
        )
    if row.kyc_status == "under_review":
        raise EscrowStateError(
            "a verification is under review",
            code="review_in_progress",
            requested_level=row.requested_level,
        )
    row.requested_level = level
    row.kyc_status = "pending"
    row.submitted_at = None
    row.review_notes = None
    _maybe_complete(session, row, cfg, now)
    return row


def submit_document(
    session: Session,
    *,
    user: User,
    document_type: str,
    data: bytes,
    content_type: str,
    store: FileStore,
    cfg: MarketSettings,
    now: datetime,
) -> tuple[VerificationDocument, UserVerification]:
    """Check and keep one document of the pending request; the request goes
    to review once every required document is there. A new document of a
    type replaces the earlier one (superseded)."""
    row = _row(session, user.id, for_update=True)
    if row.kyc_status != "pending" or row.requested_level is None:
        raise EscrowStateError(
            "start a verification first (POST /api/p2p-crypto/verification/initiate)"
            if row.kyc_status in ("none", "approved", "rejected")
            else "the documents are under review",
            code="no_pending_verification",
            kyc_status=row.kyc_status,
        )
    if document_type not in cfg.document_types:
        raise ValidationError(
            f"document_type must be one of {', '.join(cfg.document_types)}",
            field="document_type",
        )
    stored = session.scalar(
        select(func.count())
        .select_from(VerificationDocument)
        .where(VerificationDocument.user_id == user.id)
    )
    if (stored or 0) >= cfg.max_documents_per_user:
        raise EscrowStateError(
            f"at most {cfg.max_documents_per_user} documents per user; ask an admin",
            code="too_many_documents",
        )
    check_upload(data, content_type, allowed=set(cfg.upload_types), max_bytes=cfg.upload_max_bytes)
    real_type = sniff_type(data) or "application/octet-stream"
    key = store.put(new_key(f"verification/{user.id}", real_type), data, real_type)
    for old in documents(session, user.id, live_only=True):
        if old.document_type == document_type and old.status == "submitted":
            old.status = "superseded"
    doc = VerificationDocument(
        user_id=user.id,
        document_type=document_type,
        storage_key=key,
        content_type=real_type,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        status="submitted",
        created_at=now,
    )
    session.add(doc)
    session.flush()
    _maybe_complete(session, row, cfg, now)
    return doc, row


def _maybe_complete(
    session: Session, row: UserVerification, cfg: MarketSettings, now: datetime
) -> None:
    required = cfg.required_documents.get(row.requested_level or "", [])
    have = {d.document_type for d in documents(session, row.user_id, live_only=True)}
    if row.kyc_status == "pending" and all(t in have for t in required):
        row.kyc_status = "under_review"
        row.submitted_at = now


def pending_reviews(session: Session) -> list[UserVerification]:
    return list(
        session.scalars(
            select(UserVerification)
            .where(UserVerification.kyc_status == "under_review")
            .order_by(UserVerification.submitted_at, UserVerification.user_id)
        )
    )


def review(
    session: Session, *, admin: User, user_id: int, approve: bool, notes: str, now: datetime
) -> UserVerification:
    """An admin approves (the requested level is granted, the documents
    accepted) or rejects (documents rejected; the user may start again)."""
    row = session.scalar(
        select(UserVerification).where(UserVerification.user_id == user_id).with_for_update()
    )
    if row is None or row.kyc_status != "under_review":
        raise NotFoundError(
            f"no verification under review for user {user_id}", code="no_review", user_id=user_id
        )
    if admin.id == user_id:
        raise EscrowStateError(
            "admins do not review their own verification", code="own_verification"
        )
    new_doc_status = "accepted" if approve else "rejected"
    for d in documents(session, user_id, live_only=True):
        if d.status == "submitted":
            d.status = new_doc_status
    if approve:
        assert row.requested_level is not None
        row.level = row.requested_level
        row.kyc_status = "approved"
    else:
        row.kyc_status = "rejected"
    row.requested_level = None if approve else row.requested_level
    row.reviewed_by = admin.id
    row.reviewed_at = now
    row.review_notes = notes or None
    return row


def set_level(
    session: Session, *, admin: User, user_id: int, level: str, notes: str, now: datetime
) -> UserVerification:
    """An admin sets a user's level directly (typically down: a revoked or
    expired verification). A pending request is closed."""
    if level not in LEVELS:
        raise ValidationError(f"level must be one of {', '.join(LEVELS)}", field="level")
    if session.get(User, user_id) is None:
        raise NotFoundError(f"no user {user_id}", user_id=user_id)
    if admin.id == user_id:
        raise EscrowStateError("admins do not set their own level", code="own_verification")
    row = _row(session, user_id, for_update=True)
    row.level = level
    if row.kyc_status in ("pending", "under_review"):
        for d in documents(session, user_id, live_only=True):
            if d.status == "submitted":
                d.status = "rejected"
    row.kyc_status = "approved" if level != "unverified" else "none"
    row.requested_level = None
    row.reviewed_by = admin.id
    row.reviewed_at = now
    row.review_notes = notes or None
    return row


def get_document(session: Session, doc_id: int) -> VerificationDocument:
    doc = session.get(VerificationDocument, doc_id)
    if doc is None:
        raise NotFoundError(f"no document {doc_id}", document_id=doc_id)
    return doc
