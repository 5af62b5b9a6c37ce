"""The PSBT policy checker refuses every PSBT that does not do exactly what was ruled.

Proves, one mutation per test, that ``check_payout_psbt`` raises
``PsbtPolicyError`` with the specific machine-readable code for: a swapped
payout script, an extra output, changed split amounts, a fee above the cap, a
2-of-4 or 1-of-3 witness script passed off as the escrow, a faked witness-UTXO
amount or script, a wrong non-witness UTXO, an input not from the funding
transaction, a funding output left unspent, SIGHASH_NONE / SINGLE /
ALL|ANYONECANPAY in the PSBT field or in a partial signature's trailing byte,
a corrupted or high-S (malleated) signature, a signature by a foreign key, a
lowered timelock nSequence, a wrong tx version; and that the unmutated PSBT,
and the node's own signer, pass.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from embit import bip32, ec
from embit.descriptor import Descriptor
from embit.psbt import PSBT, DerivationPath, InputScope, OutputScope
from embit.script import Script, Witness
from embit.transaction import SIGHASH, Transaction, TransactionInput, TransactionOutput
from hypothesis import given, settings
from hypothesis import strategies as st

from wallets.bitcoin import (
    REGTEST,
    Escrow,
    FundingOutput,
    PsbtPolicyError,
    Ruling,
    SoftwareSigner,
    Violation,
    build_payout_psbt,
    check_payout_psbt,
    finalize_payout,
    finalize_psbt,
    psbt_for_signing,
)
from wallets.bitcoin.consensus import verify_transaction
from wallets.errors import SigningError

NET = REGTEST
ACCOUNT = "m/84h/1h/0h"
CAP = 20_000
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _seed(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def _address(label: str) -> str:
    return str(Script(b"\x00\x14" + _seed(label)[:20]).address(NET.embit_params))


SIGNERS = {r: SoftwareSigner.from_seed(_seed(f"policy-{r}"), network=NET)
           for r in ("buyer", "seller", "arbitrator")}
ESCROW = Escrow.create(
    buyer_key=SIGNERS["buyer"].key_expression(ACCOUNT, (0, 1)),
    seller_key=SIGNERS["seller"].key_expression(ACCOUNT, (0, 2)),
    arbitrator_key=SIGNERS["arbitrator"].key_expression(ACCOUNT, (0, 3)),
    seller_refund_key=SIGNERS["seller"].key_expression(ACCOUNT, (1, 2)),
    csv_blocks=500,
    network=NET,
)
_FUND_TX = Transaction(
    version=2,
    vin=[TransactionInput(_seed("policy-prev"), 1)],
    vout=[TransactionOutput(300_000, Script(ESCROW.script.script_pubkey)),
          TransactionOutput(50_000, Script(ESCROW.script.script_pubkey))],
)
FUNDING = [FundingOutput(_FUND_TX.txid().hex(), 0, 300_000, ESCROW.script.script_pubkey,
                         _FUND_TX.serialize())]
RELEASE = Ruling.release(_address("buyer"), network=NET)
SPLIT = Ruling.split(_address("buyer"), _address("seller"), 6_000, network=NET)
TIMELOCK = Ruling.timelock_refund(_address("seller"), network=NET)


def _build(ruling: Ruling = RELEASE, feerate: int = 2,
           funding: list[FundingOutput] = FUNDING) -> PSBT:
    built = build_payout_psbt(ESCROW.script, funding, ruling, feerate_sat_vb=feerate)
    return PSBT.from_string(built.psbt)


def _check(psbt: PSBT | str, ruling: Ruling = RELEASE,
           funding: list[FundingOutput] = FUNDING) -> None:
    text = psbt if isinstance(psbt, str) else psbt.to_string()
    check_payout_psbt(text, escrow=ESCROW.script, funding=funding, ruling=ruling,
                      max_fee_sat=CAP)


def _refused(psbt: PSBT | str, violation: Violation, ruling: Ruling = RELEASE,
             funding: list[FundingOutput] = FUNDING) -> PsbtPolicyError:
    with pytest.raises(PsbtPolicyError) as err:
        _check(psbt, ruling, funding)
    assert err.value.violation is violation
    assert err.value.code == violation.value
    return err.value


def _signed(psbt: PSBT, who: str = "buyer") -> PSBT:
    return PSBT.from_string(SIGNERS[who].sign_psbt(psbt.to_string()))


# -- the baseline passes --------------------------------------------------------------


@pytest.mark.parametrize("ruling", [RELEASE, SPLIT, TIMELOCK], ids=["release", "split", "tl"])
def test_unmutated_psbt_passes(ruling: Ruling) -> None:
    who = "seller" if ruling is TIMELOCK else "buyer"
    checked = check_payout_psbt(_signed(_build(ruling), who).to_string(), escrow=ESCROW.script,
                                funding=FUNDING, ruling=ruling, max_fee_sat=CAP)
    assert checked.fee_sat > 0
    assert len(checked.signers[0]) >= 1


# -- outputs --------------------------------------------------------------------------


def test_swapped_payout_script_refused() -> None:
    psbt = _build()
    psbt.outputs[0].script_pubkey = Script(bytes.fromhex("0014") + _seed("thief")[:20])
    _refused(_signed(psbt), Violation.UNEXPECTED_OUTPUT)


def test_swapped_split_outputs_refused() -> None:
    psbt = _build(SPLIT)
    a, b = psbt.outputs[0], psbt.outputs[1]
    a.script_pubkey, b.script_pubkey = b.script_pubkey, a.script_pubkey  # buyer gets 40%
    _refused(psbt, Violation.OUTPUT_AMOUNT_MISMATCH, SPLIT)


def test_extra_output_refused() -> None:
    psbt = _build()
    psbt.outputs.append(OutputScope(vout=TransactionOutput(
        1_000, Script(bytes.fromhex("0014") + _seed("thief")[:20]))))
    _refused(psbt, Violation.UNEXPECTED_OUTPUT)


def test_missing_split_output_refused() -> None:
    psbt = _build(SPLIT)
    psbt.outputs.pop()
    _refused(psbt, Violation.MISSING_OUTPUT, SPLIT)


def test_changed_split_amounts_refused() -> None:
    psbt = _build(SPLIT)
    psbt.outputs[0].value += 500
    psbt.outputs[1].value -= 500
    _refused(psbt, Violation.OUTPUT_AMOUNT_MISMATCH, SPLIT)


def test_fee_above_cap_refused() -> None:
    err = _refused(_build(feerate=150), Violation.FEE_ABOVE_CAP)
    assert err.fields["fee_sat"] > CAP


def test_release_amount_lowered_beyond_cap_refused() -> None:
    psbt = _build()
    psbt.outputs[0].value -= CAP
    _refused(psbt, Violation.FEE_ABOVE_CAP)


def test_outputs_above_inputs_refused() -> None:
    psbt = _build()
    psbt.outputs[0].value = 300_001
    _refused(psbt, Violation.NEGATIVE_FEE)


# -- inputs ---------------------------------------------------------------------------


def _multi_script(m: int, extra: list[str]) -> Script:
    keys = ",".join([k.hex for k in ESCROW.script.multisig_keys] + extra)
    return Descriptor.from_string(f"wsh(multi({m},{keys}))").witness_script()


def test_two_of_four_witness_script_refused() -> None:
    psbt = _build()
    thief = ec.PrivateKey(_seed("thief")).get_public_key().sec().hex()
    psbt.inputs[0].witness_script = _multi_script(2, [thief])
    _refused(psbt, Violation.WITNESS_SCRIPT_MISMATCH)


def test_one_of_three_witness_script_refused() -> None:
    psbt = _build()
    psbt.inputs[0].witness_script = _multi_script(1, [])
    _refused(psbt, Violation.WITNESS_SCRIPT_MISMATCH)


def test_one_of_three_with_matching_witness_utxo_refused() -> None:
    """The fake script and a witness UTXO paying it: the real funding output differs."""
    psbt = _build()
    fake = _multi_script(1, [])
    psbt.inputs[0].witness_script = fake
    psbt.inputs[0].witness_utxo.script_pubkey = Script(
        b"\x00\x20" + hashlib.sha256(fake.data).digest())
    psbt.inputs[0].non_witness_utxo = None
    _refused(psbt, Violation.WITNESS_UTXO_MISMATCH)


def test_faked_witness_utxo_amount_refused() -> None:
    psbt = _build()
    psbt.inputs[0].witness_utxo.value = 3_000_000  # would make the fee look tiny
    _refused(_signed(psbt), Violation.WITNESS_UTXO_MISMATCH)


def test_wrong_non_witness_utxo_refused() -> None:
    psbt = _build()
    other = Transaction.parse(_FUND_TX.serialize())
    other.vout[0].value = 999_999
    psbt.inputs[0].non_witness_utxo = other
    _refused(psbt, Violation.NON_WITNESS_UTXO_MISMATCH)


def test_input_not_from_funding_tx_refused() -> None:
    psbt = _build()
    foreign = InputScope(vin=TransactionInput(_seed("someone-else"), 0, sequence=0xFFFFFFFD))
    foreign.witness_utxo = TransactionOutput(10_000, Script(ESCROW.script.script_pubkey))
    foreign.witness_script = Script(ESCROW.script.witness_script)
    psbt.inputs.append(foreign)
    err = _refused(psbt, Violation.FOREIGN_INPUT)
    assert err.fields["input_index"] == 1


def test_other_output_of_funding_tx_refused() -> None:
    """Output 1 of the funding tx also pays the escrow script but was not indexed as funding."""
    psbt = _build()
    psbt.inputs[0].vout = 1
    _refused(psbt, Violation.FOREIGN_INPUT)


def test_unspent_funding_output_refused() -> None:
    two = [*FUNDING, FundingOutput(_FUND_TX.txid().hex(), 1, 50_000,
                                   ESCROW.script.script_pubkey, _FUND_TX.serialize())]
    _refused(_build(funding=FUNDING), Violation.MISSING_FUNDING_INPUT, funding=two)


def test_lowered_timelock_sequence_refused() -> None:
    psbt = _build(TIMELOCK)
    psbt.inputs[0].sequence = ESCROW.script.csv_blocks - 1
    _refused(psbt, Violation.SEQUENCE, TIMELOCK)


def test_tx_version_1_refused() -> None:
    psbt = _build()
    psbt.tx_version = 1
    _refused(psbt, Violation.TX_VERSION)


def test_garbage_refused() -> None:
    _refused("cHNidP8BAHECAAAAAQ==", Violation.MALFORMED)


# -- sighash --------------------------------------------------------------------------

NON_ALL = [SIGHASH.NONE, SIGHASH.SINGLE, SIGHASH.ALL | SIGHASH.ANYONECANPAY]
NON_ALL_IDS = ["none", "single", "all_anyonecanpay"]


@pytest.mark.parametrize("sighash", NON_ALL, ids=NON_ALL_IDS)
def test_sighash_field_other_than_all_refused(sighash: int) -> None:
    psbt = _build()
    psbt.inputs[0].sighash_type = sighash
    _refused(psbt, Violation.SIGHASH_NOT_ALL)


@pytest.mark.parametrize("sighash", NON_ALL, ids=NON_ALL_IDS)
def test_signature_with_sighash_other_than_all_refused(sighash: int) -> None:
    psbt = _build()
    psbt.inputs[0].sighash_type = sighash
    root = bip32.HDKey.from_seed(_seed("policy-buyer"), version=NET.xprv_version)
    assert psbt.sign_with(root, sighash=None) == 1  # a wallet signing as the PSBT asked
    psbt.inputs[0].sighash_type = None  # ... and the field removed afterwards
    (sig,) = psbt.inputs[0].partial_sigs.values()
    assert sig[-1] == sighash
    _refused(psbt, Violation.SIGHASH_NOT_ALL)


@pytest.mark.parametrize("sighash", NON_ALL, ids=NON_ALL_IDS)
def test_node_signer_refuses_sighash_other_than_all(sighash: int) -> None:
    psbt = _build()
    psbt.inputs[0].sighash_type = sighash
    with pytest.raises(SigningError) as err:
        SIGNERS["arbitrator"].sign_psbt(psbt.to_string())
    assert err.value.fields["reason"] == "sighash_not_all"


# -- signatures -----------------------------------------------------------------------


def _buyer_sig(psbt: PSBT) -> tuple[ec.PublicKey, bytes]:
    inp = psbt.inputs[0]
    pub = next(p for p in inp.partial_sigs if p.sec() == ESCROW.buyer.pubkey)
    return pub, inp.partial_sigs[pub]


def test_corrupted_partial_signature_refused() -> None:
    psbt = _signed(_build())
    pub, sig = _buyer_sig(psbt)
    psbt.inputs[0].partial_sigs[pub] = sig[:10] + bytes([sig[10] ^ 1]) + sig[11:]
    err = _refused(psbt, Violation.INVALID_SIGNATURE)
    assert err.fields["pubkey"] == ESCROW.buyer.hex


def test_signature_for_another_transaction_refused() -> None:
    other = _signed(_build(feerate=3))
    psbt = _build(feerate=2)
    pub, sig = _buyer_sig(other)
    psbt.inputs[0].partial_sigs[pub] = sig
    _refused(psbt, Violation.INVALID_SIGNATURE)


def test_high_s_malleated_signature_refused() -> None:
    psbt = _signed(_build())
    pub, sig = _buyer_sig(psbt)
    der = sig[:-1]
    r_len = der[3]
    r_bytes = der[4:4 + r_len]
    s_bytes = der[6 + r_len:]
    high_s = (SECP256K1_N - int.from_bytes(s_bytes, "big")).to_bytes(33, "big")
    high_der_body = b"\x02" + bytes([r_len]) + r_bytes + b"\x02\x21" + high_s
    high = b"\x30" + bytes([len(high_der_body)]) + high_der_body
    psbt.inputs[0].partial_sigs[pub] = high + b"\x01"
    _refused(psbt, Violation.INVALID_SIGNATURE)


def test_signature_by_foreign_key_refused() -> None:
    psbt = _build()
    thief = ec.PrivateKey(_seed("thief"))
    psbt.inputs[0].partial_sigs[thief.get_public_key()] = thief.sign(
        psbt.sighash(0)).serialize() + b"\x01"
    _refused(psbt, Violation.UNEXPECTED_SIGNER)


def test_already_finalized_input_refused() -> None:
    psbt = _build()
    psbt.inputs[0].final_scriptwitness = Witness([b"", b"\x01"])
    _refused(psbt, Violation.ALREADY_FINALIZED)


def test_finalize_payout_checks_every_psbt() -> None:
    """Two valid signatures do not carry a mutated PSBT through ``finalize_payout``."""
    psbt = _build()
    psbt.outputs.append(OutputScope(vout=TransactionOutput(
        5_000, Script(bytes.fromhex("0014") + _seed("thief")[:20]))))
    psbt.outputs[0].value -= 5_000
    signed = [SIGNERS[w].sign_psbt(psbt.to_string()) for w in ("buyer", "arbitrator")]
    with pytest.raises(PsbtPolicyError) as err:
        finalize_payout(signed, escrow=ESCROW.script, funding=FUNDING, ruling=RELEASE,
                        max_fee_sat=CAP)
    assert err.value.violation is Violation.UNEXPECTED_OUTPUT


def test_dust_output_refused() -> None:
    tiny = Ruling.split(_address("buyer"), _address("seller"), 1, network=NET)  # 30 sat
    psbt = _build(SPLIT)
    fee = 300_000 - psbt.outputs[0].value - psbt.outputs[1].value
    buyer, seller = tiny.outputs(300_000, fee)
    psbt.outputs[0].value, psbt.outputs[1].value = buyer[1], seller[1]
    _refused(psbt, Violation.DUST_OUTPUT, tiny)


def test_raw_tx_version_zero_refused() -> None:
    """embit's ``psbt.tx`` would show version 0 as 2: the checker reads the raw field."""
    raw = bytearray(_build().serialize())
    assert raw[:8] == b"psbt\xff\x01\x00" + bytes([raw[7]]) and raw[8:12] == b"\x02\x00\x00\x00"
    raw[8:12] = b"\x00\x00\x00\x00"
    _refused(base64.b64encode(bytes(raw)).decode(), Violation.TX_VERSION)


