"""Payment methods, verification, reputation, currencies' prices: the seed's
endpoints under /api/p2p-crypto, thin handlers over ``node.market``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile

from api.deps import AdminDep, RowId, SessionDep, UserDep
from api.market_deps import CipherDep, MarketDep, PolicyDep, StoreDep
from api.schemas_market import (
    DocumentPublic,
    IndexPublic,
    LevelSet,
    LimitPublic,
    PaymentMethodCreate,
    PaymentMethodPublic,
    PaymentMethodUpdate,
    ReputationPublic,
    ReviewQueueItem,
    TradePaymentDetails,
    VerificationInitiate,
    VerificationReview,
    VerificationStatus,
)
from node import trades
from node.db.models import User
from node.db.models_market import UserReputation, VerificationDocument
from node.errors import NotFoundError, ValidationError
from node.market import payment_methods as pm
from node.market import prices, reputation, verification
from node.market.audit import (
    record_document_viewed,
    record_level_set,
    record_review,
    record_shown,
)
from node.market.limits import Limit
from node.market.opening import OpeningPolicy, used_24h
from node.market.pricing import IndexPrice

router = APIRouter(prefix="/api/p2p-crypto", tags=["market"])


# --- payment methods -------------------------------------------------------


def _pm_public(view: pm.MethodView) -> PaymentMethodPublic:
    return PaymentMethodPublic.model_validate(view, from_attributes=True)


@router.get("/payment-methods", response_model=list[PaymentMethodPublic])
def list_payment_methods(
    session: SessionDep, user: UserDep, cipher: CipherDep
) -> list[PaymentMethodPublic]:
    """The caller's payment methods, in clear (they are the owner)."""
    return [
        _pm_public(pm.view(m, cipher=cipher, reveal=True))
        for m in pm.list_methods(session, user=user)
    ]


@router.post("/payment-methods", response_model=PaymentMethodPublic, status_code=201)
def add_payment_method(
    body: PaymentMethodCreate, session: SessionDep, user: UserDep, cipher: CipherDep
) -> PaymentMethodPublic:
    m = pm.add_method(session, user=user, data=pm.MethodInput(**body.model_dump()), cipher=cipher)
    return _pm_public(pm.view(m, cipher=cipher, reveal=True))


@router.put("/payment-methods/{method_id}", response_model=PaymentMethodPublic)
def update_payment_method(
    method_id: RowId,
    body: PaymentMethodUpdate,
    session: SessionDep,
    user: UserDep,
    cipher: CipherDep,
) -> PaymentMethodPublic:
    changes = body.model_dump(exclude_unset=True)
    for required in ("payment_type", "name", "is_default", "is_active"):
        if required in changes and changes[required] is None:
            raise ValidationError(f"{required} cannot be null", field=required)
    m = pm.update_method(session, user=user, method_id=method_id, changes=changes, cipher=cipher)
    return _pm_public(pm.view(m, cipher=cipher, reveal=True))


@router.delete("/payment-methods/{method_id}", status_code=204)
def delete_payment_method(method_id: RowId, session: SessionDep, user: UserDep) -> Response:
    pm.delete_method(session, user=user, method_id=method_id)
    return Response(status_code=204)


@router.get("/orders/{order_id}/payment-details", response_model=TradePaymentDetails)
def trade_payment_details(
    order_id: RowId, session: SessionDep, user: UserDep, cipher: CipherDep
) -> TradePaymentDetails:
    """The counterparty's payment methods for this trade, in clear: only for
    the buyer and seller of an active trade; every showing is audited."""
    trade = trades.get_trade_for(session, order_id, user)
    other, methods = pm.counterparty_methods(session, trade=trade, viewer=user)
    views = [pm.view(m, cipher=cipher, reveal=True) for m in methods]
    record_shown(
        session, viewer=user, trade=trade, owner_id=other, method_ids=[v.id for v in views]
    )
    return TradePaymentDetails(
        order_id=trade.id, counterparty_id=other, payment_methods=[_pm_public(v) for v in views]
    )


# --- verification ----------------------------------------------------------


def _doc(d: VerificationDocument) -> DocumentPublic:
    return DocumentPublic.model_validate(d, from_attributes=True)


