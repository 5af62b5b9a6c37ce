"""Fee ladders: a payout signed in advance at a few rising fees (RBF rungs).

A party's signature covers one exact transaction, so a payout the node may
have to bump later must be signed at the higher fees up front. The node hands
out rung 0 (the fee it proposes now) and rungs 1..n: the same inputs and
output scripts, a fee ``step`` times the previous one (and at least the
BIP-125 increment above it), all signalling replaceability. When rung k sits
unconfirmed too long, the node broadcasts the cheapest rung that replaces it.

Pure integers (sat, sat/vB, vbytes); no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from wallets.bitcoin.amounts import fee_for_vsize

__all__ = [
    "DEFAULT_RUNGS",
    "DEFAULT_STEP",
    "LadderRung",
    "fee_ladder",
    "next_rung",
    "rung_fee_cap",
    "stuck_for",
]

DEFAULT_RUNGS = 3  # rungs above the fee proposed now
DEFAULT_STEP = 2  # each rung pays this many times the previous one


@dataclass(frozen=True)
class LadderRung:
    """A rung the node may broadcast: its fee and its unsigned txid."""

    fee_sat: int
    txid: str


def fee_ladder(
    feerate_sat_vb: int | Fraction,
    vsize: int,
    *,
    rungs: int = DEFAULT_RUNGS,
    step: int = DEFAULT_STEP,
    max_fee_sat: int,
    incremental_relay_sat_vb: int = 1,
) -> list[int]:
    """Fees of rung 0 (``feerate`` now) and of up to ``rungs`` rungs above it.

    Rung k pays ``feerate * step**k`` for ``vsize`` and at least the previous
    rung plus the incremental relay fee for its size (BIP-125 rule 4), so each
    rung replaces the one below it. Rungs above ``max_fee_sat`` are left out
    (rung 0 is returned even then: the caller's fee check refuses it).
    """
    if vsize <= 0 or rungs < 0 or step < 2:
        raise ValueError("vsize must be positive, rungs >= 0, step >= 2")
    fees = [fee_for_vsize(vsize, feerate_sat_vb)]
    for k in range(1, rungs + 1):
        fee = max(fee_for_vsize(vsize, Fraction(feerate_sat_vb) * step**k),
                  fees[-1] + vsize * incremental_relay_sat_vb)
        if fee > max_fee_sat:
            break
        fees.append(fee)
    return fees


def rung_fee_cap(base_cap_sat: int, index: int, *, step: int = DEFAULT_STEP,
                 max_fee_sat: int) -> int:
    """The most fee the ``index``-th rung above a payout (1-based, by rising
    fee) may pay: ``base_cap * step**index``, never above ``max_fee_sat``."""
    if index < 0:
        raise ValueError("index must be >= 0")
    return min(max_fee_sat, base_cap_sat * int(step**index))


def next_rung(
    rungs: Sequence[LadderRung],
    current_fee_sat: int,
    vsize: int,
    *,
    incremental_relay_sat_vb: int = 1,
) -> LadderRung | None:
    """The cheapest rung that replaces a payout paying ``current_fee_sat``
    (BIP-125 rules 3 and 4: at least the old fee plus the incremental relay
    fee for the replacement's size), or None when no rung is high enough."""
    floor = current_fee_sat + vsize * incremental_relay_sat_vb
    fitting = [r for r in rungs if r.fee_sat >= floor]
    return min(fitting, key=lambda r: r.fee_sat) if fitting else None


def stuck_for(broadcast_height: int, tip_height: int) -> int:
    """Blocks mined since the payout was broadcast (at ``broadcast_height``,
    the tip then) without confirming it."""
    return max(0, tip_height - broadcast_height)