def test_derivation_for_foreign_key_refused() -> None:
    """A derivation that would make a signer sign with some other key of its own."""
    psbt = _build()
    other = bip32.HDKey.from_seed(_seed("policy-arbitrator"), version=NET.xprv_version)
    path = [84 + 0x80000000, 0x80000001, 0x80000000, 0, 99]
    psbt.inputs[0].bip32_derivations[other.derive(path).get_public_key()] = DerivationPath(
        other.my_fingerprint, path)
    _refused(psbt, Violation.UNEXPECTED_DERIVATION)


def test_node_signs_a_clean_rebuild_of_the_handed_psbt() -> None:
    handed = _signed(_build(SPLIT), "buyer")
    handed.inputs[0].non_witness_utxo = None  # whatever the trader's wallet kept or dropped
    handed.outputs[0].unknown[b"\xfc\x05junk"] = b"\x01"
    clean = PSBT.from_string(psbt_for_signing(handed.to_string(), escrow=ESCROW.script,
                                              funding=FUNDING, ruling=SPLIT, max_fee_sat=CAP))
    assert clean.tx.txid() == handed.tx.txid()
    assert clean.inputs[0].non_witness_utxo is not None
    assert not clean.outputs[0].unknown
    assert clean.inputs[0].partial_sigs == handed.inputs[0].partial_sigs
    both = SIGNERS["arbitrator"].sign_psbt(clean.to_string())
    final = finalize_psbt(both)
    verify_transaction(final.raw, [(ESCROW.script.script_pubkey, 300_000)])