def _limits(session: SessionDep, user: User, level: str, policy: OpeningPolicy) -> LimitPublic:
    limit = policy.limits.get(level, Limit())
    now = datetime.now(UTC)
    rates = prices.fresh_rates(session, now=now, max_age_s=policy.price_max_age_s)
    used = used_24h(
        session, user.id, since=now - timedelta(hours=24), target=policy.limits_fiat, rates=rates
    )
    return LimitPublic(
        fiat=policy.limits_fiat,
        per_trade=limit.per_trade,
        per_24h=limit.per_24h,
        used_24h=used.quantize(Decimal("0.01")),
        enforced=policy.limits_enabled,
    )


@router.get("/verification-status", response_model=VerificationStatus)
def verification_status(
    session: SessionDep, user: UserDep, cfg: MarketDep, policy: PolicyDep
) -> VerificationStatus:
    st = verification.status(session, user=user, cfg=cfg)
    row = st.row
    return VerificationStatus(
        user_id=user.id,
        verification_level=row.level,
        is_verified=row.level != "unverified",
        kyc_status=row.kyc_status,
        requested_level=row.requested_level,
        required_documents=st.required,
        missing_documents=st.missing,
        documents=[_doc(d) for d in st.documents],
        submitted_at=row.submitted_at,
        reviewed_at=row.reviewed_at,
        review_notes=row.review_notes,
        limits=_limits(session, user, row.level, policy),
    )


@router.post("/verification/initiate", response_model=VerificationStatus)
def verification_initiate(
    body: VerificationInitiate,
    session: SessionDep,
    user: UserDep,
    cfg: MarketDep,
    policy: PolicyDep,
) -> VerificationStatus:
    """Ask for a higher level; then submit the documents it needs."""
    verification.initiate(session, user=user, level=body.level, cfg=cfg, now=datetime.now(UTC))
    return verification_status(session, user, cfg, policy)


@router.post("/verification/submit", response_model=VerificationStatus, status_code=201)
def verification_submit(
    session: SessionDep,
    user: UserDep,
    cfg: MarketDep,
    policy: PolicyDep,
    store: StoreDep,
    document_type: Annotated[str, Form(min_length=1, max_length=32)],
    file: Annotated[UploadFile, File(description="PDF, PNG or JPEG")],
) -> VerificationStatus:
    """Upload one document (multipart: ``document_type`` and ``file``). Its
    real type is read from its bytes; size and type are checked."""
    data = file.file.read(cfg.upload_max_bytes + 1)
    verification.submit_document(
        session,
        user=user,
        document_type=document_type,
        data=data,
        content_type=file.content_type or "",
        store=store,
        cfg=cfg,
        now=datetime.now(UTC),
    )
    return verification_status(session, user, cfg, policy)


@router.get("/admin/verifications", response_model=list[ReviewQueueItem])
def review_queue(session: SessionDep, _admin: AdminDep) -> list[ReviewQueueItem]:
    """Verifications waiting for an admin's review, oldest first."""
    out = []
    for row in verification.pending_reviews(session):
        who = session.get(User, row.user_id)
        out.append(
            ReviewQueueItem(
                user_id=row.user_id,
                username=who.username if who else "",
                verification_level=row.level,
                requested_level=row.requested_level,
                submitted_at=row.submitted_at,
                documents=[
                    _doc(d) for d in verification.documents(session, row.user_id, live_only=True)
                ],
            )
        )
    return out


@router.post("/admin/verifications/{user_id}/review", response_model=ReviewQueueItem)
def review_verification(
    user_id: RowId, body: VerificationReview, session: SessionDep, user: AdminDep
) -> ReviewQueueItem:
    row = verification.review(
        session,
        admin=user,
        user_id=user_id,
        approve=body.decision == "approve",
        notes=body.notes,
        now=datetime.now(UTC),
    )
    record_review(
        session,
        admin=user,
        user_id=user_id,
        approved=body.decision == "approve",
        level=row.level,
        notes=body.notes,
    )
    reputation.recompute(session, user_id)  # trusted seller depends on the level
    who = session.get(User, user_id)
    return ReviewQueueItem(
        user_id=user_id,
        username=who.username if who else "",
        verification_level=row.level,
        requested_level=row.requested_level,
        submitted_at=row.submitted_at,
        documents=[_doc(d) for d in verification.documents(session, user_id)],
    )


