"""Keeps each Bitcoin escrow's rows, and its trade's status, equal to the
fold of its confirmed chain events (``node.domain.btc_escrow``).

The Bitcoin watcher calls :func:`refresh_btc_escrows` in the same database
transaction in which it stores new confirmed events, confirms earlier ones or
rolls events back in a reorg: recomputing from the events is what makes a
reorg un-fund a trade and a re-indexed deposit count once (I6).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.db.models import BtcEscrow, P2PDispute, P2PEscrow, P2POrder
from node.domain.btc_escrow import BtcEscrowView, BtcTerms, btc_trade_status, fold_btc_events
from node.domain.escrow import ChainState, TradeStatus
from node.escrow_sync import confirmed_events, split_chain_key

_OFFCHAIN = (TradeStatus.CANCELLED.value, TradeStatus.EXPIRED.value)


def terms_of(btc: BtcEscrow, escrow: P2PEscrow) -> BtcTerms:
    from node.btc_trades import script_hex  # the payout scripts, as the chain shows them

    return BtcTerms(
        amount_sat=escrow.amount,
        buyer_script=script_hex(btc.buyer_payout_address),
        seller_script=script_hex(btc.seller_payout_address),
    )


def has_dispute(session: Session, order_id: int) -> bool:
    """A dispute was opened (a resolved one too: its payout is pending)."""
    return session.scalar(
        select(P2PDispute.id).where(P2PDispute.p2p_order_id == order_id).limit(1)
    ) is not None


def apply_view(session: Session, btc: BtcEscrow, escrow: P2PEscrow, view: BtcEscrowView,
               terms: BtcTerms, now: datetime) -> bool:
    """Write the fold to the rows; True when the trade's status changed."""
    order: P2POrder = escrow.order
    btc.deposits = [
        {"txid": d.txid, "vout": d.vout, "amount_sat": d.amount_sat, "block": d.block,
         "spent_by": d.spent_by}
        for d in view.deposits
    ]
    btc.deposit_count = len(view.deposits)
    btc.deposited_sat = view.deposited_sat
    btc.unspent_sat = view.unspent_sat
    btc.extra_sat = view.extra_sat(terms)
    btc.funded_height = view.funded_block
    btc.spent_txid = view.payout_tx
    state = view.state
    escrow.status = "awaiting_funding" if state is ChainState.NONE else state.name.lower()
    if state is ChainState.NONE and view.deposits:
        escrow.status = "underfunded"
    escrow.funded_amount = view.deposited_sat
    escrow.funded_tx = view.funded_tx
    escrow.funded_block = view.funded_block
    escrow.payout_tx = view.payout_tx
    escrow.crypto_transaction_id = view.payout_tx or view.funded_tx
    if view.payout_kind == "split" and btc.payout_buyer_bps is not None:
        escrow.buyer_bps = btc.payout_buyer_bps
    elif view.payout_kind == "release":
        escrow.buyer_bps = 10_000
    elif view.payout_kind in ("refund", "timelock_refund"):
        escrow.buyer_bps = 0
    else:
        escrow.buyer_bps = None
    escrow.released_at = (escrow.released_at or now) if state is ChainState.RELEASED else None
    escrow.refunded_at = (escrow.refunded_at or now) if state is ChainState.REFUNDED else None
    offchain = TradeStatus(order.status) if order.status in _OFFCHAIN else None
    status = btc_trade_status(
        view,
        offchain=offchain,
        paid=order.paid_at is not None,
        disputed=has_dispute(session, order.id),
    )
    order.crypto_transaction_id = escrow.crypto_transaction_id
    if status in (TradeStatus.COMPLETED, TradeStatus.RESOLVED, TradeStatus.REFUNDED):
        order.completed_at = order.completed_at or now
    else:
        order.completed_at = None
    if order.status != status.value:
        order.status = status.value
        return True
    return False


def refresh_btc_escrows(
    session: Session, chain: str, keys: Iterable[str], confirmed_block: int
) -> list[int]:
    """Recompute the Bitcoin escrows at addresses ``keys`` on ``chain``
    (``"btc:regtest"``) from their events up to ``confirmed_block``; returns
    the ids of the trades whose status changed. Unknown addresses are ignored."""
    addresses = set(keys)
    if not addresses:
        return []
    _family, network = split_chain_key(chain)
    rows = session.execute(
        select(BtcEscrow, P2PEscrow)
        .join(P2PEscrow, BtcEscrow.p2p_escrow_id == P2PEscrow.id)
        .where(P2PEscrow.chain == "btc", P2PEscrow.network == network,
               BtcEscrow.address.in_(addresses))
    ).all()
    changed: list[int] = []
    now = datetime.now(UTC)
    for btc, escrow in rows:
        terms = terms_of(btc, escrow)
        events = confirmed_events(session, chain=chain, escrow_key=btc.address,
                                  confirmed_block=confirmed_block)
        view = fold_btc_events(events, terms)
        if apply_view(session, btc, escrow, view, terms, now):
            changed.append(escrow.p2p_order_id)
    return changed
