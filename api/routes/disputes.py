"""Arbitration: arbitrators list disputes and rule; the ruling's payout is
co-signed on the trade's chain (by the node's agent key under the signing
journal, or by the arbitrator's own wallet)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import ArbitratorDep, ChainsDep, RowId, SessionDep
from api.schemas import DisputePublic, Ruling, RulingResult
from api.views import dispute_public, submitted_public
from node import trades
from node.domain.escrow import Action, ChainState, Role, check_action
from node.errors import EscrowStateError, ValidationError

router = APIRouter(prefix="/api/p2p-crypto/disputes", tags=["arbitration"])


@router.get("", response_model=list[DisputePublic])
def list_disputes(
    session: SessionDep,
    _arbitrator: ArbitratorDep,
    status: Annotated[str | None, Query(pattern="^(open|resolved)$")] = None,
) -> list[DisputePublic]:
    return [dispute_public(d) for d in trades.list_disputes(session, status=status)]


@router.post("/{dispute_id}/resolve", response_model=RulingResult, status_code=202)
def resolve(
    dispute_id: RowId,
    body: Ruling,
    session: SessionDep,
    chains: ChainsDep,
    arbitrator: ArbitratorDep,
) -> RulingResult:
    """Rule a split: ``buyer_bps`` of the escrow to the buyer, the rest to the
    seller. Escrows arbitrated by the node's agent key are signed by the node;
    a human arbitrator's own key signs the RESOLVE payload instead."""
    d = trades.get_dispute(session, dispute_id)
    if d.status != "open":
        raise EscrowStateError("the dispute is already resolved", state=d.status)
    trade = trades.get_order(session, d.p2p_order_id)
    escrow = trades.escrow_of(session, trade)
    chain = chains.get(escrow.chain)
    view = chain.escrow_view(escrow)
    if view.state is not ChainState.DISPUTED:
        raise EscrowStateError(
            "the escrow is not disputed on chain yet (the party's DISPUTE must confirm)",
            code="not_disputed_on_chain",
            state=view.state.name.lower(),
        )
    check_action(view, Action.RESOLVE, Role.ARBITRATOR, now=int(datetime.now(UTC).timestamp()))
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
    d.resolved_at = datetime.now(UTC)
    return RulingResult(
        dispute=dispute_public(d), submitted=submitted_public(submitted, Action.RESOLVE)
    )
