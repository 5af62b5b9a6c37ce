"""Re-entrancy: a token that calls back into the escrow from inside
transferFrom / transfer, and a native-coin receiver that calls back when
paid, get nowhere. The call-back is one that would succeed on its own (the
attacker contract is a party of another escrow, or is owed a payout), so its
failure is the @nonreentrant lock, and nothing is credited or paid twice."""

from __future__ import annotations

from ape.utils import ZERO_ADDRESS

from tests.contracts.helpers import FUNDED, PAID, Asset, new_ref, now

AMOUNT = 3_000_000


def open_with_buyer(escrow, parties, buyer, asset, amount=AMOUNT):
    ref = new_ref()
    escrow.open(
        ref, buyer, parties.arbitrator, asset.address, amount, 3600, now() + 10_000,
        sender=parties.seller, value=amount if asset.native else 0,
    )  # fmt: skip
    return escrow.escrow_id(parties.seller, ref)


def test_token_hook_works_outside_the_escrow(escrow, reentrant_token, native, parties):
    """Control: the armed call-back succeeds when no escrow call is running."""
    victim = open_with_buyer(escrow, parties, reentrant_token.address, native)
    reentrant_token.arm(escrow, escrow.mark_paid.encode_input(victim), sender=parties.outsider)
    reentrant_token.transfer(parties.buyer, 1, sender=parties.outsider)
    assert (reentrant_token.hook_calls(), reentrant_token.hook_successes()) == (1, 1)
    assert escrow.escrows(victim).state == PAID


def test_token_reentering_during_open_fails(escrow, reentrant_token, native, parties):
    token = Asset("ReentrantToken", reentrant_token)
    victim = open_with_buyer(escrow, parties, reentrant_token.address, native)
    reentrant_token.arm(escrow, escrow.mark_paid.encode_input(victim), sender=parties.outsider)
    id_ = open_with_buyer(escrow, parties, parties.buyer, token)
    assert (reentrant_token.hook_calls(), reentrant_token.hook_successes()) == (1, 0)
    assert escrow.escrows(victim).state == FUNDED
    assert escrow.escrows(id_).state == FUNDED
    assert token.balance(escrow) == AMOUNT


def test_token_reentering_during_release_fails(escrow, reentrant_token, native, parties):
    token = Asset("ReentrantToken", reentrant_token)
    victim = open_with_buyer(escrow, parties, reentrant_token.address, native)
    id_ = open_with_buyer(escrow, parties, parties.buyer, token)
    reentrant_token.arm(escrow, escrow.mark_paid.encode_input(victim), sender=parties.outsider)
    buyer_before = token.balance(parties.buyer)
    escrow.release(id_, sender=parties.seller)
    assert (reentrant_token.hook_calls(), reentrant_token.hook_successes()) == (1, 0)
    assert escrow.escrows(victim).state == FUNDED
    assert token.balance(parties.buyer) == buyer_before + AMOUNT
    assert token.balance(escrow) == 0
    assert escrow.owed(parties.buyer, reentrant_token) == 0


def test_receiver_reentering_during_payout_fails(escrow, receiver, native, parties):
    receiver.set_rejecting(False, sender=parties.buyer)
    paid = open_with_buyer(escrow, parties, receiver.address, native)
    victim = open_with_buyer(escrow, parties, receiver.address, native)
    receiver.arm(escrow, escrow.mark_paid.encode_input(victim), sender=parties.buyer)
    escrow.release(paid, sender=parties.seller)
    assert (receiver.hook_calls(), receiver.hook_successes()) == (1, 0)
    assert escrow.escrows(victim).state == FUNDED
    assert native.balance(receiver) == AMOUNT
    assert native.balance(escrow) == AMOUNT  # the victim escrow only


def test_receiver_cannot_claim_twice(escrow, receiver, native, parties):
    """A receiver owed a payout re-enters claim from inside its own claim."""
    paid = open_with_buyer(escrow, parties, receiver.address, native)
    escrow.release(paid, sender=parties.seller)  # rejected: owed
    assert escrow.owed(receiver, ZERO_ADDRESS) == AMOUNT
    other = open_with_buyer(escrow, parties, receiver.address, native)
    escrow.release(other, sender=parties.seller)  # owed twice the amount now
    assert escrow.owed(receiver, ZERO_ADDRESS) == 2 * AMOUNT

    receiver.set_rejecting(False, sender=parties.buyer)
    claim = escrow.claim.encode_input(ZERO_ADDRESS)
    receiver.arm(escrow, claim, sender=parties.buyer)
    receiver.forward(escrow, claim, sender=parties.buyer)
    assert (receiver.hook_calls(), receiver.hook_successes()) == (1, 0)
    assert native.balance(receiver) == 2 * AMOUNT
    assert escrow.owed(receiver, ZERO_ADDRESS) == 0
    assert native.balance(escrow) == 0
