"""Child-pays-for-parent for a seller's stuck funding transaction.

The seller's funding transaction pays the escrow and, usually, change back to
the seller's wallet. When it sits unconfirmed at too low a fee, a child
spending that change output back to the seller can pay for both: miners take
the package (parent + child) at its combined feerate. The node builds the
child as a PSBT for the seller's own wallet to sign (the node never holds the
seller's key) and checks what comes back before broadcasting it.

Supported change outputs: P2WPKH (what wallets use for change by default);
other output types are refused with ``cpfp_unsupported_output``.

Pure: no network I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from embit import ec
from embit.hashes import hash160
from embit.psbt import PSBT
from embit.script import Script, Witness, p2pkh
from embit.transaction import SIGHASH, Transaction, TransactionInput, TransactionOutput

from wallets.bitcoin.amounts import dust_threshold, fee_for_vsize
from wallets.bitcoin.errors import BitcoinWalletError

__all__ = [
    "CHILD_SEQUENCE",
    "CheckedCpfp",
    "CpfpError",
    "CpfpPsbt",
    "ParentOutput",
    "build_cpfp_psbt",
    "check_cpfp_psbt",
    "child_vsize",
    "package_fee",
]

CHILD_SEQUENCE = 0xFFFFFFFD  # the child may itself be replaced
P2WPKH_INPUT_VBYTES = Fraction(272, 4)  # 41 bytes + (1+1+72+1+33)/4 witness, max-size sig
TX_OVERHEAD_VBYTES = Fraction(43, 4)  # version, locktime, counts, segwit marker+flag


class CpfpError(BitcoinWalletError):
    """The child PSBT is refused; ``code`` says why (``cpfp_*``)."""

    code = "cpfp_policy_violation"


@dataclass(frozen=True)
class ParentOutput:
    """The funding transaction's output the child spends (the seller's change)."""

    txid: str
    vout: int
    amount_sat: int
    script_pubkey: bytes


@dataclass(frozen=True)
class CpfpPsbt:
    psbt: str  # base64, unsigned
    fee_sat: int
    vsize: int  # upper bound of the signed child
    package_feerate_sat_vb: Fraction


@dataclass(frozen=True)
class CheckedCpfp:
    raw: bytes  # the finalized child
    txid: str
    fee_sat: int
    vsize: int
    package_feerate_sat_vb: Fraction


def _is_p2wpkh(spk: bytes) -> bool:
    return len(spk) == 22 and spk[0] == 0 and spk[1] == 20


def child_vsize(dest_script: bytes) -> int:
    """Upper bound of the child's vsize: one P2WPKH input, one output."""
    out = 8 + 1 + len(dest_script)
    return int(-(-(TX_OVERHEAD_VBYTES + P2WPKH_INPUT_VBYTES + out) // 1))


def package_fee(parent_fee_sat: int, parent_vsize: int, child_vsize_vb: int,
                target_sat_vb: int | Fraction) -> int:
    """The child's fee so that (parent + child) pays ``target`` for both
    sizes; at least 1 sat/vB of the child's own size (min relay)."""
    need = fee_for_vsize(parent_vsize + child_vsize_vb, target_sat_vb) - parent_fee_sat
    return max(need, child_vsize_vb)


def build_cpfp_psbt(parent: ParentOutput, dest_script: bytes, *, parent_fee_sat: int,
                    parent_vsize: int, target_sat_vb: int | Fraction) -> CpfpPsbt:
    """The unsigned child: ``parent`` (a P2WPKH change output) to ``dest_script``
    minus the fee that brings the package to ``target_sat_vb``."""
    if not _is_p2wpkh(parent.script_pubkey):
        raise CpfpError("only a P2WPKH change output can pay for its parent here",
                        code="cpfp_unsupported_output")
    vsize = child_vsize(dest_script)
    fee = package_fee(parent_fee_sat, parent_vsize, vsize, target_sat_vb)
    value = parent.amount_sat - fee
    if value < dust_threshold(dest_script):
        raise CpfpError(f"the change ({parent.amount_sat} sat) cannot pay a {fee} sat fee",
                        code="cpfp_change_too_small", change_sat=parent.amount_sat, fee_sat=fee)
    tx = Transaction(
        version=2, locktime=0,
        vin=[TransactionInput(bytes.fromhex(parent.txid), parent.vout, sequence=CHILD_SEQUENCE)],
        vout=[TransactionOutput(value, Script(dest_script))],
    )
    psbt = PSBT(tx)
    psbt.inputs[0].witness_utxo = TransactionOutput(parent.amount_sat, Script(parent.script_pubkey))
    rate = Fraction(parent_fee_sat + fee, parent_vsize + vsize)
    return CpfpPsbt(psbt=str(psbt.to_string()), fee_sat=fee, vsize=vsize,
                    package_feerate_sat_vb=rate)


def _signature(psbt: PSBT, pkh: bytes) -> tuple[bytes, bytes]:
    """(DER signature + sighash byte, pubkey) of input 0: a partial signature or
    a finalized P2WPKH witness, whichever the wallet returned."""
    inp = psbt.inputs[0]
    if inp.final_scriptwitness is not None:
        items = list(inp.final_scriptwitness.items)
        if len(items) != 2:
            raise CpfpError("the input's witness is not a P2WPKH witness", code="cpfp_bad_witness")
        sig, pub = bytes(items[0]), bytes(items[1])
    else:
        mine = [(bytes(s), bytes(p.sec())) for p, s in inp.partial_sigs.items()
                if hash160(p.sec()) == pkh]
        if not mine:
            raise CpfpError("the PSBT carries no signature of the change output's key",
                            code="cpfp_missing_signature")
        sig, pub = mine[0]
    if hash160(pub) != pkh:
        raise CpfpError("signed by a key that does not own the change output",
                        code="cpfp_wrong_key")
    return sig, pub


def check_cpfp_psbt(psbt_b64: str, *, parent: ParentOutput, dest_script: bytes,
                    parent_fee_sat: int, parent_vsize: int,
                    target_sat_vb: int | Fraction) -> CheckedCpfp:
    """Refuse the signed child unless it spends exactly ``parent`` (its real
    amount and script), pays only ``dest_script``, is signed SIGHASH_ALL by the
    change output's key with a valid signature, and brings the package to
    ``target_sat_vb``. Returns the finalized child."""
    try:
        psbt = PSBT.from_string(psbt_b64.strip())
    except Exception:
        raise CpfpError("PSBT does not parse", code="cpfp_malformed") from None
    tx = psbt.tx
    if len(tx.vin) != 1 or (tx.vin[0].txid.hex(), tx.vin[0].vout) != (parent.txid, parent.vout):
        raise CpfpError("the child must spend exactly the funding transaction's change",
                        code="cpfp_foreign_input")
    utxo = psbt.inputs[0].witness_utxo
    if utxo is None or utxo.value != parent.amount_sat or \
            bytes(utxo.script_pubkey.data) != parent.script_pubkey:
        raise CpfpError("the input's UTXO is not the change output", code="cpfp_utxo_mismatch")
    if len(tx.vout) != 1 or bytes(tx.vout[0].script_pubkey.data) != dest_script:
        raise CpfpError("the child must pay only the seller's address",
                        code="cpfp_unexpected_output")
    if psbt.inputs[0].sighash_type not in (None, SIGHASH.ALL):
        raise CpfpError("only SIGHASH_ALL", code="cpfp_sighash_not_all")
    pkh = parent.script_pubkey[2:]
    sig, pub = _signature(psbt, pkh)
    if not sig or sig[-1] != SIGHASH.ALL:
        raise CpfpError("the signature is not SIGHASH_ALL", code="cpfp_sighash_not_all")
    tx.vin[0].witness = Witness([])
    digest = tx.sighash_segwit(0, p2pkh(ec.PublicKey.parse(pub)), parent.amount_sat,
                               sighash=SIGHASH.ALL)
    try:
        ok = ec.PublicKey.parse(pub).verify(ec.Signature.parse(sig[:-1]), digest)
    except Exception:
        ok = False
    if not ok:
        raise CpfpError("the signature does not verify", code="cpfp_invalid_signature")
    tx.vin[0].witness = Witness([sig, pub])
    raw = bytes(tx.serialize())
    vsize = _vsize(tx)
    fee = parent.amount_sat - int(tx.vout[0].value)
    if fee <= 0:
        raise CpfpError("the child pays no fee", code="cpfp_negative_fee")
    rate = Fraction(parent_fee_sat + fee, parent_vsize + vsize)
    if rate < Fraction(target_sat_vb):
        raise CpfpError(f"the package pays {float(rate):.2f} sat/vB, below the target "
                        f"{float(Fraction(target_sat_vb)):.2f}", code="cpfp_feerate_too_low",
                        package_feerate_sat_vb=round(float(rate), 2))
    if int(tx.vout[0].value) < dust_threshold(dest_script):
        raise CpfpError("the child's output is dust", code="cpfp_dust_output")
    return CheckedCpfp(raw=raw, txid=str(tx.txid().hex()), fee_sat=fee, vsize=vsize,
                       package_feerate_sat_vb=rate)


def _stripped_len(tx: Transaction) -> int:
    witnesses = [i.witness for i in tx.vin]
    for i in tx.vin:
        i.witness = Witness([])
    n = len(tx.serialize())
    for i, w in zip(tx.vin, witnesses, strict=True):
        i.witness = w
    return n


def _vsize(tx: Transaction) -> int:
    """BIP-141 virtual size: ceil((3 * stripped + total) / 4)."""
    total = len(tx.serialize())
    stripped = _stripped_len(tx)
    return (3 * stripped + total + 3) // 4
