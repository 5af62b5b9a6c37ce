"""Fee and amount math for escrow payouts: pure integers in satoshis.

Fee rule (the policy checker enforces the same functions):

* the fee is ``ceil(feerate * vsize)`` where ``vsize`` is the *upper bound* of
  the finalized transaction's virtual size for the spending path, counting every
  ECDSA signature at its maximum low-S size (72 bytes with the sighash byte).
  The real transaction is at most 1 vbyte per input smaller, so the effective
  feerate is never below the requested one;
* release / refund / timelock refund: the single payout is ``total - fee``;
* split: the gross shares are ``buyer = floor(total * bps / 10000)`` and
  ``seller = total - buyer``; the fee is borne **proportionally**: the buyer pays
  ``floor(fee * buyer_gross / total)``, the seller pays the rest (the seller
  absorbs the rounding, at most 1 sat);
* any payout below the dust threshold of its scriptPubKey (Bitcoin Core's
  ``GetDustThreshold`` at the default 3 sat/vB dust relay fee) is refused.
"""

from __future__ import annotations

import math
from decimal import Decimal
from enum import Enum
from fractions import Fraction

from wallets.bitcoin.errors import DustOutputError, InsufficientFundsError

__all__ = [
    "BPS_DENOMINATOR",
    "MAX_SIG_LEN",
    "SpendPath",
    "check_not_dust",
    "compact_size_len",
    "dust_threshold",
    "fee_for_vsize",
    "payout_vsize",
    "payout_weight",
    "replacement_fee",
    "split_amounts",
    "witness_weight",
]

BPS_DENOMINATOR = 10_000
MAX_SIG_LEN = 72  # DER low-S ECDSA signature (<= 71) + sighash byte
DUST_RELAY_SAT_PER_KVB = 3_000
MAX_MONEY = 21_000_000 * 100_000_000


class SpendPath(Enum):
    """Which branch of the escrow script a payout spends."""

    MULTISIG = "multisig"  # 2-of-3: release, refund, split
    TIMELOCK = "timelock"  # seller refund key after older(N)


def compact_size_len(n: int) -> int:
    """Length in bytes of Bitcoin's CompactSize encoding of ``n``."""
    if n < 0xFD:
        return 1
    if n <= 0xFFFF:
        return 3
    if n <= 0xFFFFFFFF:
        return 5
    return 9


def _push_len(item_len: int) -> int:
    return compact_size_len(item_len) + item_len


def witness_weight(witness_script_len: int, path: SpendPath) -> int:
    """Maximum weight (= bytes) of one input's witness for ``path``.

    MULTISIG: ``[<>, sig, sig, witness_script]``;
    TIMELOCK: ``[sig, <>, <>, <>, witness_script]`` (multi dissatisfied by
    three empty pushes, then the refund key's signature).
    """
    if path is SpendPath.MULTISIG:
        items = [0, MAX_SIG_LEN, MAX_SIG_LEN, witness_script_len]
    else:
        items = [MAX_SIG_LEN, 0, 0, 0, witness_script_len]
    return compact_size_len(len(items)) + sum(_push_len(n) for n in items)


def payout_weight(
    *, n_inputs: int, output_scripts: list[bytes], witness_script_len: int, path: SpendPath
) -> int:
    """Maximum weight of the finalized payout transaction."""
    if n_inputs < 1:
        raise ValueError("a transaction needs at least one input")
    base = 4  # version
    base += compact_size_len(n_inputs) + n_inputs * (32 + 4 + 1 + 4)  # empty scriptSig
    base += compact_size_len(len(output_scripts))
    base += sum(8 + _push_len(len(spk)) for spk in output_scripts)
    base += 4  # locktime
    witness = 2 + n_inputs * witness_weight(witness_script_len, path)  # marker + flag
    return base * 4 + witness


def payout_vsize(
    *, n_inputs: int, output_scripts: list[bytes], witness_script_len: int, path: SpendPath
) -> int:
    """Maximum virtual size (vbytes) of the finalized payout transaction."""
    weight = payout_weight(
        n_inputs=n_inputs,
        output_scripts=output_scripts,
        witness_script_len=witness_script_len,
        path=path,
    )
    return (weight + 3) // 4


