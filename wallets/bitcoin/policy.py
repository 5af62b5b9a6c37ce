"""The node's PSBT policy checker.

Before the node signs, combines or finalizes any PSBT it is handed, it checks
the PSBT against the *ruled outcome*, the *real funding outputs* (as indexed
from the chain, never as claimed by the PSBT) and a fee cap.  Each refusal is a
:class:`PsbtPolicyError` whose ``code`` is one of :class:`Violation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import coincurve
from embit.psbt import PSBT
from embit.script import Script
from embit.transaction import SIGHASH

from wallets.bitcoin.amounts import SpendPath, dust_threshold
from wallets.bitcoin.descriptor import EscrowScript
from wallets.bitcoin.errors import (
    InsufficientFundsError,
    PsbtPolicyError,
    Violation,
)
from wallets.bitcoin.psbt import (
    LOCKTIME,
    TX_VERSION,
    FundingOutput,
    Ruling,
    check_funding,
    psbt_for_escrow_tx,
)

__all__ = ["CheckedPsbt", "check_payout_psbt", "parse_psbt", "psbt_for_signing"]


@dataclass(frozen=True)
class CheckedPsbt:
    """A PSBT that passed the policy, with what the node learned from it."""

    psbt: str  # base64, as handed in
    fee_sat: int
    outputs: tuple[tuple[bytes, int], ...]
    signers: tuple[frozenset[bytes], ...]  # per input: pubkeys with a valid partial sig
    complete: bool  # every input has the signatures its spending path needs


def parse_psbt(psbt_b64: str) -> PSBT:
    """Parse a base64 version-0 PSBT, refusing anything else as ``psbt_malformed``."""
    try:
        psbt = PSBT.from_string(psbt_b64.strip())
    except Exception:
        raise PsbtPolicyError(Violation.MALFORMED, "PSBT does not parse") from None
    if psbt.version not in (None, 0):
        raise PsbtPolicyError(Violation.MALFORMED, "only PSBT version 0 is accepted")
    return psbt


def check_payout_psbt(
    psbt_b64: str,
    *,
    escrow: EscrowScript,
    funding: Sequence[FundingOutput],
    ruling: Ruling,
    max_fee_sat: int,
) -> CheckedPsbt:
    """Refuse ``psbt_b64`` unless it does exactly what ``ruling`` says.

    Checks: it spends exactly the ``funding`` outputs (no foreign, missing or
    duplicate inputs); every input's witness UTXO (and non-witness UTXO, if
    present) equals the real funding output; its witness script is exactly the
    escrow's and there is no redeem script; tx version 2, locktime 0 and the
    path's nSequence; no finalized input; sighash SIGHASH_ALL (PSBT field and
    every partial signature's trailing byte); every partial signature is by an
    escrow key and valid (low-S DER, libsecp256k1) for the BIP-143 sighash
    computed from the real amounts; outputs are exactly the ruled outputs with
    the amounts of the fee rule; the fee is within ``max_fee_sat``; no output is dust.
    """
    psbt = parse_psbt(psbt_b64)
    total = check_funding(escrow, funding)  # FundingError: the caller's data is wrong
    tx = psbt.tx
    # the raw fields: embit's ``psbt.tx`` would silently turn 0 into defaults
    if psbt.tx_version != TX_VERSION:
        raise PsbtPolicyError(Violation.TX_VERSION, f"tx version must be {TX_VERSION}")
    if psbt.locktime != LOCKTIME:
        raise PsbtPolicyError(Violation.LOCKTIME, "tx locktime must be 0")

    by_outpoint = {f.outpoint: f for f in funding}
    spent: set[tuple[str, int]] = set()
    expected_sequence = ruling.sequence(escrow)
    allowed_signers = escrow.multisig_pubkeys | {escrow.refund_key.pubkey}
    signers: list[frozenset[bytes]] = []

    for i, (inp, vin) in enumerate(zip(psbt.inputs, tx.vin, strict=True)):
        outpoint = (vin.txid.hex(), vin.vout)
        real = by_outpoint.get(outpoint)
        if real is None:
            raise PsbtPolicyError(
                Violation.FOREIGN_INPUT, "input does not spend an escrow funding output",
                input_index=i,
            )
        if outpoint in spent:
            raise PsbtPolicyError(
                Violation.DUPLICATE_INPUT, "funding output spent twice", input_index=i
            )
        spent.add(outpoint)
        if inp.sequence != expected_sequence:
            raise PsbtPolicyError(
                Violation.SEQUENCE, f"nSequence must be {expected_sequence}", input_index=i
            )
        _check_utxo(inp, real, i)
        if inp.redeem_script is not None:
            raise PsbtPolicyError(
                Violation.REDEEM_SCRIPT_PRESENT, "P2WSH escrow has no redeem script",
                input_index=i,
            )
        if inp.witness_script is None or inp.witness_script.data != escrow.witness_script:
            raise PsbtPolicyError(
                Violation.WITNESS_SCRIPT_MISMATCH, "witness script is not the escrow's",
                input_index=i,
            )
        foreign = [p for p in inp.bip32_derivations if bytes(p.sec()) not in allowed_signers]
        if foreign:
            raise PsbtPolicyError(
                Violation.UNEXPECTED_DERIVATION, "BIP-32 derivation for a non-escrow key",
                input_index=i,
            )
        if inp.final_scriptwitness is not None or inp.final_scriptsig is not None:
            raise PsbtPolicyError(
                Violation.ALREADY_FINALIZED, "input is already finalized", input_index=i
            )
        if inp.sighash_type is not None and inp.sighash_type != SIGHASH.ALL:
            raise PsbtPolicyError(
                Violation.SIGHASH_NOT_ALL, "PSBT asks for a sighash other than ALL",
                input_index=i, sighash=int(inp.sighash_type),
            )
        sighash = tx.sighash_segwit(
            i, Script(escrow.witness_script), real.amount_sat, sighash=SIGHASH.ALL
        )
        valid: set[bytes] = set()
        for pub, sig in inp.partial_sigs.items():
            sec = bytes(pub.sec())
            if sec not in allowed_signers:
                raise PsbtPolicyError(
                    Violation.UNEXPECTED_SIGNER, "partial signature by a non-escrow key",
                    input_index=i, pubkey=sec.hex(),
                )
            sig = bytes(sig)
            if not sig or sig[-1] != SIGHASH.ALL:
                raise PsbtPolicyError(
                    Violation.SIGHASH_NOT_ALL, "partial signature is not SIGHASH_ALL",
                    input_index=i, pubkey=sec.hex(),
                )
            if not _verify_ecdsa(sec, sig[:-1], bytes(sighash)):
                raise PsbtPolicyError(
                    Violation.INVALID_SIGNATURE, "partial signature does not verify",
                    input_index=i, pubkey=sec.hex(),
                )
            valid.add(sec)
        signers.append(frozenset(valid))

    missing = set(by_outpoint) - spent
    if missing:
        raise PsbtPolicyError(
            Violation.MISSING_FUNDING_INPUT, "PSBT does not spend every funding output",
            missing=sorted(f"{t}:{v}" for t, v in missing),
        )

    paid = [(bytes(o.script_pubkey.data), int(o.value)) for o in tx.vout]
    ruled_scripts = set(ruling.output_scripts())
    seen_scripts: set[bytes] = set()
    for j, (spk, _) in enumerate(paid):
        if spk not in ruled_scripts or spk in seen_scripts:
            raise PsbtPolicyError(
                Violation.UNEXPECTED_OUTPUT, "output pays a script that was not ruled",
                output_index=j,
            )
        seen_scripts.add(spk)
    if seen_scripts != ruled_scripts:
        raise PsbtPolicyError(Violation.MISSING_OUTPUT, "a ruled output is missing")

    fee = total - sum(a for _, a in paid)
    if fee < 0:
        raise PsbtPolicyError(Violation.NEGATIVE_FEE, "outputs exceed inputs")
    if fee > max_fee_sat:
        raise PsbtPolicyError(
            Violation.FEE_ABOVE_CAP, f"fee {fee} sat is above the cap {max_fee_sat} sat",
            fee_sat=fee, max_fee_sat=max_fee_sat,
        )
    try:
        expected = dict(ruling.outputs(total, fee))
    except (InsufficientFundsError, ValueError):
        raise PsbtPolicyError(Violation.NEGATIVE_FEE, "fee exceeds the escrow") from None
    for j, (spk, amount) in enumerate(paid):
        if amount != expected[spk]:
            raise PsbtPolicyError(
                Violation.OUTPUT_AMOUNT_MISMATCH,
                f"output pays {amount} sat, the ruling and fee rule give {expected[spk]} sat",
                output_index=j, amount_sat=amount, expected_sat=expected[spk],
            )
        if amount < dust_threshold(spk):
            raise PsbtPolicyError(Violation.DUST_OUTPUT, "output is dust", output_index=j)
    if ruling.path is SpendPath.TIMELOCK:
        complete = all(escrow.refund_key.pubkey in s for s in signers)
    else:
        complete = all(len(s & escrow.multisig_pubkeys) >= 2 for s in signers)
    return CheckedPsbt(psbt=psbt_b64, fee_sat=fee, outputs=tuple(paid),
                       signers=tuple(signers), complete=complete)


def psbt_for_signing(
    psbt_b64: str,
    *,
    escrow: EscrowScript,
    funding: Sequence[FundingOutput],
    ruling: Ruling,
    max_fee_sat: int,
) -> str:
    """What the node's signer should sign: the checked PSBT, rebuilt clean.

    Runs :func:`check_payout_psbt`, then returns a fresh PSBT of the same
    unsigned transaction whose metadata (UTXOs, witness script, derivations)
    comes only from ``escrow``/``funding``, carrying over the verified partial
    signatures.  The node's signer never acts on metadata someone else wrote.
    """
    check_payout_psbt(psbt_b64, escrow=escrow, funding=funding, ruling=ruling,
                      max_fee_sat=max_fee_sat)
    handed = parse_psbt(psbt_b64)
    by_outpoint = {f.outpoint: f for f in funding}
    ordered = [by_outpoint[(inp.txid.hex(), inp.vout)] for inp in handed.inputs]
    clean = psbt_for_escrow_tx(escrow, ordered, handed.tx)
    for src, dst in zip(handed.inputs, clean.inputs, strict=True):
        dst.partial_sigs.update(src.partial_sigs)
    return str(clean.to_string())


def _check_utxo(inp: object, real: FundingOutput, i: int) -> None:
    witness_utxo = getattr(inp, "witness_utxo", None)
    if witness_utxo is None:
        raise PsbtPolicyError(
            Violation.MISSING_WITNESS_UTXO, "input has no witness UTXO", input_index=i
        )
    if (
        witness_utxo.value != real.amount_sat
        or witness_utxo.script_pubkey.data != real.script_pubkey
    ):
        raise PsbtPolicyError(
            Violation.WITNESS_UTXO_MISMATCH,
            "witness UTXO differs from the real funding output",
            input_index=i,
        )
    non_witness = getattr(inp, "non_witness_utxo", None)
    if non_witness is not None:
        ok = non_witness.txid().hex() == real.txid.lower() and real.vout < len(non_witness.vout)
        if ok:
            out = non_witness.vout[real.vout]
            ok = out.value == real.amount_sat and out.script_pubkey.data == real.script_pubkey
        if not ok:
            raise PsbtPolicyError(
                Violation.NON_WITNESS_UTXO_MISMATCH,
                "non-witness UTXO is not the real funding transaction",
                input_index=i,
            )


def _verify_ecdsa(pubkey: bytes, der: bytes, msg32: bytes) -> bool:
    """Strict DER, low-S ECDSA verification with libsecp256k1 (coincurve)."""
    try:
        return bool(coincurve.PublicKey(pubkey).verify(der, msg32, hasher=None))
    except Exception:  # malformed DER or key
        return False
