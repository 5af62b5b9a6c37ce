"""Solana-only endpoints: the payout transaction a party signs in their own
wallet (Phantom ``signTransaction``), as a whole partially signed transaction.

The seed's endpoints (/payment, /release-escrow, /cancel-escrow, /reclaim,
/dispute) work for Solana trades too: without a signature they return what to
sign (a text for the off-chain facts, a payout transaction otherwise); with
one, the party's base58 signature and ``expiry`` = the transaction's
``last_valid_block_height``. These endpoints add what those cannot carry:

- ``GET /api/sol/orders/{id}/payout``: the payout collecting signatures (for
  instance an arbitrator's ruling the agent has signed, waiting for the party
  who receives the larger share), rebuilt at a fresh blockhash if it expired;
- ``POST /api/sol/orders/{id}/payout``: the party's partially signed
  transaction (base64). 409 ``blockhash_expired`` means: GET it again, sign
  again.

A human arbitrator (an escrow whose arbitrator slot is a person's wallet,
``sol.arbitrator_address``) uses the same two endpoints for a ruling's
payout: GET it, sign it with their own wallet, POST the signature or the
partially signed transaction; the payout waits for the other co-signer.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ChainsDep, RowId, SessionDep, UserDep
from node import trades
from node.db.models import SolPayout
from node.errors import EscrowStateError, NotFoundError, ValidationError
from node.sol_trades import SolTradeChain

router = APIRouter(prefix="/api/sol", tags=["solana"])


class PayoutSigned(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payout_id: int = Field(ge=1, le=2**31 - 1)
    transaction: str | None = Field(None, min_length=100, max_length=4000)
    signature: str | None = Field(None, min_length=60, max_length=100)


def _chain(chains: Any, family: str) -> SolTradeChain:
    chain = chains.get(family)
    if not isinstance(chain, SolTradeChain):
        raise ValidationError("not a Solana trade", code="not_sol_trade")
    return chain


@router.get("/orders/{order_id}/payout")
def pending_payout(
    order_id: RowId, session: SessionDep, chains: ChainsDep, user: UserDep
) -> dict[str, Any]:
    trade = trades.get_trade_for(session, order_id, user)
    escrow = trades.escrow_of(session, trade)
    chain = _chain(chains, escrow.chain)
    payout = chain.pending_payout(session, escrow)
    if payout is None:
        raise NotFoundError("no payout is collecting signatures for this trade",
                            code="no_pending_payout")
    return chain.payout_request(payout)


@router.post("/orders/{order_id}/payout", status_code=202)
def sign_payout(
    order_id: RowId,
    body: PayoutSigned,
    session: SessionDep,
    chains: ChainsDep,
    user: UserDep,
    response: Response,
) -> dict[str, Any]:
    trade = trades.get_trade_for(session, order_id, user)
    escrow = trades.escrow_of(session, trade)
    chain = _chain(chains, escrow.chain)
    signed = body.transaction or body.signature
    if signed is None:
        raise ValidationError("send the signed transaction or your signature",
                              field="transaction")
    payout = session.get(SolPayout, body.payout_id)
    sol = chain._sol(session, escrow)  # noqa: SLF001
    if payout is None or payout.sol_escrow_id != sol.id:
        raise NotFoundError(f"no payout {body.payout_id} for this trade", code="unknown_payout")
    if payout.status == "expired":
        raise EscrowStateError("this payout transaction expired: GET the rebuilt one",
                               code="blockhash_expired", payout_id=payout.id)
    sub = chain.submit_payout(session, escrow=escrow, payout=payout, signed=signed,
                              requested_by=user)
    response.status_code = 202
    return {"status": sub.status, "kind": sub.kind, "ref": sub.ref, "payout_id": payout.id}
