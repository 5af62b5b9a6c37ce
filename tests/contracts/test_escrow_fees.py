"""The protocol fee and the owner: `set_fee` is owner-only, capped at
MAX_FEE_BPS and needs a recipient; the fee (and its recipient) is
snapshotted at opening so a later change never touches an open escrow; it is
charged only on what goes to the buyer, rounded down (in the buyer's favour),
and amounts always add up to the escrowed amount. Ownership moves only in two
steps (transfer_ownership / accept_ownership)."""

from __future__ import annotations

import ape
import pytest
from ape.utils import ZERO_ADDRESS

from tests.contracts.helpers import next_block_at


def test_set_fee_by_owner(escrow, owner, fee_recipient):
    tx = escrow.set_fee(250, fee_recipient, sender=owner)
    assert (escrow.fee_bps(), escrow.fee_recipient()) == (250, fee_recipient.address)
    (log,) = tx.decode_logs(escrow.FeeChanged)
    assert (log.fee_bps, log.recipient) == (250, fee_recipient)
    escrow.set_fee(0, ZERO_ADDRESS, sender=owner)
    assert (escrow.fee_bps(), escrow.fee_recipient()) == (0, ZERO_ADDRESS)


@pytest.mark.parametrize("who", ["seller", "arbitrator", "fee_recipient"])
def test_set_fee_by_others_reverts(escrow, parties, who):
    with ape.reverts("Escrow: caller is not the owner"):
        escrow.set_fee(100, getattr(parties, who), sender=getattr(parties, who))
    assert escrow.fee_bps() == 0


def test_set_fee_is_capped(escrow, owner, fee_recipient):
    assert escrow.MAX_FEE_BPS() == 500
    escrow.set_fee(500, fee_recipient, sender=owner)
    with ape.reverts("Escrow: fee too high"):
        escrow.set_fee(501, fee_recipient, sender=owner)
    assert escrow.fee_bps() == 500


def test_set_fee_needs_a_recipient(escrow, owner):
    with ape.reverts("Escrow: zero fee recipient"):
        escrow.set_fee(1, ZERO_ADDRESS, sender=owner)


@pytest.mark.parametrize(
    ("amount", "fee_bps", "fee"),
    [
        (1_000_000, 250, 25_000),
        (1_000_001, 250, 25_000),  # 25000.025 rounds down
        (39, 250, 0),  # 0.975 rounds down: tiny amounts pay no fee
        (40, 250, 1),
        (10**23, 500, 5 * 10**21),
        (12_345, 0, 0),
    ],
)
def test_release_fee_math(escrow, open_escrow, asset, parties, amount, fee_bps, fee):
    if fee_bps:
        escrow.set_fee(fee_bps, parties.fee_recipient, sender=parties.owner)
    id_ = open_escrow(asset, amount)
    assert escrow.escrows(id_).fee_bps == fee_bps
    buyer_before = asset.balance(parties.buyer)
    recipient_before = asset.balance(parties.fee_recipient)
    tx = escrow.release(id_, sender=parties.seller)
    assert asset.balance(parties.buyer) == buyer_before + amount - fee
    assert asset.balance(parties.fee_recipient) == recipient_before + fee
    assert asset.balance(escrow) == 0
    (log,) = tx.decode_logs(escrow.Released)
    assert (log.amount, log.fee) == (amount - fee, fee)


@pytest.mark.parametrize(
    ("amount", "bps", "buyer_gross", "fee"),
    [
        (1_000_000, 5000, 500_000, 15_000),
        (1_000_003, 3333, 333_300, 9_999),  # 333300.9999 -> 333300; fee 9999.0 exact
        (999, 3333, 332, 9),  # 332.9667 -> 332; 9.96 -> 9
        (1_000_000, 0, 0, 0),  # all to the seller: free
        (1_000_000, 10_000, 1_000_000, 30_000),
    ],
)
def test_split_fee_math(escrow, open_escrow, asset, parties, amount, bps, buyer_gross, fee):
    escrow.set_fee(300, parties.fee_recipient, sender=parties.owner)
    id_ = open_escrow(asset, amount)
    escrow.dispute(id_, sender=parties.seller)
    before = {k: asset.balance(getattr(parties, k)) for k in ("buyer", "seller", "fee_recipient")}
    tx = escrow.resolve(id_, bps, sender=parties.arbitrator)
    assert asset.balance(parties.buyer) == before["buyer"] + buyer_gross - fee
    assert asset.balance(parties.seller) == before["seller"] + amount - buyer_gross
    assert asset.balance(parties.fee_recipient) == before["fee_recipient"] + fee
    assert asset.balance(escrow) == 0
    (log,) = tx.decode_logs(escrow.Resolved)
    assert (log.buyer_amount, log.seller_amount, log.fee) == (
        buyer_gross - fee,
        amount - buyer_gross,
        fee,
    )


