"""Keeps each escrow's row, and its trade's status, equal to the fold of its
confirmed chain events.

The watcher calls ``refresh_escrows`` in the same database transaction in which
it stores new confirmed events, confirms earlier ones, or rolls events back in
a reorg. Recomputing from the events (instead of applying deltas) is what makes
a reorg un-fund a trade (invariant I6) and a re-applied event count once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from node.changes import note_trades_changed
from node.db.models import ChainEvent, P2PEscrow, P2POrder
from node.domain.escrow import (
    ChainState,
    ConfirmedEvent,
    EscrowTerms,
    TradeStatus,
    fold_events,
    trade_status,
)
from node.market.reputation import trades_ended


def chain_key(chain: str, network: str) -> str:
    return f"{chain}:{network}"


def split_chain_key(key: str) -> tuple[str, str]:
    chain, _, network = key.partition(":")
    return chain, network


def terms_of(escrow: P2PEscrow) -> EscrowTerms:
    return EscrowTerms(
        seller=escrow.seller_address,
        buyer=escrow.buyer_address,
        arbitrator=escrow.arbitrator_address,
        token=escrow.token_address or "0x0000000000000000000000000000000000000000",
        amount=escrow.amount,
    )


def confirmed_events(
    session: Session, *, chain: str, escrow_key: str, confirmed_block: int
) -> list[ConfirmedEvent]:
    rows = session.scalars(
        select(ChainEvent)
        .where(
            ChainEvent.chain == chain,
            ChainEvent.escrow_key == escrow_key,
            ChainEvent.block_number <= confirmed_block,
        )
        .order_by(ChainEvent.block_number, ChainEvent.log_index)
    ).all()
    return [
        ConfirmedEvent(
            name=r.name,
            block_number=r.block_number,
            log_index=r.log_index,
            args=r.args,
            tx_hash=r.tx_hash,
        )
        for r in rows
    ]


def refresh_escrows(
    session: Session, chain: str, escrow_keys: Iterable[str], confirmed_block: int
) -> list[int]:
    """Recompute the escrows ``escrow_keys`` of ``chain`` (``"evm:31337"``)
    from their events up to ``confirmed_block``; returns the ids of the trades
    whose status changed. Escrows the node does not know are ignored."""
    keys = {k.lower() for k in escrow_keys}
    if not keys:
        return []
    family, network = split_chain_key(chain)
    escrows = session.scalars(
        select(P2PEscrow)
        .options(joinedload(P2PEscrow.order, innerjoin=True))
        .where(P2PEscrow.chain == family, P2PEscrow.network == network)
        .where(P2PEscrow.escrow_key.in_(keys))
    ).all()
    changed: list[int] = []
    now = datetime.now(UTC)
    for escrow in escrows:
        view = fold_events(
            confirmed_events(
                session, chain=chain, escrow_key=escrow.escrow_key, confirmed_block=confirmed_block
            )
        )
        order: P2POrder = escrow.order
        offchain = (
            TradeStatus(order.status)
            if order.status
            in (
                TradeStatus.CANCELLED.value,
                TradeStatus.EXPIRED.value,
            )
            else None
        )
        status = trade_status(view, terms_of(escrow), offchain=offchain)
        escrow.status = (
            view.state.name.lower() if view.state is not ChainState.NONE else ("awaiting_funding")
        )
        escrow.funded_amount = view.amount if view.state is not ChainState.NONE else 0
        escrow.funded_tx = view.funded_tx
        escrow.funded_block = view.funded_block
        escrow.payment_deadline = view.payment_deadline
        escrow.payout_tx = view.payout_tx
        escrow.buyer_bps = view.buyer_bps
        escrow.crypto_transaction_id = view.payout_tx or view.funded_tx
        escrow.released_at = (
            now
            if view.state is ChainState.RELEASED and not escrow.released_at
            else (escrow.released_at if view.state is ChainState.RELEASED else None)
        )
        escrow.refunded_at = (
            now
            if view.state is ChainState.REFUNDED and not escrow.refunded_at
            else (escrow.refunded_at if view.state is ChainState.REFUNDED else None)
        )
        if order.status != status.value:
            order.status = status.value  # a trade event (node.events.outbox)
            changed.append(order.id)
        order.crypto_transaction_id = escrow.crypto_transaction_id
        if status in (TradeStatus.COMPLETED, TradeStatus.RESOLVED, TradeStatus.REFUNDED):
            order.completed_at = order.completed_at or now
        else:
            order.completed_at = None
        if status is TradeStatus.PAID or view.state is ChainState.PAID:
            order.paid_at = order.paid_at or now
    note_trades_changed(session, changed)
    trades_ended(session, changed)  # reputation of both parties, if now final
    return changed
