"""The escrow descriptor: canonical, checksummed, and rebuilt identically by BDK.

Proves: the descriptor's BIP-380 checksum (embit) equals the checksum BDK
(rust-miniscript, a different implementation) computes; BDK's wallet derives the
same address from our descriptor text; the order in which the three parties'
keys are handed in does not change the descriptor; a descriptor is rebuilt and
checked from its text (bad checksum, unsorted keys, another template refused);
and why the seller's timelock key must differ from its multisig key (BDK refuses
a miniscript with a repeated key as not sane).
"""

from __future__ import annotations

import hashlib
import itertools
import re

import bdkpython as bdk
import pytest
from embit import ec

from wallets.bitcoin import (
    REGTEST,
    TESTNET,
    DescriptorMismatchError,
    Escrow,
    EscrowScript,
    KeyValidationError,
    SoftwareSigner,
    descriptor_checksum,
)

NET = REGTEST
ACCOUNT = "m/84h/1h/0h"


def _signer(label: str) -> SoftwareSigner:
    return SoftwareSigner.from_seed(hashlib.sha256(label.encode()).digest(), network=NET)


def _pub(label: str) -> str:
    secret = hashlib.sha256(label.encode()).digest()
    return str(ec.PrivateKey(secret).get_public_key().sec().hex())


def _xpub_escrow(network=NET) -> Escrow:  # type: ignore[no-untyped-def]
    b, s, a = (SoftwareSigner.from_seed(hashlib.sha256(r.encode()).digest(), network=network)
               for r in ("d-buyer", "d-seller", "d-arb"))
    return Escrow.create(
        buyer_key=b.key_expression(ACCOUNT, (0, 5)),
        seller_key=s.key_expression(ACCOUNT, (0, 5)),
        arbitrator_key=a.key_expression(ACCOUNT, (0, 9)),
        seller_refund_key=s.key_expression(ACCOUNT, (1, 5)),
        csv_blocks=1008,
        network=network,
    )


def _plain_escrow() -> Escrow:
    return Escrow.create(buyer_key=_pub("b"), seller_key=_pub("s"), arbitrator_key=_pub("a"),
                         seller_refund_key=_pub("r"), csv_blocks=144, network=NET)


def _bdk_address(descriptor: str) -> str:
    wallet = bdk.Wallet.create_single(
        bdk.Descriptor(descriptor, bdk.NetworkKind.TEST), bdk.Network.REGTEST,
        bdk.Persister.new_in_memory(),
    )
    return str(wallet.peek_address(bdk.KeychainKind.EXTERNAL, 0).address)


def test_checksum_matches_bdk_plain_keys() -> None:
    escrow = _plain_escrow()
    # BDK prints plain-key descriptors exactly as we do, checksum included
    assert str(bdk.Descriptor(escrow.descriptor, bdk.NetworkKind.TEST)) == escrow.descriptor


def test_checksum_matches_bdk_xpub_keys() -> None:
    escrow = _xpub_escrow()
    printed = str(bdk.Descriptor(escrow.descriptor, bdk.NetworkKind.TEST))
    body, checksum = printed.split("#")
    ours = re.sub(r"\[[0-9a-f/h]*\]", lambda m: m.group(0).replace("h", "'"),
                  escrow.descriptor.split("#")[0])
    assert body == ours
    assert descriptor_checksum(body) == checksum  # ours on BDK's spelling ('), BDK's result


def test_bdk_refuses_a_wrong_checksum() -> None:
    escrow = _plain_escrow()
    body, checksum = escrow.descriptor.split("#")
    wrong = body + "#" + ("q" if checksum[0] != "q" else "p") + checksum[1:]
    with pytest.raises(bdk.DescriptorError):
        bdk.Descriptor(wrong, bdk.NetworkKind.TEST)
    with pytest.raises(DescriptorMismatchError) as err:
        EscrowScript.from_descriptor(wrong, network=NET)
    assert err.value.fields["reason"] == "bad_checksum"


@pytest.mark.parametrize("make", [_xpub_escrow, _plain_escrow])
def test_bdk_wallet_derives_the_same_address(make) -> None:  # type: ignore[no-untyped-def]
    escrow = make()
    assert _bdk_address(escrow.descriptor) == escrow.address
    assert escrow.address.startswith("bcrt1q") and len(escrow.address) == 64  # P2WSH


def test_testnet_address_prefix() -> None:
    escrow = _xpub_escrow(TESTNET)
    assert escrow.address.startswith("tb1q")
    assert "tpub" in escrow.descriptor


