"""Traders' keys and payout addresses are validated per network, errors name the field.

Proves: an xpub with origin and a fixed child path, and a plain compressed key,
parse into the public key BDK derives independently and the right BIP-32
origin; keys for another network, private keys (never echoed), uncompressed
keys, wildcards, multipath, hardened steps after an xpub, wrong origin depth and
garbage are refused with a ``KeyValidationError`` naming the field; payout
addresses for another network (tb vs bcrt, bc), with a bad checksum or mixed
case are refused; network parameters are immutable values.
"""

from __future__ import annotations

import dataclasses
import hashlib

import bdkpython as bdk
import pytest
from embit import bip32, ec
from embit.script import Script

from wallets.bitcoin import (
    MAINNET,
    REGTEST,
    SIGNET,
    TESTNET,
    AddressValidationError,
    Escrow,
    KeyValidationError,
    SoftwareSigner,
    network_by_name,
    parse_party_key,
    payout_script_pubkey,
)
from wallets.bitcoin.keys import HARDENED

H = HARDENED
SEED = hashlib.sha256(b"keys-test").digest()


def _root(network=REGTEST) -> bip32.HDKey:  # type: ignore[no-untyped-def]
    return bip32.HDKey.from_seed(SEED, version=network.xprv_version)


def _xpub_expr(network=REGTEST, suffix: str = "/0/5") -> str:  # type: ignore[no-untyped-def]
    root = _root(network)
    acc = root.derive("m/84h/1h/0h").to_public()
    return f"[{root.my_fingerprint.hex()}/84h/1h/0h]{acc.to_base58(network.xpub_version)}{suffix}"


def _bdk_wpkh_address(key_expr: str) -> str:
    desc = bdk.Descriptor(f"wpkh({key_expr})", bdk.NetworkKind.TEST)
    return str(desc.derive_address(0, bdk.Network.REGTEST))


def test_xpub_with_origin_and_child_path() -> None:
    key = parse_party_key(_xpub_expr(), field="buyer_key", network=REGTEST)
    assert key.fingerprint == _root().my_fingerprint
    assert key.path == (84 + H, 1 + H, 0 + H, 0, 5)
    assert key.pubkey == _root().derive("m/84h/1h/0h/0/5").get_public_key().sec()
    # BDK derives the same key from the same expression
    assert _bdk_wpkh_address(_xpub_expr()) == _bdk_wpkh_address(key.hex)


def test_apostrophe_hardened_notation_is_canonicalized() -> None:
    expr = _xpub_expr().replace("h/", "'/").replace("h]", "']")
    a = parse_party_key(expr, field="k", network=REGTEST)
    b = parse_party_key(_xpub_expr(), field="k", network=REGTEST)
    assert a == b
    assert "84h/1h/0h" in a.expression


def test_plain_pubkey_fingerprint_is_its_own() -> None:
    pub = ec.PrivateKey(SEED).get_public_key().sec()
    key = parse_party_key(pub.hex(), field="seller_key", network=REGTEST)
    assert key.pubkey == pub and key.path == ()
    assert key.fingerprint == hashlib.new("ripemd160", hashlib.sha256(pub).digest()).digest()[:4]


def test_plain_pubkey_with_origin() -> None:
    pub = ec.PrivateKey(SEED).get_public_key().sec().hex()
    key = parse_party_key(f"[deadbeef/84h/1h/0h/0/1]{pub}", field="k", network=REGTEST)
    assert key.fingerprint == bytes.fromhex("deadbeef")
    assert key.path == (84 + H, 1 + H, H, 0, 1)


def test_xpub_without_origin_uses_its_own_fingerprint() -> None:
    acc = _root().derive("m/84h/1h/0h").to_public()
    key = parse_party_key(acc.to_base58(REGTEST.xpub_version) + "/0/2", field="k",
                          network=REGTEST)
    assert key.fingerprint == acc.my_fingerprint and key.path == (0, 2)


def _refused(text: str, network=REGTEST, field: str = "buyer_key") -> KeyValidationError:  # type: ignore[no-untyped-def]
    with pytest.raises(KeyValidationError) as err:
        parse_party_key(text, field=field, network=network)
    assert err.value.fields["field"] == field
    assert err.value.code == "invalid_key"
    assert field in str(err.value)
    return err.value


def test_mainnet_xpub_refused_on_regtest() -> None:
    err = _refused(_xpub_expr(MAINNET))
    assert "regtest" in err.fields["reason"]


def test_testnet_tpub_refused_on_mainnet() -> None:
    _refused(_xpub_expr(REGTEST), network=MAINNET, field="arbitrator_key")


