"""Bitcoin-only endpoints (/api/btc/...): the escrow's deposits as the chain
shows them, the pending payout a party co-signs (an arbitrator's ruling or a
fee bump), the payout's signed fee ladder (automatic RBF bumps), the seller's
timelock refund and the watchtower; and the seller's CPFP of a stuck funding
transaction (/api/p2p-crypto/btc/orders/{id}/funding/bump).

The generic trade endpoints (/api/p2p-crypto/...) serve Bitcoin trades too:
release and cancel return the PSBT to sign and take it back as ``psbt``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import Field

from api.deps import ChainsDep, RowId, SessionDep, UserDep
from api.schemas import Strict, SubmittedPublic
from node import trades
from node.btc_bumps import MAX_RUNGS, ladder_state, store_ladder
from node.btc_funding_bump import FundingBumpRequest, funding_bump_psbt, submit_funding_bump
from node.btc_trades import BtcTradeChain
from node.chain_trades import ChainRegistry
from node.db.models import P2PEscrow, P2POrder, User
from node.errors import PermissionDeniedError, ValidationError

router = APIRouter(tags=["bitcoin"])  # the two below, included at the end
_btc = APIRouter(prefix="/api/btc")
_p2p = APIRouter(prefix="/api/p2p-crypto/btc")


class PsbtBody(Strict):
    psbt: str = Field(min_length=1, max_length=400_000)


class BumpBody(Strict):
    feerate_sat_vb: int | None = Field(None, ge=1, le=10_000)


class LadderBody(Strict):
    psbts: list[Annotated[str, Field(min_length=1, max_length=400_000)]] = Field(
        min_length=1, max_length=MAX_RUNGS)


class FundingBumpBody(Strict):
    funding_txid: str = Field(pattern="^[0-9a-fA-F]{64}$")
    change_vout: int | None = Field(None, ge=0, le=10_000)
    feerate_sat_vb: int | None = Field(None, ge=1, le=10_000)
    psbt: str | None = Field(None, min_length=1, max_length=400_000)


def _trade(
    session: SessionDep, chains: ChainRegistry, user: User, order_id: RowId
) -> tuple[P2POrder, P2PEscrow, BtcTradeChain]:
    trade = trades.get_trade_for(session, order_id, user)
    escrow = trades.escrow_of(session, trade)
    if escrow.chain != "btc":
        raise ValidationError("not a Bitcoin trade", code="not_btc")
    chain = chains.get("btc")
    assert isinstance(chain, BtcTradeChain)
    return trade, escrow, chain


def _role(trade: P2POrder, user: User) -> str:
    if user.id == trade.seller_id:
        return "seller"
    if user.id == trade.buyer_id:
        return "buyer"
    return user.role


def _submitted(kind: str, s: Any) -> SubmittedPublic:
    return SubmittedPublic(status=s.status, action=kind, kind=s.kind, ref=s.ref)


@_btc.get("/orders/{order_id}/escrow")
def escrow(order_id: RowId, session: SessionDep, chains: ChainsDep,
           user: UserDep) -> dict[str, Any]:
    """The escrow: address, descriptor, every confirmed deposit (under-, over-
    and repeated payments included), the payout."""
    trade, esc, chain = _trade(session, chains, user, order_id)
    btc = chain.btc_of(session, esc)
    return {
        "order_id": trade.id,
        "status": trade.status,
        "address": btc.address,
        "descriptor": btc.descriptor,
        "csv_blocks": btc.csv_blocks,
        "amount_sat": esc.amount,
        "deposited_sat": btc.deposited_sat,
        "unspent_sat": btc.unspent_sat,
        "extra_sat": btc.extra_sat,
        "shortfall_sat": max(0, esc.amount - btc.deposited_sat),
        "deposit_count": btc.deposit_count,
        "deposits": btc.deposits,
        "funded_height": btc.funded_height,
        "payout": {"kind": btc.payout_kind, "buyer_bps": btc.payout_buyer_bps,
                   "txid": btc.payout_txid, "fee_sat": btc.payout_fee_sat,
                   "pending_signature": btc.payout_psbt is not None,
                   "confirmed_txid": btc.spent_txid},
        "watchtower": {"armed": btc.watchtower_psbt is not None,
                       "txid": btc.watchtower_txid},
        "fee_ladder": ladder_state(btc),
    }


@_btc.get("/orders/{order_id}/payout")
def pending_payout(order_id: RowId, session: SessionDep, chains: ChainsDep,
                   user: UserDep) -> dict[str, Any]:
    """The agent-signed payout waiting for a party's signature."""
    _trade_row, esc, chain = _trade(session, chains, user, order_id)
    return chain.pending_payout(chain.btc_of(session, esc))


