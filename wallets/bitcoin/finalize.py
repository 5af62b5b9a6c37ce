"""Combine partially signed PSBTs, finalize them and extract the raw transaction.

Combining and finalizing use BDK (rust-miniscript's PSBT finalizer), which
builds the witness for whichever branch the signatures satisfy - the 2-of-3
``multi`` branch or the refund key's ``older(N)`` branch - and checks the result
with its script interpreter.  Nothing is serialized by hand here.

The node runs :func:`wallets.bitcoin.policy.check_payout_psbt` on every PSBT
before it gets here; :func:`finalize_payout` does both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import bdkpython as bdk

from wallets.bitcoin.descriptor import EscrowScript
from wallets.bitcoin.errors import FinalizeError
from wallets.bitcoin.policy import check_payout_psbt
from wallets.bitcoin.psbt import FundingOutput, Ruling

__all__ = ["FinalizedTransaction", "combine_psbts", "finalize_payout", "finalize_psbt"]


@dataclass(frozen=True)
class FinalizedTransaction:
    raw: bytes
    txid: str
    vsize: int
    weight: int

    @property
    def hex(self) -> str:
        return self.raw.hex()


def _load(psbt_b64: str) -> bdk.Psbt:
    try:
        return bdk.Psbt(psbt_b64.strip())
    except Exception:
        raise FinalizeError("PSBT does not parse", reason="malformed") from None


def combine_psbts(psbts: Sequence[str]) -> str:
    """BIP-174 Combiner: merge signatures of PSBTs of the same unsigned transaction."""
    if not psbts:
        raise FinalizeError("nothing to combine", reason="empty")
    combined = _load(psbts[0])
    for other in psbts[1:]:
        try:
            combined = combined.combine(_load(other))
        except FinalizeError:
            raise
        except Exception:
            raise FinalizeError(
                "PSBTs are not for the same transaction", reason="different_tx"
            ) from None
    return str(combined.serialize())


def finalize_psbt(psbt_b64: str) -> FinalizedTransaction:
    """Finalize every input and extract the network-serialized transaction.

    Raises :class:`FinalizeError` (``reason="incomplete"``) when the signatures
    do not satisfy the script - e.g. one signature on the 2-of-3 branch, or the
    refund key's signature before nSequence reaches the CSV value.
    """
    result = _load(psbt_b64).finalize()
    if not result.could_finalize:
        raise FinalizeError(
            "PSBT cannot be finalized: signatures do not satisfy the escrow script",
            reason="incomplete",
            errors=len(result.errors or []),
        )
    try:
        tx = result.psbt.extract_tx_unchecked_fee_rate()
    except Exception:
        raise FinalizeError("could not extract the transaction", reason="extract") from None
    raw = bytes(tx.serialize())
    return FinalizedTransaction(
        raw=raw, txid=str(tx.compute_txid()), vsize=int(tx.vsize()), weight=int(tx.weight())
    )


def finalize_payout(
    psbts: Sequence[str],
    *,
    escrow: EscrowScript,
    funding: Sequence[FundingOutput],
    ruling: Ruling,
    max_fee_sat: int,
) -> FinalizedTransaction:
    """Check each PSBT against the ruling, combine, check again, finalize."""
    for p in psbts:
        check_payout_psbt(p, escrow=escrow, funding=funding, ruling=ruling,
                          max_fee_sat=max_fee_sat)
    combined = combine_psbts(psbts)
    check_payout_psbt(combined, escrow=escrow, funding=funding, ruling=ruling,
                      max_fee_sat=max_fee_sat)
    return finalize_psbt(combined)
