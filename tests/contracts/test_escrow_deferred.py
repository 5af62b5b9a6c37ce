"""Deferred payouts: a push that fails (a blocklisted recipient of a
blocklisting token, a contract that reverts on receiving the native coin, a
token that returns false) does not block the ruling or the other party's
payout; the amount is owed to the recipient (PayoutDeferred) and only that
recipient can take it, once, with `claim`. The contract's balance stays the
sum of open escrows plus what is owed."""

from __future__ import annotations

import ape
from ape.utils import ZERO_ADDRESS

from tests.contracts.helpers import Asset, new_ref, now

AMOUNT = 2_000_000


def test_release_to_blocklisted_buyer_is_deferred(escrow, open_escrow, blocklist_token, parties):
    token = Asset("BlocklistToken", blocklist_token)
    escrow.set_fee(100, parties.fee_recipient, sender=parties.owner)
    id_ = open_escrow(token, AMOUNT)
    blocklist_token.set_blocked(parties.buyer, True, sender=parties.owner)
    tx = escrow.release(id_, sender=parties.seller)
    fee = AMOUNT // 100
    assert escrow.escrows(id_).state == 4
    assert token.balance(parties.buyer) == 0
    assert token.balance(parties.fee_recipient) == fee  # the fee still went out
    assert escrow.owed(parties.buyer, blocklist_token) == AMOUNT - fee
    assert token.balance(escrow) == AMOUNT - fee
    (deferred,) = tx.decode_logs(escrow.PayoutDeferred)
    assert (deferred.id, deferred.to, deferred.token, deferred.amount) == (
        id_,
        parties.buyer,
        blocklist_token,
        AMOUNT - fee,
    )
    (released,) = tx.decode_logs(escrow.Released)
    assert (released.amount, released.fee) == (AMOUNT - fee, fee)

    # Still blocked: claiming reverts and the debt stays.
    with ape.reverts("BlocklistToken: receiver blocked"):
        escrow.claim(blocklist_token, sender=parties.buyer)
    assert escrow.owed(parties.buyer, blocklist_token) == AMOUNT - fee
    # Nobody else can take it.
    with ape.reverts("Escrow: nothing owed"):
        escrow.claim(blocklist_token, sender=parties.seller)

    blocklist_token.set_blocked(parties.buyer, False, sender=parties.owner)
    tx = escrow.claim(blocklist_token, sender=parties.buyer)
    assert token.balance(parties.buyer) == AMOUNT - fee
    assert escrow.owed(parties.buyer, blocklist_token) == 0
    assert token.balance(escrow) == 0
    (claimed,) = tx.decode_logs(escrow.Claimed)
    assert (claimed.to, claimed.token, claimed.amount) == (
        parties.buyer,
        blocklist_token,
        AMOUNT - fee,
    )
    with ape.reverts("Escrow: nothing owed"):
        escrow.claim(blocklist_token, sender=parties.buyer)


def test_blocklisted_buyer_cannot_block_the_sellers_share(
    escrow, open_escrow, blocklist_token, parties
):
    token = Asset("BlocklistToken", blocklist_token)
    id_ = open_escrow(token, AMOUNT)
    escrow.dispute(id_, sender=parties.seller)
    blocklist_token.set_blocked(parties.buyer, True, sender=parties.owner)
    seller_before = token.balance(parties.seller)
    tx = escrow.resolve(id_, 7000, sender=parties.arbitrator)
    assert token.balance(parties.seller) == seller_before + AMOUNT * 3 // 10
    assert escrow.owed(parties.buyer, blocklist_token) == AMOUNT * 7 // 10
    assert [log.to for log in tx.decode_logs(escrow.PayoutDeferred)] == [parties.buyer]


def test_refund_to_blocklisted_seller_is_deferred(escrow, open_escrow, blocklist_token, parties):
    token = Asset("BlocklistToken", blocklist_token)
    id_ = open_escrow(token, AMOUNT)
    blocklist_token.set_blocked(parties.seller, True, sender=parties.owner)
    escrow.cancel(id_, sender=parties.buyer)
    assert escrow.escrows(id_).state == 5
    assert escrow.owed(parties.seller, blocklist_token) == AMOUNT
    assert token.balance(escrow) == AMOUNT


def test_blocklisted_fee_recipient_does_not_block_release(
    escrow, open_escrow, blocklist_token, parties
):
    token = Asset("BlocklistToken", blocklist_token)
    escrow.set_fee(500, parties.fee_recipient, sender=parties.owner)
    id_ = open_escrow(token, AMOUNT)
    blocklist_token.set_blocked(parties.fee_recipient, True, sender=parties.owner)
    buyer_before = token.balance(parties.buyer)
    escrow.release(id_, sender=parties.seller)
    assert token.balance(parties.buyer) == buyer_before + AMOUNT * 95 // 100
    assert escrow.owed(parties.fee_recipient, blocklist_token) == AMOUNT * 5 // 100


