"""When the node's agent key may co-sign a payout: how invariant I3 holds on Solana.

SPL Token has no timelock, and escrowd uses no custom program, so "the seller can
always recover after the deadline without the node" (I3) cannot be enforced by
the chain as Bitcoin's CSV branch or the EVM contract's ``reclaim`` do. Instead:

* The multisig is 2-of-3 (buyer, seller, arbitrator). When the arbitrator slot
  is the node's *agent* key, the seller + agent can refund, and
  :func:`allowed_actions` returns ``REFUND`` after the deadline when no dispute is
  open and the buyer has not marked the trade paid — the node co-signs the
  seller's refund (or builds it and asks the seller to sign).
* The node's agent key alone never moves funds (I1: m = 2), and it only signs
  payouts this function allows *and* the transaction check
  (:mod:`wallets.solana.txcheck`) matches byte for byte.
* With a human arbitrator, the refund needs the arbitrator's (or buyer's)
  signature: that is stated to the seller when funding. This is the documented
  gap: on Solana I3 holds *through the node's policy*, not by the chain.

Rules of :func:`allowed_actions` (first match wins):

1. not funded, or already paid out: nothing;
2. the journal says the node already signed an action for this escrow: only that
   same action again (re-signing a rebuilt transaction after a blockhash expiry),
   never a conflicting one (I5);
3. an arbitrator's ruling: exactly the ruled action (split with the ruled bps);
4. a dispute is open (no ruling yet): nothing;
5. the seller confirmed the release: ``RELEASE``;
6. the buyer cancelled the trade: ``REFUND``;
7. the deadline has passed and the buyer has not marked paid: ``REFUND``;
8. otherwise nothing (before the deadline; or the buyer marked paid, in which
   case the seller releases or a party opens a dispute).

Times are integer unix seconds; the deadline is inclusive (``now >= deadline``).
"""

from __future__ import annotations

from dataclasses import dataclass

from wallets.solana.errors import ActionNotAllowedError, InvalidEscrowParamsError
from wallets.solana.payout import BPS_DENOMINATOR, PayoutAction, PayoutIntent


@dataclass(frozen=True, slots=True)
class Ruling:
    """An arbitrator's signed ruling, already verified by the node."""

    action: PayoutAction
    buyer_bps: int | None = None

    def __post_init__(self) -> None:
        if self.action is PayoutAction.SPLIT:
            if self.buyer_bps is None or not 0 < self.buyer_bps < BPS_DENOMINATOR:
                raise InvalidEscrowParamsError(
                    "a split ruling needs 0 < buyer_bps < 10000", code="bad_split_bps"
                )
        elif self.buyer_bps is not None:
            raise InvalidEscrowParamsError("buyer_bps is only for a split", code="bad_split_bps")


@dataclass(frozen=True, slots=True)
class EscrowPolicyState:
    """The escrow facts the node's policy needs (from its database)."""

    funded: bool
    """Funding seen with the configured confirmations."""
    deadline: int
    """Unix seconds after which an unpaid trade may be refunded."""
    dispute_open: bool = False
    buyer_marked_paid: bool = False
    seller_confirmed_release: bool = False
    buyer_cancelled: bool = False
    ruling: Ruling | None = None
    paid_out: bool = False
    """A payout has been confirmed on chain (the escrow account is empty/closed)."""
    signed_action: PayoutAction | None = None
    """What the node's signing journal says it already signed for this escrow."""
    signed_buyer_bps: int | None = None


@dataclass(frozen=True, slots=True)
class AllowedActions:
    actions: frozenset[PayoutAction]
    split_buyer_bps: int | None
    """For ``SPLIT``: the only buyer share the node may sign."""
    reason: str

    def __contains__(self, action: object) -> bool:
        return action in self.actions


_NONE = frozenset[PayoutAction]()


def allowed_actions(state: EscrowPolicyState, now: int) -> AllowedActions:
    """The payouts the node's agent key may co-sign for this escrow at ``now``."""
    if not state.funded or state.paid_out:
        return AllowedActions(_NONE, None, "not funded" if not state.funded else "paid out")
    if state.signed_action is not None:
        return AllowedActions(
            frozenset({state.signed_action}),
            state.signed_buyer_bps,
            "already signed: the same action only",
        )
    if state.ruling is not None:
        return AllowedActions(
            frozenset({state.ruling.action}), state.ruling.buyer_bps, "arbitrator's ruling"
        )
    if state.dispute_open:
        return AllowedActions(_NONE, None, "dispute open")
    if state.seller_confirmed_release:
        return AllowedActions(frozenset({PayoutAction.RELEASE}), None, "seller confirmed")
    if state.buyer_cancelled:
        return AllowedActions(frozenset({PayoutAction.REFUND}), None, "buyer cancelled")
    if now >= state.deadline and not state.buyer_marked_paid:
        return AllowedActions(frozenset({PayoutAction.REFUND}), None, "deadline passed, unpaid")
    return AllowedActions(_NONE, None, "waiting" if now < state.deadline else "buyer marked paid")


def require_action_allowed(state: EscrowPolicyState, intent: PayoutIntent, now: int) -> None:
    """Raise :class:`ActionNotAllowedError` unless ``intent`` is allowed at ``now``
    (action, and for a split the exact buyer share)."""
    allowed = allowed_actions(state, now)
    if intent.action not in allowed.actions:
        raise ActionNotAllowedError(
            f"{intent.action.value} is not allowed now ({allowed.reason})",
            action=intent.action.value,
            allowed=sorted(a.value for a in allowed.actions),
            reason=allowed.reason,
        )
    if intent.action is PayoutAction.SPLIT and intent.buyer_bps != allowed.split_buyer_bps:
        raise ActionNotAllowedError(
            "split share differs from the ruling",
            code="policy_split_not_ruled",
            expected=allowed.split_buyer_bps,
            found=intent.buyer_bps,
        )
