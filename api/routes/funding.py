"""Relayed (gasless) funding: the seller signs in their own wallet, the node
submits and pays the gas; the coins still come only from the seller."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field

from api.deps import ChainsDep, RowId, SessionDep, UserDep
from api.schemas import Strict, SubmittedPublic
from node import trades
from node.domain.escrow import TradeStatus
from node.errors import EscrowStateError, PermissionDeniedError, ValidationError

router = APIRouter(prefix="/api/p2p-crypto", tags=["p2p"])


class FundSigned(Strict):
    open_signature: str = Field(max_length=200)
    expiry: int = Field(ge=0, le=2**63 - 1)
    permit_signature: str | None = Field(None, max_length=200)


@router.post("/orders/{order_id}/fund", response_model=SubmittedPublic, status_code=202)
def fund_relayed(
    order_id: RowId, body: FundSigned, session: SessionDep, chains: ChainsDep, user: UserDep
) -> SubmittedPublic:
    """Submit the seller's signed ``Open`` (+ EIP-2612 ``Permit``) from the
    trade's ``funding.relayed`` payloads; the node relays ``open_relayed``."""
    trade = trades.get_trade_for(session, order_id, user)
    if user.id != trade.seller_id:
        raise PermissionDeniedError("only the seller funds the escrow", code="wrong_party")
    if trade.status != TradeStatus.AWAITING_FUNDING.value:
        raise EscrowStateError(f"the trade is {trade.status}", state=trade.status)
    escrow = trades.escrow_of(session, trade)
    chain = chains.get(escrow.chain)
    submit = getattr(chain, "submit_funding", None)
    if submit is None:
        raise ValidationError(
            f"relayed funding is not offered on {escrow.chain}", code="relayed_funding_unsupported"
        )
    submitted = submit(
        session,
        escrow=escrow,
        currency=trade.currency,
        open_signature=body.open_signature,
        expiry=body.expiry,
        permit_signature=body.permit_signature,
    )
    return SubmittedPublic(
        status=submitted.status, action="open", kind=submitted.kind, ref=submitted.ref
    )
