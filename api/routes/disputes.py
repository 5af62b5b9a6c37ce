"""Arbitration: disputes are assigned to an arbitrator, the parties bring
evidence (text and files) within the response deadline, the assigned
arbitrator rules within the ruling deadline (overdue cases escalate), and
signs the ruling with their registered key; the node checks that signature
before it co-signs the ruling's payout on the trade's chain (by the node's
agent key under the signing journal, or by the arbitrator's own wallet)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field

from api.deps import ArbitratorDep, ChainsDep, RowId, SessionDep, UserDep
from api.schemas import DisputePublic, Ruling, RulingResult, Strict
from api.views import dispute_public, submitted_public
from node import trades
from node.config import Settings
from node.db.models import P2PDispute
from node.db.models_disputes_ext import DisputeCase, DisputeEvidence, DisputeRuling
from node.disputes import cases, evidence, ruling, rulings
from node.domain.escrow import Action, ChainState, Role, check_action
from node.errors import EscrowStateError, ValidationError
from node.storage import FileStore, make_store

router = APIRouter(prefix="/api/p2p-crypto/disputes", tags=["arbitration"])


# --- bodies ------------------------------------------------------------------


class CasePublic(BaseModel):
    stage: str
    respondent_user_id: int | None
    response_due_at: datetime
    ruling_due_at: datetime | None
    responded_at: datetime | None
    response_missed: bool
    assigned_at: datetime | None
    escalations: int
    escalated_at: datetime | None
    escalation_reason: str | None


class RulingPublic(BaseModel):
    dispute_id: int
    p2p_order_id: int
    arbitrator_user_id: int
    chain: str
    escrow_key: str
    buyer_bps: int
    reason_hash: str
    signed_at: int
    scheme: str
    signer_address: str | None
    digest: str | None
    signature: str | None
    typed_data: dict[str, Any] | None


class DisputeDetail(BaseModel):
    dispute: DisputePublic
    case: CasePublic
    ruling: RulingPublic | None


class Assign(Strict):
    arbitrator_user_id: int = Field(ge=1, le=2**31 - 1)


class RulingDraft(Strict):
    buyer_bps: int = Field(ge=0, le=10_000)
    resolution_notes: str = Field("", max_length=8000)


class RulingToSign(BaseModel):
    """Sign ``typed_data`` (EIP-712, eth_signTypedData_v4) with your registered
    key; send the signature and ``timestamp`` to /resolve unchanged."""

    typed_data: dict[str, Any]
    digest: str
    timestamp: int


class SignedRuling(Ruling):
    # The arbitrator's EIP-712 signature of the ruling (see /ruling-payload)
    # and the timestamp it signed. ``signature``/``expiry`` (inherited) are
    # the on-chain RESOLVE of an escrow whose arbitrator is a person's wallet.
    ruling_signature: str | None = Field(None, max_length=200)
    timestamp: int | None = Field(None, ge=0, le=2**63 - 1)


class SignedRulingResult(RulingResult):
    ruling: RulingPublic


class TextEvidence(Strict):
    text: str = Field(min_length=1, max_length=8000)


class EvidencePublic(BaseModel):
    id: int
    dispute_id: int
    author_user_id: int
    author_role: str
    kind: str
    body: str | None
    file_name: str | None
    content_type: str | None
    size_bytes: int | None
    sha256: str | None
    download_url: str | None
    created_at: datetime


# --- helpers -------------------------------------------------------------------


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _store(request: Request) -> FileStore:
    store: FileStore | None = getattr(request.app.state, "dispute_store", None)
    if store is None:
        store = make_store(_settings(request))
        request.app.state.dispute_store = store
    return store


def _now() -> datetime:
    return datetime.now(UTC)


def _case_public(case: DisputeCase) -> CasePublic:
    return CasePublic.model_validate(case, from_attributes=True)


def _ruling_public(row: DisputeRuling) -> RulingPublic:
    return RulingPublic.model_validate(row, from_attributes=True)


def _evidence_public(e: DisputeEvidence) -> EvidencePublic:
    url = (
        f"/api/p2p-crypto/disputes/{e.dispute_id}/evidence/{e.id}/file" if e.file_key else None
    )
    return EvidencePublic(
        id=e.id, dispute_id=e.dispute_id, author_user_id=e.author_user_id,
        author_role=e.author_role, kind=e.kind, body=e.body, file_name=e.file_name,
        content_type=e.content_type, size_bytes=e.size_bytes, sha256=e.sha256,
        download_url=url, created_at=e.created_at,
    )


def _dispute_and_trade(session: SessionDep, dispute_id: int) -> tuple[P2PDispute, Any]:
    d = trades.get_dispute(session, dispute_id)
    return d, trades.get_order(session, d.p2p_order_id)


# --- listing and reading ------------------------------------------------------------


@router.get("", response_model=list[DisputePublic])
def list_disputes(
    session: SessionDep,
    arbitrator: ArbitratorDep,
    status: Annotated[str | None, Query(pattern="^(open|resolved)$")] = None,
    stage: Annotated[
        str | None, Query(pattern="^(awaiting_response|awaiting_ruling|escalated|ruled)$")
    ] = None,
    mine: bool = False,
) -> list[DisputePublic]:
    """Disputes for arbitrators and admins: by status, by case stage
    (``escalated`` is the admins' queue), or only those assigned to the caller."""
    return [
        dispute_public(d)
        for d in cases.list_disputes(
            session, status=status, stage=stage, arbitrator_id=arbitrator.id if mine else None
        )
    ]


@router.get("/{dispute_id}", response_model=DisputeDetail)
def get_dispute(
    dispute_id: RowId, request: Request, session: SessionDep, user: UserDep
) -> DisputeDetail:
    """The dispute, its case (stage, deadlines, escalations) and its ruling:
    for the parties, the assigned arbitrator and admins."""
    d, trade = _dispute_and_trade(session, dispute_id)
    cases.require_role(d, trade, user)
    case = cases.case_of(session, d, cfg=_settings(request).disputes)
    row = rulings.ruling_of(session, d.id)
    return DisputeDetail(
        dispute=dispute_public(d), case=_case_public(case),
        ruling=_ruling_public(row) if row is not None else None,
    )


@router.post("/{dispute_id}/assign", response_model=DisputeDetail)
def assign(
    dispute_id: RowId, body: Assign, request: Request, session: SessionDep, user: UserDep
) -> DisputeDetail:
    """Admins give a dispute to an arbitrator (a fresh ruling deadline)."""
    d, trade = _dispute_and_trade(session, dispute_id)
    case = cases.reassign(
        session, dispute=d, trade=trade, arbitrator_id=body.arbitrator_user_id, by=user,
        cfg=_settings(request).disputes,
    )
    row = rulings.ruling_of(session, d.id)
    return DisputeDetail(
        dispute=dispute_public(d), case=_case_public(case),
        ruling=_ruling_public(row) if row is not None else None,
    )


# --- evidence ------------------------------------------------------------------------


@router.get("/{dispute_id}/evidence", response_model=list[EvidencePublic])
def list_evidence(dispute_id: RowId, session: SessionDep, user: UserDep) -> list[EvidencePublic]:
    d, trade = _dispute_and_trade(session, dispute_id)
    return [
        _evidence_public(e)
        for e in evidence.list_evidence(session, dispute=d, trade=trade, user=user)
    ]


@router.post("/{dispute_id}/evidence", response_model=EvidencePublic, status_code=201)
def add_text_evidence(
    dispute_id: RowId, body: TextEvidence, request: Request, session: SessionDep, user: UserDep
) -> EvidencePublic:
    """Text evidence from a party (a note, for the arbitrator or an admin)."""
    d, trade = _dispute_and_trade(session, dispute_id)
    item = evidence.add_text(
        session, dispute=d, trade=trade, user=user, text=body.text,
        cfg=_settings(request).disputes, now=_now(),
    )
    return _evidence_public(item)


@router.post("/{dispute_id}/evidence/files", response_model=EvidencePublic, status_code=201)
def add_file_evidence(
    dispute_id: RowId,
    request: Request,
    session: SessionDep,
    user: UserDep,
    file: Annotated[UploadFile, File(description="PDF, PNG or JPEG")],
    note: Annotated[str | None, Form(max_length=8000)] = None,
) -> EvidencePublic:
    """A file (PDF, PNG, JPEG; its real type is checked) as evidence."""
    cfg = _settings(request).disputes
    data = file.file.read(cfg.evidence_max_bytes + 1)
    d, trade = _dispute_and_trade(session, dispute_id)
    item = evidence.add_file(
        session, store=_store(request), dispute=d, trade=trade, user=user, data=data,
        content_type=file.content_type or "", file_name=file.filename, note=note, cfg=cfg,
        now=_now(),
    )
    return _evidence_public(item)


@router.get("/{dispute_id}/evidence/{evidence_id}/file")
def download_evidence(
    dispute_id: RowId, evidence_id: RowId, request: Request, session: SessionDep, user: UserDep
) -> Response:
    d, trade = _dispute_and_trade(session, dispute_id)
    item, data = evidence.read_file(
        session, store=_store(request), dispute=d, trade=trade, user=user,
        evidence_id=evidence_id,
    )
    return Response(
        content=data,
        media_type=item.content_type or "application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="evidence-{item.id}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )


# --- ruling ------------------------------------------------------------------------------


@router.post("/{dispute_id}/ruling-payload", response_model=RulingToSign)
def ruling_payload(
    dispute_id: RowId, body: RulingDraft, session: SessionDep, user: ArbitratorDep
) -> RulingToSign:
    """What the assigned arbitrator signs for this ruling, stamped now."""
    d, trade = _dispute_and_trade(session, dispute_id)
    cases.require_ruler(d, user)
    escrow = trades.escrow_of(session, trade)
    terms = rulings.terms_for(
        dispute=d, trade=trade, escrow=escrow, buyer_bps=body.buyer_bps,
        notes=body.resolution_notes, timestamp=int(_now().timestamp()),
    )
    return RulingToSign(
        typed_data=ruling.typed_data(terms), digest=ruling.digest(terms),
        timestamp=terms.timestamp,
    )


@router.post("/{dispute_id}/resolve", response_model=SignedRulingResult, status_code=202)
def resolve(
    dispute_id: RowId,
    body: SignedRuling,
    request: Request,
    session: SessionDep,
    chains: ChainsDep,
    arbitrator: ArbitratorDep,
) -> SignedRulingResult:
    """Rule a split: ``buyer_bps`` of the escrow to the buyer, the rest to the
    seller. Only the assigned arbitrator (or an admin) rules; an arbitrator
    with a registered EVM key signs the ruling (EIP-712), checked before the
    payout is co-signed. Escrows arbitrated by the node's agent key are signed
    by the node; a human arbitrator's own key signs the RESOLVE payload."""
    settings = _settings(request)
    d = trades.get_dispute(session, dispute_id)
    if d.status != "open":
        raise EscrowStateError("the dispute is already resolved", state=d.status)
    trade = trades.get_order(session, d.p2p_order_id)
    escrow = trades.escrow_of(session, trade)
    now = _now()
    row = rulings.authorize(
        dispute=d, trade=trade, escrow=escrow, user=arbitrator, buyer_bps=body.buyer_bps,
        notes=body.resolution_notes, signature=body.ruling_signature, timestamp=body.timestamp,
        cfg=settings.disputes, mode=settings.mode, now=now,
    )
    chain = chains.get(escrow.chain)
    view = chain.escrow_view(escrow)
    if view.state is not ChainState.DISPUTED:
        raise EscrowStateError(
            "the escrow is not disputed on chain yet (the party's DISPUTE must confirm)",
            code="not_disputed_on_chain",
            state=view.state.name.lower(),
        )
    check_action(view, Action.RESOLVE, Role.ARBITRATOR, now=int(now.timestamp()))
    if body.signature is not None:
        if body.expiry is None:
            raise ValidationError("expiry is required with a signature", field="expiry")
        submitted = chain.submit_signed(
            session,
            escrow=escrow,
            action=Action.RESOLVE,
            buyer_bps=body.buyer_bps,
            expiry=body.expiry,
            signatures=[body.signature],
            requested_by=arbitrator,
        )
    else:
        submitted = chain.agent_rule(
            session, escrow=escrow, buyer_bps=body.buyer_bps, requested_by=arbitrator
        )
    d.status = "resolved"
    d.arbitrator_user_id = arbitrator.id
    d.buyer_bps = body.buyer_bps
    d.resolution_notes = body.resolution_notes
    d.resolved_at = now
    rulings.record(
        session, row=row, dispute=d, trade=trade, user=arbitrator, cfg=settings.disputes,
        ip=request.client.host if request.client else None, now=now,
    )
    return SignedRulingResult(
        dispute=dispute_public(d),
        submitted=submitted_public(submitted, Action.RESOLVE),
        ruling=_ruling_public(row),
    )


__all__ = ["router"]