@_btc.post("/orders/{order_id}/payout", response_model=SubmittedPublic, status_code=202)
def cosign_payout(order_id: RowId, body: PsbtBody, session: SessionDep, chains: ChainsDep,
                  user: UserDep) -> SubmittedPublic:
    """A party co-signs the pending payout: the node combines, finalizes,
    verifies and broadcasts."""
    trade, esc, chain = _trade(session, chains, user, order_id)
    role = _role(trade, user)
    if role not in ("buyer", "seller"):
        raise PermissionDeniedError("only the trade's parties co-sign", code="wrong_party")
    return _submitted("cosign", chain.cosign(session, escrow=esc, role=role, psbt=body.psbt))


@_btc.post("/orders/{order_id}/bump", response_model=SubmittedPublic, status_code=202)
def bump(order_id: RowId, body: BumpBody, session: SessionDep, chains: ChainsDep,
         user: UserDep) -> SubmittedPublic:
    """Replace a stuck payout (RBF): the node re-builds it with a higher fee
    and agent-signs it; a party co-signs it at ``/payout``."""
    _trade_row, esc, chain = _trade(session, chains, user, order_id)
    return _submitted("bump", chain.bump_payout(session, escrow=esc,
                                                feerate_sat_vb=body.feerate_sat_vb))


def _seller_only(trade: P2POrder, user: User) -> None:
    if user.id != trade.seller_id:
        raise PermissionDeniedError("the timelock refund is the seller's", code="wrong_party")


@_btc.get("/orders/{order_id}/timelock-refund")
def timelock_refund_psbt(order_id: RowId, session: SessionDep, chains: ChainsDep,
                         user: UserDep) -> dict[str, Any]:
    """The PSBT the seller's refund key signs alone (valid once the escrow's
    deposits are ``csv_blocks`` deep)."""
    trade, esc, chain = _trade(session, chains, user, order_id)
    _seller_only(trade, user)
    return chain.timelock_psbt(session, escrow=esc)


@_btc.post("/orders/{order_id}/timelock-refund", response_model=SubmittedPublic,
             status_code=202)
def timelock_refund(order_id: RowId, body: PsbtBody, session: SessionDep, chains: ChainsDep,
                    user: UserDep) -> SubmittedPublic:
    """Broadcast the seller's signed timelock refund (the node signs nothing)."""
    trade, esc, chain = _trade(session, chains, user, order_id)
    _seller_only(trade, user)
    return _submitted("timelock_refund",
                      chain.submit_timelock_refund(session, escrow=esc, psbt=body.psbt))


@_btc.post("/orders/{order_id}/watchtower", status_code=202)
def watchtower(order_id: RowId, body: PsbtBody, session: SessionDep, chains: ChainsDep,
               user: UserDep) -> dict[str, Any]:
    """Leave a signed timelock refund with the node: it is broadcast when the
    timelock matures if the trade is still unpaid and undisputed."""
    trade, esc, chain = _trade(session, chains, user, order_id)
    _seller_only(trade, user)
    chain.set_watchtower(session, escrow=esc, psbt=body.psbt)
    return {"status": "armed", "order_id": trade.id}


@_btc.post("/orders/{order_id}/fee-ladder", status_code=202)
def fee_ladder(order_id: RowId, body: LadderBody, session: SessionDep, chains: ChainsDep,
               user: UserDep) -> dict[str, Any]:
    """A party's signed fee rungs for the payout (the ``fee_ladder`` PSBTs the
    payout came with): the node checks each like the payout itself and keeps
    them; a payout stuck for ``bump_after_blocks`` is replaced by the next one."""
    trade, esc, chain = _trade(session, chains, user, order_id)
    role = _role(trade, user)
    if role not in ("buyer", "seller"):
        raise PermissionDeniedError("only the trade's parties sign fee rungs", code="wrong_party")
    return {"order_id": trade.id, **store_ladder(chain, session, escrow=esc, role=role,
                                                 psbts=body.psbts)}


@_p2p.post("/orders/{order_id}/funding/bump", status_code=200)
def funding_bump(order_id: RowId, body: FundingBumpBody, session: SessionDep,
                 chains: ChainsDep, user: UserDep, response: Response) -> dict[str, Any]:
    """The seller's funding transaction is stuck past the payment window:
    without ``psbt``, the child (CPFP) PSBT spending its change back to the
    seller; with the seller's signed ``psbt`` (same parameters), the node
    checks and broadcasts it (202)."""
    trade, esc, chain = _trade(session, chains, user, order_id)
    if user.id != trade.seller_id:
        raise PermissionDeniedError("the funding is the seller's", code="wrong_party")
    req = FundingBumpRequest(funding_txid=body.funding_txid, change_vout=body.change_vout,
                             feerate_sat_vb=body.feerate_sat_vb)
    if body.psbt is None:
        return funding_bump_psbt(chain, session, escrow=esc, req=req)
    sub = submit_funding_bump(chain, session, escrow=esc, req=req, psbt=body.psbt)
    response.status_code = 202
    return {"status": sub.status, "action": "funding_bump", "kind": sub.kind, "ref": sub.ref}


router.include_router(_btc)
router.include_router(_p2p)
