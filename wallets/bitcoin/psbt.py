"""Payout PSBTs (BIP-174) for an escrow: release, refund, split, timelock refund.

Built with embit, pure (no network I/O).  Every input carries the witness UTXO,
the witness script, the BIP-32 derivation of every escrow key and, when the
caller supplies the raw funding transaction, the non-witness UTXO, so that
standard wallets (Bitcoin Core, BDK, Sparrow, Electrum, hardware wallets) can
sign it.  Fees follow :mod:`wallets.bitcoin.amounts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from embit import ec
from embit.psbt import PSBT, DerivationPath
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from wallets.bitcoin.amounts import (
    BPS_DENOMINATOR,
    SpendPath,
    check_not_dust,
    fee_for_vsize,
    payout_vsize,
    single_amount,
    split_amounts,
)
from wallets.bitcoin.descriptor import EscrowScript
from wallets.bitcoin.errors import AddressValidationError, FundingError
from wallets.bitcoin.keys import payout_script_pubkey
from wallets.bitcoin.network import BitcoinNetwork

__all__ = [
    "MULTISIG_SEQUENCE",
    "TX_VERSION",
    "FundingOutput",
    "PayoutKind",
    "PayoutPsbt",
    "Ruling",
    "build_payout_psbt",
    "check_funding",
    "psbt_for_escrow_tx",
]

TX_VERSION = 2  # BIP-68 relative locktimes need version >= 2
MULTISIG_SEQUENCE = 0xFFFFFFFD  # signals RBF (fee bumps), no relative lock
LOCKTIME = 0


class PayoutKind(StrEnum):
    RELEASE = "release"  # all to the buyer, 2-of-3
    REFUND = "refund"  # all to the seller, 2-of-3
    SPLIT = "split"  # arbitrator's split, 2-of-3
    TIMELOCK_REFUND = "timelock_refund"  # all to the seller, refund key alone after N


@dataclass(frozen=True)
class Ruling:
    """The outcome a payout must implement: who gets what.

    Build with :meth:`release`, :meth:`refund`, :meth:`split` or
    :meth:`timelock_refund`; addresses are validated for the network.
    """

    kind: PayoutKind
    buyer_script: bytes | None = None
    seller_script: bytes | None = None
    buyer_bps: int = 0

    def __post_init__(self) -> None:
        buyer, seller = self.buyer_script is not None, self.seller_script is not None
        shape = {
            PayoutKind.RELEASE: (True, False),
            PayoutKind.REFUND: (False, True),
            PayoutKind.TIMELOCK_REFUND: (False, True),
            PayoutKind.SPLIT: (True, True),
        }[self.kind]
        if (buyer, seller) != shape:
            raise ValueError(f"a {self.kind.value} ruling has the wrong payout scripts")
        if self.kind is PayoutKind.SPLIT:
            if not 0 < self.buyer_bps < BPS_DENOMINATOR:
                raise ValueError("buyer_bps must be in 1..9999")
            if self.buyer_script == self.seller_script:
                raise ValueError("a split needs two different scripts")

    @classmethod
    def release(cls, buyer_address: str, *, network: BitcoinNetwork) -> Ruling:
        spk = payout_script_pubkey(buyer_address, field="buyer_address", network=network)
        return cls(PayoutKind.RELEASE, buyer_script=spk)

    @classmethod
    def refund(cls, seller_address: str, *, network: BitcoinNetwork) -> Ruling:
        spk = payout_script_pubkey(seller_address, field="seller_address", network=network)
        return cls(PayoutKind.REFUND, seller_script=spk)

    @classmethod
    def timelock_refund(cls, seller_address: str, *, network: BitcoinNetwork) -> Ruling:
        spk = payout_script_pubkey(seller_address, field="seller_address", network=network)
        return cls(PayoutKind.TIMELOCK_REFUND, seller_script=spk)

    @classmethod
    def split(
        cls, buyer_address: str, seller_address: str, buyer_bps: int, *, network: BitcoinNetwork
    ) -> Ruling:
        """``buyer_bps`` (1..9999) basis points to the buyer, the rest to the seller."""
        if isinstance(buyer_bps, bool) or not isinstance(buyer_bps, int):
            raise TypeError("buyer_bps must be an int")
        if not 0 < buyer_bps < BPS_DENOMINATOR:
            raise ValueError("buyer_bps must be in 1..9999; use release or refund otherwise")
        buyer = payout_script_pubkey(buyer_address, field="buyer_address", network=network)
        seller = payout_script_pubkey(seller_address, field="seller_address", network=network)
        if buyer == seller:
            raise AddressValidationError(
                "seller_address: a split needs two different addresses",
                field="seller_address",
                reason="same_as_buyer",
            )
        return cls(PayoutKind.SPLIT, buyer_script=buyer, seller_script=seller,
                   buyer_bps=buyer_bps)

    @property
    def path(self) -> SpendPath:
        return SpendPath.TIMELOCK if self.kind is PayoutKind.TIMELOCK_REFUND else SpendPath.MULTISIG

    def output_scripts(self) -> list[bytes]:
        """The ruled scriptPubKeys, in transaction order (buyer first)."""
        return [s for s in (self.buyer_script, self.seller_script) if s is not None]

    def outputs(self, total: int, fee: int) -> list[tuple[bytes, int]]:
        """The ruled outputs ``(scriptPubKey, amount)`` for ``total`` in and ``fee``."""
        if self.kind is PayoutKind.SPLIT:
            assert self.buyer_script is not None and self.seller_script is not None
            buyer, seller = split_amounts(total, self.buyer_bps, fee)
            return [(self.buyer_script, buyer), (self.seller_script, seller)]
        (script,) = self.output_scripts()
        return [(script, single_amount(total, fee))]

    def sequence(self, escrow: EscrowScript) -> int:
        """nSequence of every input: the CSV value on the timelock path."""
        return escrow.csv_blocks if self.path is SpendPath.TIMELOCK else MULTISIG_SEQUENCE


@dataclass(frozen=True)
class FundingOutput:
    """One funding output of the escrow, as indexed from the chain.

    ``txid`` in the usual (display, big-endian) hex; ``raw_tx`` is the whole
    funding transaction if known (then PSBTs carry it as non-witness UTXO).
    """

    txid: str
    vout: int
    amount_sat: int
    script_pubkey: bytes
    raw_tx: bytes | None = None

    @property
    def outpoint(self) -> tuple[str, int]:
        return (self.txid.lower(), self.vout)


@dataclass(frozen=True)
class PayoutPsbt:
    """An unsigned payout PSBT and the numbers it was built from."""

    psbt: str  # base64
    kind: PayoutKind
    fee_sat: int
    vsize: int  # upper bound of the finalized transaction's vsize
    outputs: tuple[tuple[bytes, int], ...]
    txid: str  # of the unsigned (hence final: segwit) transaction


def check_funding(escrow: EscrowScript, funding: Sequence[FundingOutput]) -> int:
    """Check the funding outputs pay the escrow; returns the total in satoshis."""
    if not funding:
        raise FundingError("no funding outputs", reason="empty")
    seen: set[tuple[str, int]] = set()
    for i, f in enumerate(funding):
        if f.outpoint in seen:
            raise FundingError("funding output listed twice", reason="duplicate", index=i)
        seen.add(f.outpoint)
        if len(bytes.fromhex(f.txid)) != 32 or not 0 <= f.vout <= 0xFFFFFFFF:
            raise FundingError("bad funding outpoint", reason="bad_outpoint", index=i)
        if f.script_pubkey != escrow.script_pubkey:
            raise FundingError(
                "funding output does not pay the escrow address", reason="not_escrow", index=i
            )
        if f.amount_sat <= 0:
            raise FundingError("funding amount must be positive", reason="bad_amount", index=i)
        if f.raw_tx is not None:
            try:
                tx = Transaction.parse(f.raw_tx)
            except Exception:
                raise FundingError("raw_tx does not parse", reason="raw_tx", index=i) from None
            if tx.txid().hex() != f.txid.lower() or f.vout >= len(tx.vout):
                raise FundingError("raw_tx is not the funding tx", reason="raw_tx", index=i)
            out = tx.vout[f.vout]
            if out.value != f.amount_sat or out.script_pubkey.data != f.script_pubkey:
                raise FundingError("raw_tx output differs", reason="raw_tx", index=i)
    return sum(f.amount_sat for f in funding)


def build_payout_psbt(
    escrow: EscrowScript,
    funding: Sequence[FundingOutput],
    ruling: Ruling,
    *,
    feerate_sat_vb: int | Decimal | Fraction | None = None,
    fee_sat: int | None = None,
) -> PayoutPsbt:
    """Build the unsigned PSBT spending all ``funding`` outputs as ``ruling`` says.

    Give exactly one of ``feerate_sat_vb`` (the fee is then
    ``ceil(feerate * max_vsize)``) or ``fee_sat`` (an exact fee, e.g. from
    :func:`wallets.bitcoin.amounts.replacement_fee` for an RBF bump).  The fee is
    deducted from the payout(s) (see :mod:`wallets.bitcoin.amounts`); raises
    ``DustOutputError`` if a payout would be dust and ``InsufficientFundsError``
    if the fee exceeds the escrow.
    """
    if (feerate_sat_vb is None) == (fee_sat is None):
        raise ValueError("give exactly one of feerate_sat_vb and fee_sat")
    total = check_funding(escrow, funding)
    scripts = ruling.output_scripts()
    vsize = payout_vsize(
        n_inputs=len(funding),
        output_scripts=scripts,
        witness_script_len=len(escrow.witness_script),
        path=ruling.path,
    )
    if fee_sat is not None:
        if isinstance(fee_sat, bool) or not isinstance(fee_sat, int) or fee_sat < 0:
            raise ValueError("fee_sat must be a non-negative int")
        fee = fee_sat
    else:
        assert feerate_sat_vb is not None
        fee = fee_for_vsize(vsize, feerate_sat_vb)
    outputs = ruling.outputs(total, fee)
    for (spk, amount), name in zip(outputs, _output_names(ruling), strict=True):
        check_not_dust(amount, spk, output=name)

    sequence = ruling.sequence(escrow)
    tx = Transaction(
        version=TX_VERSION,
        locktime=LOCKTIME,
        vin=[TransactionInput(bytes.fromhex(f.txid), f.vout, sequence=sequence) for f in funding],
        vout=[TransactionOutput(amount, Script(spk)) for spk, amount in outputs],
    )
    psbt = psbt_for_escrow_tx(escrow, funding, tx)
    return PayoutPsbt(
        psbt=str(psbt.to_string()),
        kind=ruling.kind,
        fee_sat=fee,
        vsize=vsize,
        outputs=tuple(outputs),
        txid=str(tx.txid().hex()),
    )


def psbt_for_escrow_tx(
    escrow: EscrowScript, funding: Sequence[FundingOutput], tx: Transaction
) -> PSBT:
    """A PSBT for ``tx`` (spending ``funding`` in order) with the node's own metadata.

    Witness UTXO, non-witness UTXO (if known), witness script and the BIP-32
    derivations of every escrow key come from ``escrow`` and ``funding``, never
    from a PSBT someone handed in.
    """
    psbt = PSBT(tx)
    witness_script = Script(escrow.witness_script)
    for f, inp in zip(funding, psbt.inputs, strict=True):
        inp.witness_utxo = TransactionOutput(f.amount_sat, Script(f.script_pubkey))
        if f.raw_tx is not None:
            inp.non_witness_utxo = Transaction.parse(f.raw_tx)
        inp.witness_script = witness_script
        for key in escrow.all_keys:
            inp.bip32_derivations[ec.PublicKey.parse(key.pubkey)] = DerivationPath(
                key.fingerprint, list(key.path)
            )
    return psbt


def _output_names(ruling: Ruling) -> list[str]:
    names = []
    if ruling.buyer_script is not None:
        names.append("buyer")
    if ruling.seller_script is not None:
        names.append("seller")
    return names
