"""The software signer: standard BIP-32/39/84 derivation, signs only its own keys.

Proves: ``SoftwareSigner`` satisfies the ``Signer`` protocol; from the BIP-39
test mnemonic it yields the BIP-32 master fingerprint and the BIP-84 test-vector
address (so its keys are the ones any standard wallet derives); it refuses a
PSBT with none of its keys, a non-master key and garbage; its repr shows no key
material.
"""

from __future__ import annotations

import hashlib

import pytest
from embit import bip32
from embit.ec import PublicKey
from embit.script import p2wpkh

from wallets.bitcoin import (
    MAINNET,
    REGTEST,
    Escrow,
    FundingOutput,
    Ruling,
    Signer,
    SoftwareSigner,
    build_payout_psbt,
    parse_party_key,
)
from wallets.errors import SigningError

MNEMONIC = " ".join(["abandon"] * 11 + ["about"])


def test_is_a_signer() -> None:
    signer = SoftwareSigner.from_seed(b"\x01" * 32, network=REGTEST)
    assert isinstance(signer, Signer)


def test_bip39_bip84_test_vectors() -> None:
    signer = SoftwareSigner.from_mnemonic(MNEMONIC, network=MAINNET)
    assert signer.fingerprint.hex() == "73c5da0a"
    expr = signer.key_expression("m/84h/0h/0h", (0, 0))
    assert expr.startswith("[73c5da0a/84h/0h/0h]xpub")
    key = parse_party_key(expr, field="k", network=MAINNET)
    address = p2wpkh(PublicKey.parse(key.pubkey)).address(MAINNET.embit_params)
    assert address == "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"  # BIP-84 vector


def test_repr_shows_no_key_material() -> None:
    signer = SoftwareSigner.from_seed(b"\x02" * 32, network=REGTEST)
    root = bip32.HDKey.from_seed(b"\x02" * 32, version=REGTEST.xprv_version)
    assert root.to_base58() not in repr(signer)
    assert signer.fingerprint.hex() in repr(signer)


def test_refuses_psbt_without_its_keys() -> None:
    parties = [SoftwareSigner.from_seed(bytes([i]) * 32, network=REGTEST) for i in (3, 4, 5)]
    escrow = Escrow.create(
        buyer_key=parties[0].key_expression("m/84h/1h/0h", (0, 0)),
        seller_key=parties[1].key_expression("m/84h/1h/0h", (0, 0)),
        arbitrator_key=parties[2].key_expression("m/84h/1h/0h", (0, 0)),
        seller_refund_key=parties[1].key_expression("m/84h/1h/0h", (1, 0)),
        csv_blocks=10, network=REGTEST,
    )
    funding = [FundingOutput(hashlib.sha256(b"f").hexdigest(), 0, 100_000,
                             escrow.script.script_pubkey)]
    built = build_payout_psbt(escrow.script, funding,
                              Ruling.refund(escrow.address, network=REGTEST), feerate_sat_vb=1)
    outsider = SoftwareSigner.from_seed(b"\x09" * 32, network=REGTEST)
    with pytest.raises(SigningError) as err:
        outsider.sign_psbt(built.psbt)
    assert err.value.fields["reason"] == "nothing_to_sign"
    with pytest.raises(SigningError):
        outsider.sign_psbt("not a psbt")


def test_refuses_non_master_key_and_bad_seed() -> None:
    child = bip32.HDKey.from_seed(b"\x01" * 32).derive("m/0h")
    with pytest.raises(SigningError):
        SoftwareSigner(child, network=REGTEST)
    with pytest.raises(SigningError):
        SoftwareSigner.from_seed(b"short", network=REGTEST)
    with pytest.raises(SigningError):
        SoftwareSigner.from_mnemonic("abandon " * 12, network=REGTEST)
    with pytest.raises(ValueError):
        SoftwareSigner.from_seed(b"\x01" * 32, network=REGTEST).key_expression(
            "m/84h/1h/0h", (0x80000000,))
