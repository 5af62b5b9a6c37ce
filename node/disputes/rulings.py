"""Rulings in the database: who may rule, whether the ruling must be signed,
the check of the arbitrator's EIP-712 signature against their registered key,
and the stored, audited ruling. The chain payout is co-signed by the caller
(``api.routes.disputes``) only after ``authorize`` accepted the ruling."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.accounts.audit import record_audit
from node.db.models import P2PDispute, P2PEscrow, P2POrder, User
from node.db.models_disputes_ext import DisputeRuling
from node.disputes import cases, ruling
from node.disputes.ruling import RulingTerms
from node.disputes.settings import DisputeSettings
from node.errors import PermissionDeniedError, ValidationError
from node.events.outbox import emit_trade_event


def chain_of(escrow: P2PEscrow) -> str:
    return f"{escrow.chain}:{escrow.network}"


def terms_for(
    *, dispute: P2PDispute, trade: P2POrder, escrow: P2PEscrow, buyer_bps: int, notes: str,
    timestamp: int,
) -> RulingTerms:
    return RulingTerms(
        dispute_id=dispute.id,
        trade_id=trade.id,
        chain=chain_of(escrow),
        escrow=escrow.escrow_key,
        buyer_bps=buyer_bps,
        reason_hash=ruling.reason_hash(notes),
        timestamp=timestamp,
    )


def unsigned_allowed(cfg: DisputeSettings, *, mode: str) -> bool:
    if cfg.allow_unsigned_rulings is None:
        return mode == "dev"
    return cfg.allow_unsigned_rulings


def authorize(
    *,
    dispute: P2PDispute,
    trade: P2POrder,
    escrow: P2PEscrow,
    user: User,
    buyer_bps: int,
    notes: str,
    signature: str | None,
    timestamp: int | None,
    cfg: DisputeSettings,
    mode: str,
    now: datetime,
) -> DisputeRuling:
    """The ruling to record, once the caller may rule and the signature (if
    one is required or given) is the caller's registered key's. Not added to
    the session: ``record`` does that after the chain accepted the payout."""
    cases.require_ruler(dispute, user)
    now_s = int(now.timestamp())
    if user.evm_address:
        if signature is None or timestamp is None:
            raise ValidationError(
                "sign the ruling with your registered key (EIP-712, see "
                "/disputes/{id}/ruling-payload) and send ruling_signature and timestamp",
                code="ruling_signature_required", field="ruling_signature",
            )
        ruling.check_fresh(timestamp, now=now_s, max_age_s=cfg.ruling_max_age_s,
                           max_skew_s=cfg.ruling_max_skew_s)
        terms = terms_for(dispute=dispute, trade=trade, escrow=escrow, buyer_bps=buyer_bps,
                          notes=notes, timestamp=timestamp)
        ruling.verify(terms, signature, arbitrator_address=user.evm_address)
        return DisputeRuling(
            dispute_id=dispute.id, p2p_order_id=trade.id, arbitrator_user_id=user.id,
            chain=terms.chain, escrow_key=terms.escrow, buyer_bps=buyer_bps,
            reason_hash=terms.reason_hash, signed_at=timestamp, scheme="eip712",
            signer_address=user.evm_address, digest=ruling.digest(terms),
            signature=signature, typed_data=ruling.typed_data(terms), created_at=now,
        )
    if signature is not None:
        raise ValidationError(
            "you have no registered EVM key to check a ruling signature against",
            code="no_arbitrator_key", field="ruling_signature",
        )
    if not unsigned_allowed(cfg, mode=mode):
        raise PermissionDeniedError(
            "rulings must be signed: register an EVM address for this arbitrator",
            code="signed_ruling_required",
        )
    terms = terms_for(dispute=dispute, trade=trade, escrow=escrow, buyer_bps=buyer_bps,
                      notes=notes, timestamp=now_s)
    return DisputeRuling(
        dispute_id=dispute.id, p2p_order_id=trade.id, arbitrator_user_id=user.id,
        chain=terms.chain, escrow_key=terms.escrow, buyer_bps=buyer_bps,
        reason_hash=terms.reason_hash, signed_at=now_s, scheme="unsigned",
        typed_data=ruling.typed_data(terms), digest=ruling.digest(terms), created_at=now,
    )


def record(
    session: Session, *, row: DisputeRuling, dispute: P2PDispute, trade: P2POrder,
    user: User, cfg: DisputeSettings, ip: str | None, now: datetime,
) -> DisputeRuling:
    """Store the ruling, close the case, audit it and announce it."""
    session.add(row)
    case = cases.case_of(session, dispute, cfg=cfg, now=now)
    cases.mark_ruled(case)
    session.flush()
    record_audit(
        session, actor_id=user.id, action="dispute.ruled", subject=f"dispute:{dispute.id}",
        details={"trade_id": trade.id, "buyer_bps": row.buyer_bps, "scheme": row.scheme,
                 "signer": row.signer_address, "digest": row.digest,
                 "reason_hash": row.reason_hash},
        ip=ip,
    )
    emit_trade_event(session, trade, "dispute.ruled", {
        "dispute_id": dispute.id, "buyer_bps": row.buyer_bps, "scheme": row.scheme,
        "arbitrator_user_id": user.id,
    }, now=now)
    return row


def ruling_of(session: Session, dispute_id: int) -> DisputeRuling | None:
    return session.scalar(select(DisputeRuling).where(DisputeRuling.dispute_id == dispute_id))
