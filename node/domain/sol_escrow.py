"""The Solana escrow's state: a pure fold over what the watcher saw at the
configured commitment, plus the off-chain facts the node records.

A Solana escrow is an SPL token account owned by a 2-of-3 multisig; there is no
program and no event log. The watcher gives:

- an ``Observation`` of the escrow token account at the commitment (exists?
  mint, owner, amount), and
- the ``Movement`` of every transaction that changed its balance, read from
  that transaction's pre/post token balances (deposits in; payouts out, with
  what the buyer and the seller received).

``fold`` turns them (and the off-chain facts: the buyer's signed "paid", a
dispute) into an ``EscrowView`` with the EVM slice's ``ChainState`` values, so
the API, ``check_action`` and ``TradeStatus`` work unchanged:

- funded when the account, owned by the escrow's multisig and of the escrow's
  mint, holds at least the amount at the commitment (``funding`` = ``exact`` or
  ``over``: anyone can send tokens to any token account, so a surplus must not
  turn a funded escrow into an unfunded one and block its payouts; the payout
  moves the whole balance); less is a funding mismatch (``under``, never
  credited);
- a payout (the account emptied or closed after having been funded) is
  RELEASED (all to the buyer), REFUNDED (all to the seller) or RESOLVED (split).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from node.domain.escrow import BPS, ChainState, EscrowView, TradeStatus


@dataclass(frozen=True, slots=True)
class SolTerms:
    seller: str
    buyer: str
    arbitrator: str
    mint: str
    multisig: str
    amount: int
    deadline: int


@dataclass(frozen=True, slots=True)
class Observation:
    """The escrow token account as read at the commitment, at ``slot``."""

    slot: int
    exists: bool
    mint: str | None = None
    owner: str | None = None
    amount: int = 0


@dataclass(frozen=True, slots=True)
class Movement:
    """One transaction that changed the escrow account's token balance."""

    signature: str
    slot: int
    escrow_delta: int  # > 0 deposit, < 0 payout
    to_buyer: int = 0
    to_seller: int = 0
    closed: bool = False


@dataclass(frozen=True, slots=True)
class OffchainFacts:
    buyer_marked_paid: bool = False
    dispute_open: bool = False


@dataclass(frozen=True, slots=True)
class SolEscrowView:
    view: EscrowView
    funding: str | None = None  # None | "exact" | "over" | "under"
    observed_amount: int = 0


def fold(
    terms: SolTerms,
    observation: Observation | None,
    movements: Iterable[Movement],
    facts: OffchainFacts = OffchainFacts(),  # noqa: B008 - frozen value
) -> SolEscrowView:
    """The escrow's state from the committed observation and movements."""
    moves = sorted(movements, key=lambda m: (m.slot, m.signature))
    deposits = [m for m in moves if m.escrow_delta > 0]
    payouts = [m for m in moves if m.escrow_delta < 0]
    base = EscrowView(
        seller=terms.seller,
        buyer=terms.buyer,
        arbitrator=terms.arbitrator,
        token=terms.mint,
        amount=terms.amount,
        payment_deadline=terms.deadline,
        deadline=terms.deadline,
    )
    funded_tx = deposits[-1].signature if deposits else None
    funded_slot = deposits[-1].slot if deposits else None
    amount = observation.amount if observation is not None and observation.exists else 0
    valid = (
        observation is not None
        and observation.exists
        and observation.owner == terms.multisig
        and observation.mint == terms.mint
    )
    paid_in = sum(m.escrow_delta for m in deposits)
    if payouts and amount == 0 and paid_in >= terms.amount:
        to_buyer = sum(m.to_buyer for m in payouts)
        to_seller = sum(m.to_seller for m in payouts)
        total = to_buyer + to_seller
        if to_seller == 0 and to_buyer > 0:
            state, bps = ChainState.RELEASED, BPS
        elif to_buyer == 0:
            state, bps = ChainState.REFUNDED, 0
        else:
            state, bps = ChainState.RESOLVED, to_buyer * BPS // total
        view = replace(
            base,
            state=state,
            funded_tx=funded_tx,
            funded_block=funded_slot,
            payout_tx=payouts[-1].signature,
            buyer_bps=bps,
            buyer_amount=to_buyer,
            seller_amount=to_seller,
        )
        return SolEscrowView(view, "exact", 0)
    if not valid or amount == 0:
        return SolEscrowView(base, None, amount)
    if amount < terms.amount:
        return SolEscrowView(
            replace(base, funded_tx=funded_tx, funded_block=funded_slot), "under", amount
        )
    state = ChainState.FUNDED
    if facts.dispute_open:
        state = ChainState.DISPUTED
    elif facts.buyer_marked_paid:
        state = ChainState.PAID
    return SolEscrowView(
        replace(base, state=state, funded_tx=funded_tx, funded_block=funded_slot),
        "exact" if amount == terms.amount else "over",
        amount,
    )


_TO_TRADE = {
    ChainState.FUNDED: TradeStatus.FUNDED,
    ChainState.PAID: TradeStatus.PAID,
    ChainState.DISPUTED: TradeStatus.DISPUTED,
    ChainState.RELEASED: TradeStatus.COMPLETED,
    ChainState.REFUNDED: TradeStatus.REFUNDED,
    ChainState.RESOLVED: TradeStatus.RESOLVED,
}


def trade_status(sv: SolEscrowView, *, offchain: TradeStatus | None = None) -> TradeStatus:
    """What the API shows. A committed funding overrides an off-chain
    cancelled/expired (the coins are really in escrow then)."""
    if sv.funding == "under":
        return TradeStatus.FUNDING_MISMATCH
    if sv.view.state is ChainState.NONE:
        if offchain in (TradeStatus.CANCELLED, TradeStatus.EXPIRED):
            return offchain
        return TradeStatus.AWAITING_FUNDING
    return _TO_TRADE[sv.view.state]
