"""Check a finalized transaction's input scripts with Bitcoin Core's consensus code.

Uses libbitcoinkernel (``py-bitcoinkernel``, import ``pbk``) with every script
verification flag (P2SH, DERSIG, NULLDUMMY, CLTV, CSV, WITNESS, TAPROOT).  The
node can run this on a finalized payout before broadcasting it; tests use it to
prove that finalized escrow spends are valid (and that broken ones are not).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence

import pbk

from wallets.bitcoin.errors import BitcoinWalletError

__all__ = ["ALL_SCRIPT_FLAGS", "ConsensusError", "verify_transaction"]

ALL_SCRIPT_FLAGS: pbk.ScriptVerificationFlags = functools.reduce(
    operator.or_, pbk.ScriptVerificationFlags
)


class ConsensusError(BitcoinWalletError):
    """An input of a transaction does not satisfy the script it spends."""

    code = "script_verify_failed"


def verify_transaction(
    raw_tx: bytes,
    spent_outputs: Sequence[tuple[bytes, int]],
    *,
    flags: pbk.ScriptVerificationFlags = ALL_SCRIPT_FLAGS,
) -> None:
    """Verify every input of ``raw_tx``; ``spent_outputs[i]`` is ``(scriptPubKey, amount)``
    of the output input ``i`` spends.  Raises :class:`ConsensusError` on failure.
    """
    try:
        tx = pbk.Transaction(raw_tx)
    except Exception:
        raise ConsensusError("transaction does not parse", reason="malformed") from None
    if len(tx.inputs) != len(spent_outputs):
        raise ConsensusError(
            "one spent output per input is needed", reason="spent_outputs_count"
        )
    outputs = [
        pbk.TransactionOutput(pbk.ScriptPubkey(spk), amount) for spk, amount in spent_outputs
    ]
    precomputed = pbk.script.PrecomputedTransactionData(tx, outputs)
    for index, (spk, amount) in enumerate(spent_outputs):
        try:
            ok = pbk.ScriptPubkey(spk).verify(amount, tx, precomputed, index, flags)
        except pbk.ScriptVerifyException as exc:
            raise ConsensusError(
                f"input {index}: script verification error", input_index=index,
                reason=str(exc),
            ) from None
        if not ok:
            raise ConsensusError(
                f"input {index} does not satisfy its script", input_index=index,
                reason="script_failed",
            )
