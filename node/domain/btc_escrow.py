"""A Bitcoin escrow's state as a pure fold of its confirmed chain events.

An escrow is an address; the chain tells only which outputs paid it
(``Deposit``) and which transactions spent those outputs (``Spend``). Every
deposit is kept and shown: an under-payment leaves the trade in
``funding_mismatch`` until further deposits reach the amount, an over-payment
or a repeated payment is recorded as ``extra_sat``, and a deposit that a reorg
removed simply is not in the fold any more (the trade un-funds: I6).

What the parties do off chain on Bitcoin (the buyer marks paid, a party opens
a dispute) is laid over the fold by :func:`btc_trade_status`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from node.domain.escrow import ChainState, ConfirmedEvent, TradeStatus

# how a spend of the escrow paid out, from its witness branch and outputs
PAYOUT_STATE = {
    "release": ChainState.RELEASED,
    "refund": ChainState.REFUNDED,
    "timelock_refund": ChainState.REFUNDED,
    "split": ChainState.RESOLVED,
    "other": ChainState.RESOLVED,
}


@dataclass(frozen=True)
class BtcTerms:
    amount_sat: int
    buyer_script: str  # hex scriptPubKey of the buyer's payout address
    seller_script: str  # hex scriptPubKey of the seller's payout address


@dataclass(frozen=True)
class BtcDeposit:
    txid: str
    vout: int
    amount_sat: int
    block: int
    spent_by: str | None = None

    @property
    def outpoint(self) -> str:
        return f"{self.txid}:{self.vout}"


@dataclass(frozen=True)
class BtcEscrowView:
    deposits: tuple[BtcDeposit, ...] = ()
    funded_tx: str | None = None  # the deposit that made the total reach the amount
    funded_block: int | None = None
    payout_tx: str | None = None
    payout_kind: str | None = None
    payout_block: int | None = None
    paid_out: tuple[tuple[str, int], ...] = field(default_factory=tuple)

    @property
    def deposited_sat(self) -> int:
        return sum(d.amount_sat for d in self.deposits)

    @property
    def unspent(self) -> tuple[BtcDeposit, ...]:
        return tuple(d for d in self.deposits if d.spent_by is None)

    @property
    def unspent_sat(self) -> int:
        return sum(d.amount_sat for d in self.unspent)

    def extra_sat(self, terms: BtcTerms) -> int:
        return max(0, self.deposited_sat - terms.amount_sat)

    @property
    def state(self) -> ChainState:
        if self.payout_kind is not None:
            return PAYOUT_STATE[self.payout_kind]
        return ChainState.FUNDED if self.funded_tx is not None else ChainState.NONE


def classify_spend(path: str, outputs: Iterable[Iterable[object]], terms: BtcTerms) -> str:
    """release / refund / split / timelock_refund / other."""
    if path == "timelock":
        return "timelock_refund"
    scripts = {str(next(iter(o))) for o in outputs}
    to_buyer, to_seller = terms.buyer_script in scripts, terms.seller_script in scripts
    if to_buyer and to_seller:
        return "split"
    if to_buyer:
        return "release"
    if to_seller:
        return "refund"
    return "other"


def fold_btc_events(events: Iterable[ConfirmedEvent], terms: BtcTerms) -> BtcEscrowView:
    """The escrow after its confirmed events, in chain order. Pure."""
    view = BtcEscrowView()
    deposits: dict[str, BtcDeposit] = {}
    total = 0
    for ev in sorted(events, key=lambda e: (e.block_number, e.log_index)):
        a = ev.args
        if ev.name == "Deposit":
            d = BtcDeposit(str(a["txid"]), int(a["vout"]), int(a["amount_sat"]), ev.block_number)
            if d.outpoint in deposits:  # the same output indexed twice: count once
                continue
            deposits[d.outpoint] = d
            total += d.amount_sat
            if view.funded_tx is None and total >= terms.amount_sat:
                view = replace(view, funded_tx=d.txid, funded_block=ev.block_number)
        elif ev.name == "Spend":
            spent = str(a["spent"])
            d0 = deposits.get(spent)
            if d0 is None or d0.spent_by is not None:
                continue
            deposits[spent] = replace(d0, spent_by=str(a["txid"]))
            if view.payout_kind is None:
                outputs = [(str(o[0]), int(o[1])) for o in a.get("outputs", [])]
                view = replace(
                    view,
                    payout_tx=str(a["txid"]),
                    payout_kind=classify_spend(str(a.get("path", "")), outputs, terms),
                    payout_block=ev.block_number,
                    paid_out=tuple(outputs),
                )
    return replace(view, deposits=tuple(deposits.values()))


_FINAL = {
    ChainState.RELEASED: TradeStatus.COMPLETED,
    ChainState.REFUNDED: TradeStatus.REFUNDED,
    ChainState.RESOLVED: TradeStatus.RESOLVED,
}


def btc_trade_status(
    view: BtcEscrowView,
    *,
    offchain: TradeStatus | None = None,
    paid: bool = False,
    disputed: bool = False,
) -> TradeStatus:
    """The status the API shows: the fold, with the off-chain facts laid over
    it (a payout on chain always wins; an unfunded escrow ignores them)."""
    state = view.state
    if state in _FINAL:
        # a 2-of-3 payout after a dispute is the arbitrator's ruling, whoever it favours
        if disputed and view.payout_kind != "timelock_refund":
            return TradeStatus.RESOLVED
        return _FINAL[state]
    if state is ChainState.NONE:
        if view.deposits:
            return TradeStatus.FUNDING_MISMATCH  # under-paid so far
        if offchain in (TradeStatus.CANCELLED, TradeStatus.EXPIRED):
            return offchain
        return TradeStatus.AWAITING_FUNDING
    if disputed:
        return TradeStatus.DISPUTED
    if paid:
        return TradeStatus.PAID
    return TradeStatus.FUNDED


def chain_state_of(status: TradeStatus) -> ChainState:
    """The EVM-shaped chain state the API's action checks use for a status."""
    return {
        TradeStatus.FUNDED: ChainState.FUNDED,
        TradeStatus.PAID: ChainState.PAID,
        TradeStatus.DISPUTED: ChainState.DISPUTED,
        TradeStatus.COMPLETED: ChainState.RELEASED,
        TradeStatus.REFUNDED: ChainState.REFUNDED,
        TradeStatus.RESOLVED: ChainState.RESOLVED,
    }.get(status, ChainState.NONE)
