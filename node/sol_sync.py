"""Keeps each Solana escrow's row, and its trade's status, equal to the pure
fold (``node.domain.sol_escrow.fold``) of what the watcher saw at the
configured commitment plus the off-chain facts the parties signed.

The watcher calls ``refresh_sol_escrows`` in the same database transaction in
which it stores new observations and movements; the trade module calls
``refresh_one`` after recording a signed fact (buyer paid, dispute). Always a
recomputation, never a delta: an observation that no longer shows a deposit
un-funds the trade, a movement seen twice counts once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.db.models import P2PEscrow, P2POrder, SolEscrow, SolMovement, SolPayout
from node.domain.escrow import ChainState, TradeStatus
from node.domain.sol_escrow import (
    Movement,
    Observation,
    OffchainFacts,
    SolEscrowView,
    SolTerms,
    fold,
    trade_status,
)


def terms_of(sol: SolEscrow, escrow: P2PEscrow) -> SolTerms:
    return SolTerms(
        seller=escrow.seller_address,
        buyer=escrow.buyer_address,
        arbitrator=escrow.arbitrator_address,
        mint=sol.mint,
        multisig=sol.multisig,
        amount=escrow.amount,
        deadline=escrow.deadline,
    )


def observation_of(sol: SolEscrow) -> Observation | None:
    if sol.observed_slot is None:
        return None
    return Observation(
        slot=sol.observed_slot,
        exists=sol.observed_exists,
        mint=sol.observed_mint,
        owner=sol.observed_owner,
        amount=sol.observed_amount,
    )


def movements_of(session: Session, sol: SolEscrow) -> list[Movement]:
    rows = session.scalars(
        select(SolMovement).where(SolMovement.sol_escrow_id == sol.id).order_by(SolMovement.slot)
    ).all()
    return [
        Movement(
            signature=r.signature,
            slot=r.slot,
            escrow_delta=r.amount_in - r.amount_out,
            to_buyer=r.to_buyer,
            to_seller=r.to_seller,
            closed=r.closed,
        )
        for r in rows
    ]


def view_of(session: Session, sol: SolEscrow, escrow: P2PEscrow) -> SolEscrowView:
    facts = OffchainFacts(
        buyer_marked_paid=sol.buyer_paid_signature is not None,
        dispute_open=sol.dispute_signature is not None,
    )
    return fold(terms_of(sol, escrow), observation_of(sol), movements_of(session, sol), facts)


def _ruled_bps(session: Session, sol: SolEscrow, payout_tx: str | None) -> int | None:
    """The split the landed payout implements, as ruled: the chain shows only
    amounts, and bps derived from them round down (a 25% split of 100.000003
    tokens pays 25.000000, which is 2499 bps of the whole)."""
    if payout_tx is None:
        return None
    return session.scalar(
        select(SolPayout.buyer_bps).where(SolPayout.sol_escrow_id == sol.id,
                                          SolPayout.tx_signature == payout_tx,
                                          SolPayout.action == "split")
    )


def refresh_one(session: Session, sol: SolEscrow) -> bool:
    """Recompute one escrow; True if its trade's status changed."""
    escrow = session.get(P2PEscrow, sol.p2p_escrow_id)
    assert escrow is not None
    sv = view_of(session, sol, escrow)
    view = sv.view
    order: P2POrder = escrow.order
    offchain = (
        TradeStatus(order.status)
        if order.status in (TradeStatus.CANCELLED.value, TradeStatus.EXPIRED.value)
        else None
    )
    status = trade_status(sv, offchain=offchain)
    now = datetime.now(UTC)
    if sv.funding == "under":
        escrow.status = "funding_under"
    elif view.state is ChainState.NONE:
        escrow.status = "awaiting_funding"
    else:
        escrow.status = view.state.name.lower()
    escrow.funded_amount = escrow.amount if view.state.final else sv.observed_amount
    escrow.funded_tx = view.funded_tx
    escrow.funded_block = view.funded_block
    escrow.payment_deadline = escrow.deadline
    escrow.payout_tx = view.payout_tx
    escrow.buyer_bps = _ruled_bps(session, sol, view.payout_tx) if (
        view.state is ChainState.RESOLVED) else view.buyer_bps
    if escrow.buyer_bps is None:
        escrow.buyer_bps = view.buyer_bps
    escrow.crypto_transaction_id = view.payout_tx or view.funded_tx
    escrow.released_at = (
        (escrow.released_at or now) if view.state is ChainState.RELEASED else None
    )
    escrow.refunded_at = (
        (escrow.refunded_at or now) if view.state is ChainState.REFUNDED else None
    )
    changed = order.status != status.value
    order.status = status.value
    order.crypto_transaction_id = escrow.crypto_transaction_id
    if status in (TradeStatus.COMPLETED, TradeStatus.RESOLVED, TradeStatus.REFUNDED):
        order.completed_at = order.completed_at or now
    else:
        order.completed_at = None
    if sol.buyer_paid_signature is not None:
        order.paid_at = order.paid_at or sol.buyer_paid_at or now
    return changed


def refresh_sol_escrows(
    session: Session, chain: str, escrow_keys: Iterable[str], confirmed_slot: int  # noqa: ARG001
) -> list[int]:
    """The watcher's ``on_confirmed`` hook: recompute the escrows whose token
    accounts (``escrow_keys``) changed; returns the trade ids whose status
    changed. Accounts the node does not know are ignored."""
    keys = set(escrow_keys)
    if not keys:
        return []
    rows = session.scalars(
        select(SolEscrow).where(SolEscrow.chain == chain, SolEscrow.escrow_token_account.in_(keys))
    ).all()
    changed = []
    for sol in rows:
        if refresh_one(session, sol):
            escrow = session.get(P2PEscrow, sol.p2p_escrow_id)
            assert escrow is not None
            changed.append(escrow.p2p_order_id)
    return changed