def _as_fraction(feerate_sat_vb: int | Decimal | Fraction) -> Fraction:
    if isinstance(feerate_sat_vb, bool) or not isinstance(
        feerate_sat_vb, int | Decimal | Fraction
    ):
        raise TypeError("feerate must be an int, Decimal or Fraction (sat/vB)")
    rate = Fraction(feerate_sat_vb)
    if rate <= 0:
        raise ValueError("feerate must be positive")
    return rate


def fee_for_vsize(vsize: int, feerate_sat_vb: int | Decimal | Fraction) -> int:
    """``ceil(vsize * feerate)`` in satoshis (feerate in sat/vB; no floats)."""
    return math.ceil(vsize * _as_fraction(feerate_sat_vb))


def dust_threshold(script_pubkey: bytes) -> int:
    """Bitcoin Core's dust threshold for an output paying ``script_pubkey``."""
    out_size = 8 + _push_len(len(script_pubkey))
    is_witness_program = (
        4 <= len(script_pubkey) <= 42
        and (script_pubkey[0] == 0 or 0x51 <= script_pubkey[0] <= 0x60)
        and script_pubkey[1] + 2 == len(script_pubkey)
    )
    spend_size = 32 + 4 + 1 + (107 // 4) + 4 if is_witness_program else 32 + 4 + 1 + 107 + 4
    return (out_size + spend_size) * DUST_RELAY_SAT_PER_KVB // 1000


def check_not_dust(amount: int, script_pubkey: bytes, *, output: str) -> None:
    """Raise :class:`DustOutputError` if ``amount`` is dust for ``script_pubkey``."""
    threshold = dust_threshold(script_pubkey)
    if amount < threshold:
        raise DustOutputError(
            f"{output} output of {amount} sat is below the dust threshold {threshold} sat",
            output=output,
            amount_sat=amount,
            dust_threshold_sat=threshold,
        )


def split_amounts(total: int, buyer_bps: int, fee: int) -> tuple[int, int]:
    """(buyer, seller) payouts of a ruled split after a proportional fee.

    ``buyer_bps`` in 1..9999 (0 and 10000 are a refund and a release).
    ``buyer + seller + fee == total`` always.
    """
    if not 0 < buyer_bps < BPS_DENOMINATOR:
        raise ValueError("buyer_bps must be in 1..9999 (use refund / release otherwise)")
    if not 0 < total <= MAX_MONEY:
        raise ValueError("total out of range")
    if fee < 0:
        raise ValueError("fee must not be negative")
    if fee > total:
        raise InsufficientFundsError(
            f"fee {fee} sat exceeds the escrowed {total} sat", fee_sat=fee, total_sat=total
        )
    buyer_gross = total * buyer_bps // BPS_DENOMINATOR
    seller_gross = total - buyer_gross
    buyer_fee = fee * buyer_gross // total
    seller_fee = fee - buyer_fee
    return buyer_gross - buyer_fee, seller_gross - seller_fee


def single_amount(total: int, fee: int) -> int:
    """The single payout of a release / refund: ``total - fee``."""
    if not 0 < total <= MAX_MONEY:
        raise ValueError("total out of range")
    if fee < 0:
        raise ValueError("fee must not be negative")
    if fee > total:
        raise InsufficientFundsError(
            f"fee {fee} sat exceeds the escrowed {total} sat", fee_sat=fee, total_sat=total
        )
    return total - fee


def replacement_fee(
    old_fee: int, vsize: int, feerate_sat_vb: int | Decimal | Fraction, *,
    incremental_relay_sat_vb: int = 1,
) -> int:
    """Fee of an RBF replacement of a payout (same inputs, same outputs' scripts).

    BIP-125 rules 3 and 4: the replacement pays at least the old fee plus the
    incremental relay fee for its own size; and at least ``feerate`` for its size.
    """
    return max(fee_for_vsize(vsize, feerate_sat_vb), old_fee + vsize * incremental_relay_sat_vb)