@settings(max_examples=40, deadline=None)
@given(delta=st.integers(-5_000, 5_000).filter(bool), bps=st.integers(1_000, 9_000))
def test_any_shift_between_split_outputs_refused(delta: int, bps: int) -> None:
    ruling = Ruling.split(_address("buyer"), _address("seller"), bps, network=NET)
    psbt = _build(ruling)
    psbt.outputs[0].value += delta
    psbt.outputs[1].value -= delta  # same fee, different split
    _refused(psbt, Violation.OUTPUT_AMOUNT_MISMATCH, ruling)


@settings(max_examples=60, deadline=None)
@given(delta=st.integers(1, 2_000), which=st.sampled_from([0, 1]))
def test_cut_of_a_split_output_accepted_iff_it_is_the_fee_rule(delta: int, which: int) -> None:
    """Lowering one output raises the fee; it passes only if the outputs are then exactly
    the fee rule's for that fee (the buyer's floor share may absorb a sat), else refused."""
    psbt = _build(SPLIT)
    psbt.outputs[which].value -= delta
    paid = [(o.script_pubkey.data, o.value) for o in psbt.outputs]
    fee = 300_000 - sum(v for _, v in paid)
    if paid == SPLIT.outputs(300_000, fee):
        _check(psbt, SPLIT)
    else:
        _refused(psbt, Violation.OUTPUT_AMOUNT_MISMATCH, SPLIT)
