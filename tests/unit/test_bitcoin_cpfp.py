"""CPFP children for a stuck funding transaction (wallets.bitcoin.cpfp), with
keys and signatures from embit (as a seller's wallet would make them): the
child's fee brings the package to the target; the checker accepts the child
signed by the change key (partial signature or finalized witness) and refuses
a foreign input, another payee, a wrong UTXO, another key, a bad signature,
SIGHASH_NONE and a package under the target. Finalized children pass
libbitcoinkernel's script check."""

from __future__ import annotations

import hashlib
from fractions import Fraction

import pytest
from embit import ec
from embit.psbt import PSBT
from embit.script import Script, Witness, p2pkh, p2wpkh
from embit.transaction import SIGHASH

from wallets.bitcoin import verify_transaction
from wallets.bitcoin.cpfp import (
    CpfpError,
    ParentOutput,
    build_cpfp_psbt,
    check_cpfp_psbt,
    child_vsize,
    package_fee,
)

KEY = ec.PrivateKey(hashlib.sha256(b"seller wallet").digest())
OTHER = ec.PrivateKey(hashlib.sha256(b"someone else").digest())
SPK = bytes(p2wpkh(KEY.get_public_key()).data)
DEST = bytes(p2wpkh(ec.PrivateKey(hashlib.sha256(b"seller payout").digest())
                    .get_public_key()).data)
PARENT = ParentOutput("11" * 32, 1, 50_000, SPK)
PARENT_FEE, PARENT_VSIZE = 141, 141  # 1 sat/vB


def build(target: int = 5) -> PSBT:
    child = build_cpfp_psbt(PARENT, DEST, parent_fee_sat=PARENT_FEE,
                            parent_vsize=PARENT_VSIZE, target_sat_vb=target)
    return PSBT.from_string(child.psbt)


def sign(psbt: PSBT, key: ec.PrivateKey = KEY, sighash: int = SIGHASH.ALL) -> str:
    tx = psbt.tx
    digest = tx.sighash_segwit(0, p2pkh(key.get_public_key()), PARENT.amount_sat,
                               sighash=sighash)
    psbt.inputs[0].partial_sigs[key.get_public_key()] = key.sign(digest).serialize() + \
        bytes([sighash])
    return str(psbt.to_string())


def check(psbt_b64: str, target: int = 5) -> object:
    return check_cpfp_psbt(psbt_b64, parent=PARENT, dest_script=DEST, parent_fee_sat=PARENT_FEE,
                           parent_vsize=PARENT_VSIZE, target_sat_vb=target)


def test_child_fee_brings_the_package_to_the_target() -> None:
    vsize = child_vsize(DEST)
    assert vsize == 110  # 1 P2WPKH in, 1 P2WPKH out (upper bound)
    fee = package_fee(PARENT_FEE, PARENT_VSIZE, vsize, 5)
    assert fee == 5 * (PARENT_VSIZE + vsize) - PARENT_FEE
    assert package_fee(10_000, 141, vsize, 5) == vsize  # parent pays enough: min relay
    psbt = build()
    assert psbt.tx.vout[0].value == PARENT.amount_sat - fee
    assert psbt.tx.vin[0].sequence == 0xFFFFFFFD


def test_signed_child_is_accepted_and_verifies() -> None:
    checked = check(sign(build()))
    assert isinstance(checked.package_feerate_sat_vb, Fraction)  # type: ignore[attr-defined]
    assert checked.package_feerate_sat_vb >= 5  # type: ignore[attr-defined]
    verify_transaction(checked.raw, [(SPK, PARENT.amount_sat)])  # type: ignore[attr-defined]


def test_finalized_witness_is_accepted() -> None:
    psbt = build()
    signed = PSBT.from_string(sign(psbt))
    ((pub, sig),) = signed.inputs[0].partial_sigs.items()
    signed.inputs[0].partial_sigs.clear()
    signed.inputs[0].final_scriptwitness = Witness([sig, pub.sec()])
    check(str(signed.to_string()))


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda p: setattr(p.inputs[0], "txid", bytes.fromhex("22" * 32)),
         "cpfp_foreign_input"),
        (lambda p: setattr(p.outputs[0], "script_pubkey", Script(bytes.fromhex(
            "0014" + "33" * 20))), "cpfp_unexpected_output"),
        (lambda p: setattr(p.inputs[0].witness_utxo, "value", 60_000), "cpfp_utxo_mismatch"),
        (lambda p: setattr(p.outputs[0], "value", PARENT.amount_sat - 300),
         "cpfp_feerate_too_low"),
    ],
)
def test_refused_children(mutate: object, code: str) -> None:
    psbt = build()
    mutate(psbt)  # type: ignore[operator]
    with pytest.raises(CpfpError) as err:
        check(sign(psbt))
    assert err.value.code == code


def test_wrong_key_bad_signature_and_sighash_are_refused() -> None:
    with pytest.raises(CpfpError) as err:
        check(sign(build(), OTHER))
    assert err.value.code == "cpfp_missing_signature"
    with pytest.raises(CpfpError) as err:
        check(sign(build(), sighash=SIGHASH.NONE))
    assert err.value.code == "cpfp_sighash_not_all"
    signed = PSBT.from_string(sign(build()))
    signed.outputs[0].value -= 1  # the signature no longer covers the transaction
    with pytest.raises(CpfpError) as err:
        check(str(signed.to_string()), target=1)
    assert err.value.code == "cpfp_invalid_signature"
    with pytest.raises(CpfpError) as err:
        check(str(build().to_string()))
    assert err.value.code == "cpfp_missing_signature"
    with pytest.raises(CpfpError) as err:
        check("not a psbt")
    assert err.value.code == "cpfp_malformed"


def test_unsupported_change_and_too_small_change() -> None:
    with pytest.raises(CpfpError) as err:
        build_cpfp_psbt(ParentOutput("11" * 32, 0, 50_000, bytes.fromhex("0020" + "44" * 32)),
                        DEST, parent_fee_sat=100, parent_vsize=100, target_sat_vb=5)
    assert err.value.code == "cpfp_unsupported_output"
    with pytest.raises(CpfpError) as err:
        build_cpfp_psbt(ParentOutput("11" * 32, 0, 1_000, SPK), DEST, parent_fee_sat=100,
                        parent_vsize=141, target_sat_vb=5)
    assert err.value.code == "cpfp_change_too_small"