def test_refunds_are_free(escrow, open_escrow, native, parties):
    escrow.set_fee(500, parties.fee_recipient, sender=parties.owner)
    recipient_before = native.balance(parties.fee_recipient)
    id_ = open_escrow(native, 1_000_000)
    seller_before = native.balance(parties.seller)
    escrow.cancel(id_, sender=parties.buyer)
    assert native.balance(parties.seller) == seller_before + 1_000_000
    id2 = open_escrow(native, 1_000_000)
    pd = escrow.escrows(id2).payment_deadline
    escrow.reclaim(id2, sender=parties.seller, **next_block_at(pd))
    assert native.balance(parties.seller) == seller_before + 1_000_000
    assert native.balance(parties.fee_recipient) == recipient_before


def test_fee_is_snapshotted_at_opening(escrow, open_escrow, token_asset, parties):
    escrow.set_fee(100, parties.fee_recipient, sender=parties.owner)
    id_ = open_escrow(token_asset, 1_000_000)
    escrow.set_fee(500, parties.outsider, sender=parties.owner)
    later = open_escrow(token_asset, 1_000_000)
    e = escrow.escrows(id_)
    assert (e.fee_bps, e.fee_recipient) == (100, parties.fee_recipient.address)
    assert escrow.escrows(later).fee_bps == 500
    recipient_before = token_asset.balance(parties.fee_recipient)
    outsider_before = token_asset.balance(parties.outsider)
    escrow.release(id_, sender=parties.seller)
    assert token_asset.balance(parties.fee_recipient) == recipient_before + 10_000
    assert token_asset.balance(parties.outsider) == outsider_before
    escrow.release(later, sender=parties.seller)
    assert token_asset.balance(parties.outsider) == outsider_before + 50_000


# -------------------------------------------------------------------- ownership


def test_ownership_moves_in_two_steps(escrow, owner, outsider, fee_recipient):
    assert escrow.owner() == owner.address
    tx = escrow.transfer_ownership(outsider, sender=owner)
    (started,) = tx.decode_logs(escrow.OwnershipTransferStarted)
    assert (started.previous_owner, started.new_owner) == (owner, outsider)
    assert escrow.owner() == owner.address  # not yet
    assert escrow.pending_owner() == outsider.address
    tx = escrow.accept_ownership(sender=outsider)
    (done,) = tx.decode_logs(escrow.OwnershipTransferred)
    assert (done.previous_owner, done.new_owner) == (owner, outsider)
    assert escrow.owner() == outsider.address
    escrow.set_fee(10, fee_recipient, sender=outsider)
    with ape.reverts("Escrow: caller is not the owner"):
        escrow.set_fee(20, fee_recipient, sender=owner)


def test_transfer_ownership_by_others_reverts(escrow, outsider):
    with ape.reverts("ownable: caller is not the owner"):
        escrow.transfer_ownership(outsider, sender=outsider)


def test_accept_ownership_by_others_reverts(escrow, owner, outsider, seller):
    escrow.transfer_ownership(outsider, sender=owner)
    with ape.reverts("ownable_2step: caller is not the new owner"):
        escrow.accept_ownership(sender=seller)
    assert escrow.owner() == owner.address


def test_owner_cannot_move_escrowed_funds(escrow, open_escrow, native, parties):
    """I1: the owner's key has no power over escrows."""
    id_ = open_escrow(native, 1_000_000)
    escrow.dispute(id_, sender=parties.buyer)
    with ape.reverts("Escrow: caller is not the seller"):
        escrow.release(id_, sender=parties.owner)
    with ape.reverts("Escrow: caller is not the arbitrator"):
        escrow.resolve(id_, 10_000, sender=parties.owner)
    with ape.reverts("Escrow: nothing owed"):
        escrow.claim(native.address, sender=parties.owner)
    assert native.balance(escrow) == 1_000_000