def test_private_extended_key_refused_and_not_echoed() -> None:
    root = _root()
    xprv = root.to_base58(REGTEST.xprv_version)
    err = _refused(f"[{root.my_fingerprint.hex()}]{xprv}/0/1", field="seller_key")
    assert xprv not in str(err) and xprv not in repr(err.to_dict())
    assert "private" in err.fields["reason"]


def test_wif_refused() -> None:
    wif = ec.PrivateKey(SEED).wif(REGTEST.embit_params)
    err = _refused(wif)
    assert wif not in str(err)


def test_uncompressed_pubkey_refused() -> None:
    pub = ec.PrivateKey(SEED).get_public_key()
    pub.compressed = False
    err = _refused(pub.sec().hex())
    assert "uncompressed" in err.fields["reason"]


@pytest.mark.parametrize(
    "suffix", ["/0/*", "/<0;1>/5", "/0h/5", "/0/5h"], ids=["wildcard", "multipath", "hard1",
                                                         "hard2"]
)
def test_non_fixed_derivations_refused(suffix: str) -> None:
    _refused(_xpub_expr(suffix=suffix))


def test_origin_depth_mismatch_refused() -> None:
    err = _refused(_xpub_expr().replace("/84h/1h/0h]", "/84h/1h]"))
    assert "depth" in err.fields["reason"]


@pytest.mark.parametrize(
    "text",
    ["", "   ", "02zz", "02" + "00" * 32, "tpubGarbage/0/1", "wsh(multi(1,02aa))",
     "[xyz/0]02" + "11" * 32, "03" + "ff" * 32],
)
def test_garbage_refused(text: str) -> None:
    _refused(text, field="seller_refund_key")


def test_escrow_create_names_the_bad_field() -> None:
    signer = SoftwareSigner.from_seed(SEED, network=REGTEST)
    good = [signer.key_expression("m/84h/1h/0h", (0, i)) for i in range(4)]
    with pytest.raises(KeyValidationError) as err:
        Escrow.create(buyer_key=good[0], seller_key=good[1], arbitrator_key=_xpub_expr(MAINNET),
                      seller_refund_key=good[3], csv_blocks=10, network=REGTEST)
    assert err.value.fields["field"] == "arbitrator_key"


# -- payout addresses ----------------------------------------------------------------

HASH20 = hashlib.sha256(b"addr").digest()[:20]
HASH32 = hashlib.sha256(b"addr").digest()
SPKS = {
    "p2wpkh": b"\x00\x14" + HASH20,
    "p2wsh": b"\x00\x20" + HASH32,
    "p2tr": b"\x51\x20" + HASH32,
    "p2pkh": b"\x76\xa9\x14" + HASH20 + b"\x88\xac",
    "p2sh": b"\xa9\x14" + HASH20 + b"\x87",
}


@pytest.mark.parametrize("kind", list(SPKS))
@pytest.mark.parametrize("network", [REGTEST, TESTNET, SIGNET, MAINNET], ids=str)
def test_address_roundtrip(kind: str, network) -> None:  # type: ignore[no-untyped-def]
    address = Script(SPKS[kind]).address(network.embit_params)
    assert payout_script_pubkey(address, field="buyer_address", network=network) == SPKS[kind]


def _address_refused(address: str, network=REGTEST) -> AddressValidationError:  # type: ignore[no-untyped-def]
    with pytest.raises(AddressValidationError) as err:
        payout_script_pubkey(address, field="seller_address", network=network)
    assert err.value.fields["field"] == "seller_address"
    return err.value


def test_testnet_address_refused_on_regtest() -> None:
    err = _address_refused(Script(SPKS["p2wpkh"]).address(TESTNET.embit_params))
    assert err.fields["reason"] == "wrong_network"


def test_mainnet_addresses_refused_on_testnet() -> None:
    for kind in ("p2wpkh", "p2pkh", "p2tr"):
        _address_refused(Script(SPKS[kind]).address(MAINNET.embit_params), network=TESTNET)


def test_bad_checksum_refused() -> None:
    address = Script(SPKS["p2wpkh"]).address(REGTEST.embit_params)
    _address_refused(address[:-1] + ("q" if address[-1] != "q" else "p"))


def test_mixed_case_refused_upper_case_accepted() -> None:
    address = Script(SPKS["p2wsh"]).address(REGTEST.embit_params)
    assert payout_script_pubkey(address.upper(), field="a", network=REGTEST) == SPKS["p2wsh"]
    _address_refused(address[:10] + address[10:].upper())


def test_empty_address_refused() -> None:
    _address_refused("")


def test_networks_are_immutable_values() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        REGTEST.bech32_hrp = "bc"  # type: ignore[misc]
    assert network_by_name("signet") is SIGNET
    with pytest.raises(ValueError):
        network_by_name("litecoin")