def open_for_receiver(escrow, receiver, parties, amount=AMOUNT):
    """A native escrow whose buyer is the reverting receiver contract."""
    ref = new_ref()
    escrow.open(
        ref, receiver, parties.arbitrator, ZERO_ADDRESS, amount, 3600, now() + 10_000,
        sender=parties.seller, value=amount,
    )  # fmt: skip
    return escrow.escrow_id(parties.seller, ref)


def test_release_to_reverting_receiver_is_deferred(escrow, receiver, native, parties):
    id_ = open_for_receiver(escrow, receiver, parties)
    tx = escrow.release(id_, sender=parties.seller)
    assert native.balance(receiver) == 0
    assert escrow.owed(receiver, ZERO_ADDRESS) == AMOUNT
    assert native.balance(escrow) == AMOUNT
    (deferred,) = tx.decode_logs(escrow.PayoutDeferred)
    assert (deferred.to, deferred.token, deferred.amount) == (receiver, ZERO_ADDRESS, AMOUNT)

    claim = escrow.claim.encode_input(ZERO_ADDRESS)
    with ape.reverts():  # still rejecting: the claim's transfer fails
        receiver.forward(escrow, claim, sender=parties.buyer)
    assert escrow.owed(receiver, ZERO_ADDRESS) == AMOUNT

    receiver.set_rejecting(False, sender=parties.buyer)
    receiver.forward(escrow, claim, sender=parties.buyer)
    assert native.balance(receiver) == AMOUNT
    assert escrow.owed(receiver, ZERO_ADDRESS) == 0
    assert native.balance(escrow) == 0


def test_reverting_receiver_cannot_block_the_sellers_share(escrow, receiver, native, parties):
    id_ = open_for_receiver(escrow, receiver, parties)
    receiver.forward(escrow, escrow.dispute.encode_input(id_), sender=parties.buyer)
    seller_before = native.balance(parties.seller)
    escrow.resolve(id_, 2500, sender=parties.arbitrator)
    assert native.balance(parties.seller) == seller_before + AMOUNT * 3 // 4
    assert escrow.owed(receiver, ZERO_ADDRESS) == AMOUNT // 4
    assert native.balance(escrow) == AMOUNT // 4


def test_false_returning_push_is_deferred(escrow, open_escrow, false_token, parties):
    token = Asset("FalseToken", false_token)
    id_ = open_escrow(token, AMOUNT)
    buyer_before = token.balance(parties.buyer)
    false_token.set_failing(True, sender=parties.owner)
    tx = escrow.release(id_, sender=parties.seller)
    assert token.balance(parties.buyer) == buyer_before
    assert escrow.owed(parties.buyer, false_token) == AMOUNT
    assert len(tx.decode_logs(escrow.PayoutDeferred)) == 1
    with ape.reverts("Escrow: transfer failed"):
        escrow.claim(false_token, sender=parties.buyer)
    false_token.set_failing(False, sender=parties.owner)
    escrow.claim(false_token, sender=parties.buyer)
    assert token.balance(parties.buyer) == buyer_before + AMOUNT
    assert token.balance(escrow) == 0


def test_owed_is_per_recipient_and_token(escrow, open_escrow, blocklist_token, receiver, parties):
    token = Asset("BlocklistToken", blocklist_token)
    id_ = open_escrow(token, AMOUNT)
    blocklist_token.set_blocked(parties.buyer, True, sender=parties.owner)
    escrow.release(id_, sender=parties.seller)
    assert escrow.owed(parties.buyer, blocklist_token) == AMOUNT
    assert escrow.owed(parties.buyer, ZERO_ADDRESS) == 0
    with ape.reverts("Escrow: nothing owed"):
        escrow.claim(ZERO_ADDRESS, sender=parties.buyer)
    with ape.reverts("Escrow: nothing owed"):
        escrow.claim(blocklist_token, sender=parties.outsider)


def test_payout_in_a_token_without_code_is_deferred(
    escrow, open_escrow, test_token, parties, chain
):
    """A call to an account without code 'succeeds' and moves nothing: such a
    push is deferred, and claiming it reverts instead of zeroing the debt."""
    token = Asset("TestToken", test_token)
    id_ = open_escrow(token, AMOUNT)
    code = chain.provider.make_request("eth_getCode", [test_token.address, "latest"])
    chain.provider.make_request("anvil_setCode", [test_token.address, "0x"])
    tx = escrow.release(id_, sender=parties.seller)
    assert escrow.owed(parties.buyer, test_token) == AMOUNT
    assert len(tx.decode_logs(escrow.PayoutDeferred)) == 1
    with ape.reverts("Escrow: token has no code"):
        escrow.claim(test_token, sender=parties.buyer)
    assert escrow.owed(parties.buyer, test_token) == AMOUNT
    chain.provider.make_request("anvil_setCode", [test_token.address, code])
    escrow.claim(test_token, sender=parties.buyer)
    assert token.balance(parties.buyer) == AMOUNT