@router.post("/admin/users/{user_id}/verification-level", response_model=ReviewQueueItem)
def set_verification_level(
    user_id: RowId, body: LevelSet, session: SessionDep, user: AdminDep
) -> ReviewQueueItem:
    """An admin sets a user's level directly (e.g. revokes a verification)."""
    row = verification.set_level(
        session,
        admin=user,
        user_id=user_id,
        level=body.level,
        notes=body.notes,
        now=datetime.now(UTC),
    )
    record_level_set(session, admin=user, user_id=user_id, level=body.level, notes=body.notes)
    reputation.recompute(session, user_id)  # trusted seller depends on the level
    who = session.get(User, user_id)
    return ReviewQueueItem(
        user_id=user_id,
        username=who.username if who else "",
        verification_level=row.level,
        requested_level=row.requested_level,
        submitted_at=row.submitted_at,
        documents=[_doc(d) for d in verification.documents(session, user_id)],
    )


@router.get("/admin/verification-documents/{document_id}")
def verification_document(
    document_id: RowId, session: SessionDep, user: AdminDep, store: StoreDep
) -> Response:
    """A document's bytes, for the reviewing admin."""
    doc = verification.get_document(session, document_id)
    record_document_viewed(session, admin=user, document_id=doc.id, owner_id=doc.user_id)
    return Response(
        content=store.get(doc.storage_key),
        media_type=doc.content_type,
        headers={
            "Content-Disposition": f'attachment; filename="document-{doc.id}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


# --- reputation ------------------------------------------------------------


def _rep(session: SessionDep, who: User) -> ReputationPublic:
    row: UserReputation = reputation.get_or_compute(session, who.id)
    return ReputationPublic(
        user_id=who.id,
        username=who.username,
        verification_level=verification.level_of(session, who.id),
        total_trade_count=row.total_trade_count,
        completed_trade_count=row.completed_trade_count,
        trade_completion_rate=row.trade_completion_rate,
        trade_volume_30d=dict(row.trade_volume_30d or {}),
        trade_volume_90d=dict(row.trade_volume_90d or {}),
        disputes_opened=row.disputes_opened,
        disputes_won=row.disputes_won,
        disputes_lost=row.disputes_lost,
        median_release_time_s=row.median_release_s,
        reputation_score=row.reputation_score,
        trusted_seller=row.trusted_seller,
        last_trade_at=row.last_trade_at,
        computed_at=row.computed_at,
    )


@router.get("/reputation", response_model=ReputationPublic)
def my_reputation(session: SessionDep, user: UserDep) -> ReputationPublic:
    return _rep(session, user)


@router.get("/users/{user_id}/profile", response_model=ReputationPublic)
def public_profile(user_id: RowId, session: SessionDep) -> ReputationPublic:
    """Anyone's public trading profile (no sign-in needed)."""
    who = session.get(User, user_id)
    if who is None:
        raise NotFoundError(f"no user {user_id}", user_id=user_id)
    return _rep(session, who)


# --- prices ------------------------------------------------------------------


@router.get("/prices", response_model=list[IndexPublic])
def price_index(
    session: SessionDep,
    policy: PolicyDep,
    base: Annotated[str | None, Query(min_length=1, max_length=16)] = None,
    quote: Annotated[str | None, Query(min_length=3, max_length=8)] = None,
) -> list[IndexPublic]:
    """The price index per pair (median of the fresh quotes of every source);
    a pair whose quotes are all older than the maximum age shows ``stale``."""
    out = []
    for (b, q), ix in prices.all_indexes(
        session, now=datetime.now(UTC), max_age_s=policy.price_max_age_s
    ):
        if (base and b != base.upper()) or (quote and q != quote.upper()):
            continue
        if isinstance(ix, IndexPrice):
            out.append(
                IndexPublic(
                    base=b,
                    quote=q,
                    price=ix.price,
                    observed_at=ix.observed_at,
                    sources=list(ix.sources),
                    stale=False,
                    error=None,
                )
            )
        else:
            out.append(
                IndexPublic(
                    base=b,
                    quote=q,
                    price=None,
                    observed_at=None,
                    sources=[],
                    stale=ix.code == "price_stale",
                    error=ix.code,
                )
            )
    return out