def test_key_order_does_not_matter() -> None:
    keys = [_pub("k1"), _pub("k2"), _pub("k3")]
    results = set()
    for b, s, a in itertools.permutations(keys):
        escrow = Escrow.create(buyer_key=b, seller_key=s, arbitrator_key=a,
                               seller_refund_key=_pub("r"), csv_blocks=144, network=NET)
        results.add((escrow.descriptor, escrow.address, escrow.script.witness_script))
    assert len(results) == 1
    (descriptor, _, _), = results
    sorted_hex = sorted(keys)
    assert descriptor.startswith(f"wsh(or_d(multi(2,{sorted_hex[0]},{sorted_hex[1]},"
                                 f"{sorted_hex[2]}),and_v(v:pk({_pub('r')}),older(144))))#")


def test_roles_are_kept_beside_the_sorted_script() -> None:
    escrow = _plain_escrow()
    assert escrow.buyer.hex == _pub("b") and escrow.seller.hex == _pub("s")
    assert escrow.seller_refund.hex == _pub("r")


@pytest.mark.parametrize("make", [_xpub_escrow, _plain_escrow])
def test_rebuilt_from_descriptor_text(make) -> None:  # type: ignore[no-untyped-def]
    escrow = make()
    rebuilt = EscrowScript.from_descriptor(escrow.descriptor, network=NET)
    assert rebuilt == escrow.script
    assert rebuilt.address == escrow.address
    assert rebuilt.witness_script == escrow.script.witness_script


def test_unsorted_descriptor_refused() -> None:
    keys = sorted([_pub("k1"), _pub("k2"), _pub("k3")], reverse=True)
    body = f"wsh(or_d(multi(2,{keys[0]},{keys[1]},{keys[2]}),and_v(v:pk({_pub('r')}),older(9))))"
    with pytest.raises(DescriptorMismatchError) as err:
        EscrowScript.from_descriptor(f"{body}#{descriptor_checksum(body)}", network=NET)
    assert err.value.fields["reason"] == "keys_not_sorted"


@pytest.mark.parametrize(
    "body",
    [
        "wsh(sortedmulti(2,{k1},{k2},{k3}))",
        "wsh(or_d(multi(1,{k1},{k2},{k3}),and_v(v:pk({r}),older(9))))",
        "wsh(or_d(multi(2,{k1},{k2},{k3}),and_v(v:pk({r}),after(9))))",
        "sh(or_d(multi(2,{k1},{k2},{k3}),and_v(v:pk({r}),older(9))))",
    ],
)
def test_other_templates_refused(body: str) -> None:
    k1, k2, k3 = sorted([_pub("k1"), _pub("k2"), _pub("k3")])
    text = body.format(k1=k1, k2=k2, k3=k3, r=_pub("r"))
    with pytest.raises(DescriptorMismatchError) as err:
        EscrowScript.from_descriptor(f"{text}#{descriptor_checksum(text)}", network=NET)
    assert err.value.fields["reason"] == "not_escrow_template"


def test_missing_checksum_refused() -> None:
    with pytest.raises(DescriptorMismatchError):
        EscrowScript.from_descriptor(_plain_escrow().descriptor.split("#")[0], network=NET)


def test_repeated_seller_key_is_not_sane_for_bdk() -> None:
    """Why the seller brings a separate refund key."""
    k1, k2, k3 = sorted([_pub("k1"), _pub("k2"), _pub("k3")])
    repeated = f"wsh(or_d(multi(2,{k1},{k2},{k3}),and_v(v:pk({k2}),older(144))))"
    with pytest.raises(bdk.DescriptorError):
        bdk.Descriptor(repeated, bdk.NetworkKind.TEST).sanity_check()
    with pytest.raises(KeyValidationError) as err:
        Escrow.create(buyer_key=k1, seller_key=k2, arbitrator_key=k3, seller_refund_key=k2,
                      csv_blocks=144, network=NET)
    assert err.value.fields["field"] == "seller_refund_key"


def test_same_key_for_two_parties_refused() -> None:
    with pytest.raises(KeyValidationError) as err:
        Escrow.create(buyer_key=_pub("x"), seller_key=_pub("x"), arbitrator_key=_pub("a"),
                      seller_refund_key=_pub("r"), csv_blocks=144, network=NET)
    assert err.value.fields == {"field": "seller_key", "reason": "duplicate_key"}


@pytest.mark.parametrize("csv", [0, -1, 65536])
def test_csv_out_of_range_refused(csv: int) -> None:
    with pytest.raises(DescriptorMismatchError):
        Escrow.create(buyer_key=_pub("b"), seller_key=_pub("s"), arbitrator_key=_pub("a"),
                      seller_refund_key=_pub("r"), csv_blocks=csv, network=NET)
