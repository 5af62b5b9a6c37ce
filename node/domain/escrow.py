"""The escrow state machine: pure functions over plain values, no I/O.

Two views of one trade:

- the **chain state** of its escrow, folded from the escrow's *confirmed*
  events only (so a reorg that removes an event simply gives a different fold:
  invariant I6), and
- the **trade status** the API shows, derived from the chain state plus the
  off-chain facts the node records (matched, expired unfunded, cancelled before
  funding).

User actions are checked here against the caller's role and the state; an
action that is not allowed raises ``EscrowStateError`` / ``PermissionDeniedError``
with a machine-readable code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum
from typing import Any

from node.errors import EscrowStateError, PermissionDeniedError, ValidationError

BPS = 10_000
MAX_FEE_BPS = 500


class ChainState(IntEnum):
    """On-chain escrow states, numbered as in contracts/README.md."""

    NONE = 0
    FUNDED = 1
    PAID = 2
    DISPUTED = 3
    RELEASED = 4
    REFUNDED = 5
    RESOLVED = 6

    @property
    def final(self) -> bool:
        return self in (ChainState.RELEASED, ChainState.REFUNDED, ChainState.RESOLVED)


class Action(IntEnum):
    """Relayed action codes of the contract (EIP-712 ``Action.action``)."""

    MARK_PAID = 1
    RELEASE = 2
    CANCEL = 3
    DISPUTE = 4
    RESOLVE = 5
    RECLAIM = 6
    SETTLE = 7


class Role(StrEnum):
    SELLER = "seller"
    BUYER = "buyer"
    ARBITRATOR = "arbitrator"
    OUTSIDER = "outsider"


class TradeStatus(StrEnum):
    """What the API shows for a trade (``p2p_crypto_orders.status``)."""

    AWAITING_FUNDING = "awaiting_funding"
    FUNDING_MISMATCH = "funding_mismatch"
    FUNDED = "funded"
    PAID = "paid"
    DISPUTED = "disputed"
    COMPLETED = "completed"  # released to the buyer
    REFUNDED = "refunded"  # back to the seller (cancel, reclaim)
    RESOLVED = "resolved"  # split by a ruling or a settlement
    CANCELLED = "cancelled"  # cancelled before any funding
    EXPIRED = "expired"  # never funded within the funding window


FINAL_TRADE_STATUSES = frozenset(
    {
        TradeStatus.COMPLETED,
        TradeStatus.REFUNDED,
        TradeStatus.RESOLVED,
        TradeStatus.CANCELLED,
        TradeStatus.EXPIRED,
    }
)


@dataclass(frozen=True)
class EscrowTerms:
    """What the node agreed with both parties when the trade opened; a funding
    whose on-chain terms differ is not credited."""

    seller: str
    buyer: str
    arbitrator: str
    token: str  # "0x000..." for the native coin
    amount: int


@dataclass(frozen=True)
class ConfirmedEvent:
    """One confirmed contract event of one escrow, in chain order."""

    name: str
    block_number: int
    log_index: int
    args: Mapping[str, Any]
    tx_hash: str = ""


@dataclass(frozen=True)
class EscrowView:
    """The fold of an escrow's confirmed events."""

    state: ChainState = ChainState.NONE
    seller: str | None = None
    buyer: str | None = None
    arbitrator: str | None = None
    token: str | None = None
    amount: int = 0
    fee_bps: int = 0
    payment_deadline: int | None = None
    deadline: int | None = None
    funded_tx: str | None = None
    funded_block: int | None = None
    payout_tx: str | None = None
    buyer_bps: int | None = None
    buyer_amount: int = 0
    seller_amount: int = 0
    fee_amount: int = 0
    disputed_by: str | None = None
    deferred: tuple[tuple[str, int], ...] = field(default_factory=tuple)


