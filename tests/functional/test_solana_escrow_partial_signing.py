"""Partial signing of escrow payouts exchanged as base64 between wallets, on LiteSVM.

Proves: a payout signed by one party in its own wallet, serialized to base64, decoded by
the node, checked, co-signed and completed is accepted by the runtime and pays exactly;
the order of signing does not matter; signing never changes the blockhash or drops the
other party's signature; a key that is not a required signer cannot sign; bytes altered
after a signature fail verification (``bad_signature``) and are refused by the runtime;
malformed base64, a non-transaction or a versioned (v0) transaction is refused with
``malformed_transaction``.
"""

from __future__ import annotations

import base64

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from wallets.solana.errors import SigningError, TransactionDecodeError
from wallets.solana.payout import PayoutAction, PayoutIntent, build_payout_transaction
from wallets.solana.signer import (
    SoftwareSigner,
    decode_transaction,
    encode_transaction,
    missing_signers,
    require_complete,
    sign_partially,
)
from wallets.solana.testing import EscrowWorld, Ledger, LedgerTransactionError
from wallets.solana.txcheck import cosign_payout, has_signature

AMOUNT = 42_000_000


@pytest.fixture
def w() -> EscrowWorld:
    world = EscrowWorld.new(Ledger.new())
    world.fund(AMOUNT)
    return world


def release_intent(w: EscrowWorld) -> PayoutIntent:
    # The seller confirmed payment; the node's agent key (arbitrator slot) co-signs.
    return PayoutIntent(
        escrow=w.escrow,
        action=PayoutAction.RELEASE,
        amount=AMOUNT,
        signers=(w.seller.pubkey(), w.arbitrator.pubkey()),
        fee_payer=w.seller.pubkey(),
    )


def test_round_trip_through_base64_seller_wallet_then_node(w):
    intent = release_intent(w)
    unsigned_b64 = encode_transaction(
        build_payout_transaction(intent, recent_blockhash=w.ledger.blockhash())
    )
    # In the seller's wallet.
    seller_tx = sign_partially(decode_transaction(unsigned_b64), SoftwareSigner(w.seller))
    assert missing_signers(seller_tx) == [w.arbitrator.pubkey()]
    signed_b64 = encode_transaction(seller_tx)
    # Back at the node: decode, check against the intent, co-sign, complete, send.
    node_tx = cosign_payout(decode_transaction(signed_b64), intent, SoftwareSigner(w.arbitrator))
    assert has_signature(node_tx, w.seller.pubkey()) and has_signature(
        node_tx, w.arbitrator.pubkey()
    )
    assert node_tx.message.recent_blockhash == seller_tx.message.recent_blockhash
    w.ledger.send(require_complete(node_tx))
    assert w.ledger.token_balance(w.ata(w.buyer)) == AMOUNT


def test_signing_order_does_not_matter(w):
    intent = release_intent(w)
    tx = build_payout_transaction(intent, recent_blockhash=w.ledger.blockhash())
    a = sign_partially(sign_partially(tx, SoftwareSigner(w.seller)), SoftwareSigner(w.arbitrator))
    b = sign_partially(sign_partially(tx, SoftwareSigner(w.arbitrator)), SoftwareSigner(w.seller))
    assert bytes(a) == bytes(b)
    w.ledger.send(require_complete(decode_transaction(encode_transaction(b))))
    assert w.ledger.token_balance(w.ata(w.buyer)) == AMOUNT


def test_a_key_that_is_not_required_cannot_sign(w):
    tx = build_payout_transaction(release_intent(w), recent_blockhash=w.ledger.blockhash())
    with pytest.raises(SigningError) as info:
        sign_partially(tx, SoftwareSigner(w.buyer))
    assert info.value.code == "signer_not_required"
    with pytest.raises(SigningError):
        sign_partially(tx, SoftwareSigner(Keypair()))


def test_bytes_altered_after_signing_are_detected_and_refused_by_the_runtime(w):
    intent = release_intent(w)
    tx = build_payout_transaction(intent, recent_blockhash=w.ledger.blockhash())
    tx = sign_partially(sign_partially(tx, SoftwareSigner(w.seller)), SoftwareSigner(w.arbitrator))
    raw = bytearray(bytes(tx))
    # The transfer's amount (u64 LE) is in the last instructions' data: change one byte of it.
    amount_bytes = AMOUNT.to_bytes(8, "little")
    at = raw.rindex(bytes([12]) + amount_bytes)
    raw[at + 1] ^= 0x01
    altered = decode_transaction(base64.b64encode(bytes(raw)).decode())
    with pytest.raises(SigningError) as info:
        require_complete(altered)
    assert info.value.code == "bad_signature"
    with pytest.raises(LedgerTransactionError):
        w.ledger.send(altered)
    assert w.ledger.token_balance(w.escrow.escrow_token_account) == AMOUNT


def _v0_transaction() -> str:
    key = Keypair()
    ix = transfer(
        TransferParams(from_pubkey=key.pubkey(), to_pubkey=Keypair().pubkey(), lamports=1)
    )
    msg = MessageV0.try_compile(key.pubkey(), [ix], [], Hash.default())
    return base64.b64encode(bytes(VersionedTransaction(msg, [key]))).decode()


@pytest.mark.parametrize(
    "data",
    ["not base64!!", base64.b64encode(b"\x01garbage").decode(), b"", _v0_transaction()],
    ids=["not-base64", "garbage", "empty", "versioned-v0"],
)
def test_malformed_input_is_refused(data):
    with pytest.raises(TransactionDecodeError) as info:
        decode_transaction(data)
    assert info.value.code == "malformed_transaction"
