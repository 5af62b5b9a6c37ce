"""The withdrawal policy as a pure function of plain values (no I/O).

Rules, checked in this order (the first that fails names the refusal):

1. ``amount_invalid``: the amount is a positive integer in base units;
2. ``address_not_allowed``: the address is on the user's allow-list for the chain;
3. ``address_in_delay``: a newly added address is usable only after the
   configured delay (``usable_from``);
4. ``user_daily_limit``: the user's withdrawals of the asset in the last 24 hours
   (a rolling window; requested, broadcast and confirmed ones, not failed) plus
   this one stay within the per-user limit;
5. ``global_daily_limit``: the same over all users, within the global limit.

The second factor (TOTP) is verified before the policy runs
(``node.accounts.totp``); funds are checked by the ledger hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class PolicyInput:
    amount: int
    now: datetime
    allowed_from: datetime | None  # the allow-list entry's usable_from; None: not listed
    user_recent: int  # the user's withdrawals of this asset within WINDOW
    global_recent: int  # everyone's, within WINDOW
    user_limit: int | None  # None: no limit
    global_limit: int | None


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    code: str = "ok"
    reason: str = ""


def decide(p: PolicyInput) -> Decision:
    if isinstance(p.amount, bool) or not isinstance(p.amount, int) or p.amount <= 0:
        return Decision(False, "amount_invalid", "the amount must be a positive integer")
    if p.allowed_from is None:
        return Decision(False, "address_not_allowed", "the address is not on your allow-list")
    if p.now < p.allowed_from:
        return Decision(
            False, "address_in_delay", f"the address can be used from {p.allowed_from.isoformat()}"
        )
    if p.user_limit is not None and p.user_recent + p.amount > p.user_limit:
        left = max(p.user_limit - p.user_recent, 0)
        return Decision(False, "user_daily_limit", f"{left} left of your 24-hour limit")
    if p.global_limit is not None and p.global_recent + p.amount > p.global_limit:
        return Decision(
            False, "global_daily_limit", "the node's 24-hour withdrawal limit is reached"
        )
    return Decision(True)