def _same_address(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.lower() == b.lower()


def fold_events(events: Iterable[ConfirmedEvent]) -> EscrowView:
    """The escrow's state after its confirmed events, applied in chain order.

    Events that cannot happen in the current state (which the contract never
    emits) are ignored rather than trusted."""
    view = EscrowView()
    for ev in sorted(events, key=lambda e: (e.block_number, e.log_index)):
        a = ev.args
        s = view.state
        if ev.name == "Opened" and s is ChainState.NONE:
            view = replace(
                view,
                state=ChainState.FUNDED,
                seller=a["seller"],
                buyer=a["buyer"],
                arbitrator=a["arbitrator"],
                token=a["token"],
                amount=int(a["amount"]),
                fee_bps=int(a["fee_bps"]),
                payment_deadline=int(a["payment_deadline"]),
                deadline=int(a["deadline"]),
                funded_tx=ev.tx_hash,
                funded_block=ev.block_number,
            )
        elif ev.name == "MarkedPaid" and s is ChainState.FUNDED:
            view = replace(view, state=ChainState.PAID)
        elif ev.name == "Disputed" and s in (ChainState.FUNDED, ChainState.PAID):
            view = replace(view, state=ChainState.DISPUTED, disputed_by=a.get("by"))
        elif ev.name == "Released" and s in (
            ChainState.FUNDED,
            ChainState.PAID,
            ChainState.DISPUTED,
        ):
            fee = int(a["fee"])
            view = replace(
                view,
                state=ChainState.RELEASED,
                payout_tx=ev.tx_hash,
                buyer_bps=BPS,
                buyer_amount=int(a["amount"]),
                fee_amount=fee,
            )
        elif ev.name == "Refunded" and s in (
            ChainState.FUNDED,
            ChainState.PAID,
        ):
            view = replace(
                view,
                state=ChainState.REFUNDED,
                payout_tx=ev.tx_hash,
                buyer_bps=0,
                seller_amount=int(a["amount"]),
            )
        elif ev.name == "Resolved" and s is ChainState.DISPUTED:
            view = replace(
                view,
                state=ChainState.RESOLVED,
                payout_tx=ev.tx_hash,
                buyer_bps=int(a["buyer_bps"]),
                buyer_amount=int(a["buyer_amount"]),
                seller_amount=int(a["seller_amount"]),
                fee_amount=int(a["fee"]),
            )
        elif ev.name == "PayoutDeferred":
            view = replace(view, deferred=(*view.deferred, (a["to"], int(a["amount"]))))
    return view


def terms_match(view: EscrowView, terms: EscrowTerms) -> bool:
    """Did the seller fund exactly the escrow the trade agreed on?"""
    return (
        _same_address(view.seller, terms.seller)
        and _same_address(view.buyer, terms.buyer)
        and _same_address(view.arbitrator, terms.arbitrator)
        and _same_address(view.token, terms.token)
        and view.amount == terms.amount
    )


_CHAIN_TO_TRADE = {
    ChainState.FUNDED: TradeStatus.FUNDED,
    ChainState.PAID: TradeStatus.PAID,
    ChainState.DISPUTED: TradeStatus.DISPUTED,
    ChainState.RELEASED: TradeStatus.COMPLETED,
    ChainState.REFUNDED: TradeStatus.REFUNDED,
    ChainState.RESOLVED: TradeStatus.RESOLVED,
}


def trade_status(
    view: EscrowView, terms: EscrowTerms, *, offchain: TradeStatus | None = None
) -> TradeStatus:
    """The status the API shows. ``offchain`` is a status the node set without
    the chain (cancelled or expired before funding); a confirmed funding
    overrides it, because the coins are then really in escrow."""
    if view.state is ChainState.NONE:
        if offchain in (TradeStatus.CANCELLED, TradeStatus.EXPIRED):
            return offchain
        return TradeStatus.AWAITING_FUNDING
    if not terms_match(view, terms):
        return TradeStatus.FUNDING_MISMATCH
    return _CHAIN_TO_TRADE[view.state]


def split_amounts(amount: int, buyer_bps: int, fee_bps: int) -> tuple[int, int, int]:
    """(to buyer, to seller, fee) of a split, exactly as the contract computes
    it: the fee is charged on the buyer's gross share only."""
    if not 0 <= buyer_bps <= BPS:
        raise ValidationError("buyer_bps must be between 0 and 10000", field="buyer_bps")
    if not 0 <= fee_bps <= MAX_FEE_BPS:
        raise ValidationError("fee_bps must be between 0 and 500", field="fee_bps")
    buyer_gross = amount * buyer_bps // BPS
    fee = buyer_gross * fee_bps // BPS
    return buyer_gross - fee, amount - buyer_gross, fee


def role_of(view_or_terms: EscrowTerms | EscrowView, address: str | None) -> Role:
    if address is None:
        return Role.OUTSIDER
    if _same_address(view_or_terms.seller, address):
        return Role.SELLER
    if _same_address(view_or_terms.buyer, address):
        return Role.BUYER
    if _same_address(view_or_terms.arbitrator, address):
        return Role.ARBITRATOR
    return Role.OUTSIDER


# Who may ask for which action, and from which chain states (mirrors the
# contract's rules; the contract is the final judge, this gives a clear error
# before anything is signed or relayed).
_ALLOWED: dict[Action, tuple[frozenset[Role], frozenset[ChainState]]] = {
    Action.MARK_PAID: (frozenset({Role.BUYER}), frozenset({ChainState.FUNDED})),
    Action.RELEASE: (
        frozenset({Role.SELLER}),
        frozenset({ChainState.FUNDED, ChainState.PAID, ChainState.DISPUTED}),
    ),
    Action.CANCEL: (frozenset({Role.BUYER}), frozenset({ChainState.FUNDED, ChainState.PAID})),
    Action.DISPUTE: (
        frozenset({Role.BUYER, Role.SELLER}),
        frozenset({ChainState.FUNDED, ChainState.PAID}),
    ),
    Action.RESOLVE: (frozenset({Role.ARBITRATOR}), frozenset({ChainState.DISPUTED})),
    Action.RECLAIM: (frozenset({Role.SELLER}), frozenset({ChainState.FUNDED, ChainState.PAID})),
    Action.SETTLE: (frozenset({Role.BUYER, Role.SELLER}), frozenset({ChainState.DISPUTED})),
}


def check_action(view: EscrowView, action: Action, role: Role, *, now: int) -> None:
    """Raise unless ``role`` may take ``action`` on an escrow in ``view`` at
    unix time ``now``."""
    roles, states = _ALLOWED[action]
    if role not in roles:
        raise PermissionDeniedError(
            f"{action.name.lower()} is for the {' or '.join(sorted(r.value for r in roles))}",
            code="wrong_party",
            action=action.name.lower(),
            role=role.value,
        )
    if view.state not in states:
        raise EscrowStateError(
            f"cannot {action.name.lower()} an escrow that is {view.state.name.lower()}",
            action=action.name.lower(),
            state=view.state.name.lower(),
        )
    if action is Action.MARK_PAID and view.payment_deadline is not None:
        if now > view.payment_deadline:
            raise EscrowStateError("the payment window has closed", code="payment_window_closed")
    if action is Action.DISPUTE and view.deadline is not None and now >= view.deadline:
        raise EscrowStateError("disputes close at the deadline", code="deadline_passed")
    if action is Action.RECLAIM:
        if view.state is ChainState.FUNDED and (
            view.payment_deadline is None or now <= view.payment_deadline
        ):
            raise EscrowStateError(
                "the seller can reclaim once the payment window has closed unpaid",
                code="too_early",
            )
        if view.state is ChainState.PAID and (view.deadline is None or now <= view.deadline):
            raise EscrowStateError(
                "a paid escrow can be reclaimed only after the deadline", code="too_early"
            )


def decision_of(action: Action, buyer_bps: int | None = None) -> str:
    """The payout decision an action signs for, as the signing journal keys it:
    release and refund conflict with each other and with any different split."""
    if action is Action.RELEASE:
        return "release"
    if action in (Action.CANCEL, Action.RECLAIM):
        return "refund"
    if action in (Action.RESOLVE, Action.SETTLE):
        if buyer_bps is None:
            raise ValidationError("a split needs buyer_bps", field="buyer_bps")
        if buyer_bps == BPS:
            return "release"
        if buyer_bps == 0:
            return "refund"
        return f"split:{buyer_bps}"
    raise ValidationError(f"{action.name.lower()} moves no funds", field="action")
