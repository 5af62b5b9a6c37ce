"""Every direct transition of an escrow (mark_paid, release, cancel, dispute,
resolve, reclaim), for the native coin and the token kinds: the right party
in the right state moves exactly the right amounts and emits the event; any
other caller (including an outsider and the arbitrator acting alone), any
other state, and the wrong side of each time boundary reverts and moves
nothing (invariants I1, I2, I3)."""

from __future__ import annotations

import ape
import pytest

from tests.contracts.helpers import (
    DISPUTED,
    FUNDED,
    PAID,
    REASON_CANCEL,
    REASON_RECLAIM,
    REFUNDED,
    RELEASED,
    RESOLVED,
    next_block_at,
)

AMOUNT = 1_000_003


def to_state(escrow, id_, state, p):
    """Moves a FUNDED escrow to `state` by the parties' direct calls."""
    if state == FUNDED:
        pass
    elif state == PAID:
        escrow.mark_paid(id_, sender=p.buyer)
    elif state == DISPUTED:
        escrow.dispute(id_, sender=p.buyer)
    elif state == RELEASED:
        escrow.release(id_, sender=p.seller)
    elif state == REFUNDED:
        escrow.cancel(id_, sender=p.buyer)
    elif state == RESOLVED:
        escrow.dispute(id_, sender=p.seller)
        escrow.resolve(id_, 5000, sender=p.arbitrator)
    assert escrow.escrows(id_).state == state


# -------------------------------------------------------------------- mark_paid


def test_mark_paid_by_buyer(escrow, open_escrow, asset, buyer):
    id_ = open_escrow(asset, AMOUNT)
    tx = escrow.mark_paid(id_, sender=buyer)
    assert escrow.escrows(id_).state == PAID
    (log,) = tx.decode_logs(escrow.MarkedPaid)
    assert (log.id, log.buyer) == (id_, buyer)
    assert asset.balance(escrow) == AMOUNT


@pytest.mark.parametrize("who", ["seller", "arbitrator", "outsider"])
def test_mark_paid_by_others_reverts(escrow, open_escrow, native, parties, who):
    id_ = open_escrow(native, AMOUNT)
    with ape.reverts("Escrow: caller is not the buyer"):
        escrow.mark_paid(id_, sender=getattr(parties, who))
    assert escrow.escrows(id_).state == FUNDED


def test_mark_paid_at_payment_deadline_reverts(escrow, open_escrow, native, buyer):
    id_ = open_escrow(native, AMOUNT)
    pd = escrow.escrows(id_).payment_deadline
    with ape.reverts("Escrow: payment deadline passed"):
        escrow.mark_paid(id_, sender=buyer, **next_block_at(pd))


def test_mark_paid_just_before_payment_deadline(escrow, open_escrow, native, buyer):
    id_ = open_escrow(native, AMOUNT)
    pd = escrow.escrows(id_).payment_deadline
    escrow.mark_paid(id_, sender=buyer, **next_block_at(pd - 1))
    assert escrow.escrows(id_).state == PAID


@pytest.mark.parametrize("state", [PAID, DISPUTED, RELEASED, REFUNDED, RESOLVED])
def test_mark_paid_in_other_states_reverts(escrow, open_escrow, native, parties, state):
    id_ = open_escrow(native, AMOUNT)
    to_state(escrow, id_, state, parties)
    with ape.reverts("Escrow: not funded"):
        escrow.mark_paid(id_, sender=parties.buyer)


def test_actions_on_unknown_escrow_revert(escrow, parties):
    unknown = b"\x42" * 32
    with ape.reverts("Escrow: not funded"):
        escrow.mark_paid(unknown, sender=parties.buyer)
    with ape.reverts("Escrow: not releasable"):
        escrow.release(unknown, sender=parties.seller)
    with ape.reverts("Escrow: not cancellable"):
        escrow.cancel(unknown, sender=parties.buyer)
    with ape.reverts("Escrow: not disputable"):
        escrow.dispute(unknown, sender=parties.buyer)
    with ape.reverts("Escrow: not disputed"):
        escrow.resolve(unknown, 0, sender=parties.arbitrator)
    with ape.reverts("Escrow: not reclaimable"):
        escrow.reclaim(unknown, sender=parties.seller)


# ---------------------------------------------------------------------- release


@pytest.mark.parametrize("state", [FUNDED, PAID, DISPUTED])
def test_release_by_seller(escrow, open_escrow, any_asset, parties, state):
    id_ = open_escrow(any_asset, AMOUNT)
    to_state(escrow, id_, state, parties)
    buyer_before = any_asset.balance(parties.buyer)
    seller_before = any_asset.balance(parties.seller)
    tx = escrow.release(id_, sender=parties.seller)
    assert escrow.escrows(id_).state == RELEASED
    assert any_asset.balance(parties.buyer) == buyer_before + AMOUNT
    assert any_asset.balance(parties.seller) == seller_before
    assert any_asset.balance(escrow) == 0
    (log,) = tx.decode_logs(escrow.Released)
    assert (log.id, log.buyer, log.amount, log.fee) == (id_, parties.buyer, AMOUNT, 0)
    assert tx.decode_logs(escrow.PayoutDeferred) == []


@pytest.mark.parametrize("who", ["buyer", "arbitrator", "outsider"])
def test_release_by_others_reverts(escrow, open_escrow, asset, parties, who):
    id_ = open_escrow(asset, AMOUNT)
    escrow.dispute(id_, sender=parties.buyer)
    with ape.reverts("Escrow: caller is not the seller"):
        escrow.release(id_, sender=getattr(parties, who))
    assert asset.balance(escrow) == AMOUNT


@pytest.mark.parametrize("state", [RELEASED, REFUNDED, RESOLVED])
def test_release_when_final_reverts(escrow, open_escrow, native, parties, state):
    id_ = open_escrow(native, AMOUNT)
    to_state(escrow, id_, state, parties)
    with ape.reverts("Escrow: not releasable"):
        escrow.release(id_, sender=parties.seller)


# ----------------------------------------------------------------------- cancel


@pytest.mark.parametrize("state", [FUNDED, PAID])
def test_cancel_by_buyer_refunds_seller(escrow, open_escrow, any_asset, parties, state):
    id_ = open_escrow(any_asset, AMOUNT)
    to_state(escrow, id_, state, parties)
    seller_before = any_asset.balance(parties.seller)
    buyer_before = any_asset.balance(parties.buyer)
    tx = escrow.cancel(id_, sender=parties.buyer)
    assert escrow.escrows(id_).state == REFUNDED
    assert any_asset.balance(parties.seller) == seller_before + AMOUNT
    assert any_asset.balance(parties.buyer) == buyer_before
    assert any_asset.balance(escrow) == 0
    (log,) = tx.decode_logs(escrow.Refunded)
    assert (log.id, log.seller, log.amount, log.reason) == (
        id_,
        parties.seller,
        AMOUNT,
        REASON_CANCEL,
    )


@pytest.mark.parametrize("who", ["seller", "arbitrator", "outsider"])
def test_cancel_by_others_reverts(escrow, open_escrow, asset, parties, who):
    id_ = open_escrow(asset, AMOUNT)
    with ape.reverts("Escrow: caller is not the buyer"):
        escrow.cancel(id_, sender=getattr(parties, who))
    assert asset.balance(escrow) == AMOUNT


@pytest.mark.parametrize("state", [DISPUTED, RELEASED, REFUNDED, RESOLVED])
def test_cancel_in_other_states_reverts(escrow, open_escrow, native, parties, state):
    id_ = open_escrow(native, AMOUNT)
    to_state(escrow, id_, state, parties)
    with ape.reverts("Escrow: not cancellable"):
        escrow.cancel(id_, sender=parties.buyer)


# ---------------------------------------------------------------------- dispute


@pytest.mark.parametrize("state", [FUNDED, PAID])
@pytest.mark.parametrize("who", ["buyer", "seller"])
def test_dispute_by_a_party(escrow, open_escrow, native, parties, state, who):
    id_ = open_escrow(native, AMOUNT)
    to_state(escrow, id_, state, parties)
    by = getattr(parties, who)
    tx = escrow.dispute(id_, sender=by)
    assert escrow.escrows(id_).state == DISPUTED
    (log,) = tx.decode_logs(escrow.Disputed)
    assert (log.id, log.by) == (id_, by)


@pytest.mark.parametrize("who", ["arbitrator", "outsider"])
def test_dispute_by_others_reverts(escrow, open_escrow, native, parties, who):
    id_ = open_escrow(native, AMOUNT)
    with ape.reverts("Escrow: caller is not a party"):
        escrow.dispute(id_, sender=getattr(parties, who))


def test_dispute_at_deadline_reverts(escrow, open_escrow, native, parties):
    id_ = open_escrow(native, AMOUNT)
    escrow.mark_paid(id_, sender=parties.buyer)
    deadline = escrow.escrows(id_).deadline
    with ape.reverts("Escrow: deadline passed"):
        escrow.dispute(id_, sender=parties.buyer, **next_block_at(deadline))


def test_dispute_just_before_deadline(escrow, open_escrow, native, parties):
    id_ = open_escrow(native, AMOUNT)
    escrow.mark_paid(id_, sender=parties.buyer)
    deadline = escrow.escrows(id_).deadline
    escrow.dispute(id_, sender=parties.buyer, **next_block_at(deadline - 1))
    assert escrow.escrows(id_).state == DISPUTED


@pytest.mark.parametrize("state", [DISPUTED, RELEASED, REFUNDED, RESOLVED])
def test_dispute_in_other_states_reverts(escrow, open_escrow, native, parties, state):
    id_ = open_escrow(native, AMOUNT)
    to_state(escrow, id_, state, parties)
    with ape.reverts("Escrow: not disputable"):
        escrow.dispute(id_, sender=parties.seller)


# ---------------------------------------------------------------------- resolve


@pytest.mark.parametrize("bps", [0, 1, 3333, 5000, 9999, 10_000])
def test_resolve_splits(escrow, open_escrow, asset, parties, bps):
    id_ = open_escrow(asset, AMOUNT)
    escrow.dispute(id_, sender=parties.buyer)
    buyer_before = asset.balance(parties.buyer)
    seller_before = asset.balance(parties.seller)
    arb_before = asset.balance(parties.arbitrator)
    tx = escrow.resolve(id_, bps, sender=parties.arbitrator)
    to_buyer = AMOUNT * bps // 10_000
    assert escrow.escrows(id_).state == RESOLVED
    assert asset.balance(parties.buyer) == buyer_before + to_buyer
    assert asset.balance(parties.seller) == seller_before + AMOUNT - to_buyer
    assert asset.balance(parties.arbitrator) == arb_before  # the ruling pays the arbitrator nothing
    assert asset.balance(escrow) == 0
    (log,) = tx.decode_logs(escrow.Resolved)
    assert (log.id, log.arbitrator, log.buyer_bps) == (id_, parties.arbitrator, bps)
    assert (log.buyer_amount, log.seller_amount, log.fee) == (to_buyer, AMOUNT - to_buyer, 0)


@pytest.mark.parametrize("who", ["buyer", "seller", "outsider"])
def test_resolve_by_others_reverts(escrow, open_escrow, native, parties, who):
    id_ = open_escrow(native, AMOUNT)
    escrow.dispute(id_, sender=parties.buyer)
    with ape.reverts("Escrow: caller is not the arbitrator"):
        escrow.resolve(id_, 10_000, sender=getattr(parties, who))


@pytest.mark.parametrize("state", [FUNDED, PAID, RELEASED, REFUNDED, RESOLVED])
def test_arbitrator_alone_cannot_resolve_undisputed(escrow, open_escrow, native, parties, state):
    """I1: the arbitrator moves nothing unless a party opened a dispute."""
    id_ = open_escrow(native, AMOUNT)
    to_state(escrow, id_, state, parties)
    with ape.reverts("Escrow: not disputed"):
        escrow.resolve(id_, 10_000, sender=parties.arbitrator)


def test_resolve_refuses_bps_above_10000(escrow, open_escrow, native, parties):
    id_ = open_escrow(native, AMOUNT)
    escrow.dispute(id_, sender=parties.buyer)
    with ape.reverts("Escrow: buyer_bps above 10000"):
        escrow.resolve(id_, 10_001, sender=parties.arbitrator)
    assert escrow.escrows(id_).state == DISPUTED


# ---------------------------------------------------------------------- reclaim


def test_reclaim_unpaid_after_payment_deadline(escrow, open_escrow, asset, parties):
    id_ = open_escrow(asset, AMOUNT)
    pd = escrow.escrows(id_).payment_deadline
    seller_before = asset.balance(parties.seller)
    tx = escrow.reclaim(id_, sender=parties.seller, **next_block_at(pd))
    assert escrow.escrows(id_).state == REFUNDED
    assert asset.balance(parties.seller) == seller_before + AMOUNT
    assert asset.balance(escrow) == 0
    (log,) = tx.decode_logs(escrow.Refunded)
    assert (log.seller, log.amount, log.reason) == (parties.seller, AMOUNT, REASON_RECLAIM)


def test_reclaim_unpaid_before_payment_deadline_reverts(escrow, open_escrow, native, parties):
    id_ = open_escrow(native, AMOUNT)
    pd = escrow.escrows(id_).payment_deadline
    with ape.reverts("Escrow: payment deadline not passed"):
        escrow.reclaim(id_, sender=parties.seller, **next_block_at(pd - 1))


def test_reclaim_paid_after_deadline(escrow, open_escrow, asset, parties):
    """I3: paid but neither released nor disputed by the deadline."""
    id_ = open_escrow(asset, AMOUNT)
    escrow.mark_paid(id_, sender=parties.buyer)
    deadline = escrow.escrows(id_).deadline
    seller_before = asset.balance(parties.seller)
    escrow.reclaim(id_, sender=parties.seller, **next_block_at(deadline))
    assert asset.balance(parties.seller) == seller_before + AMOUNT
    assert escrow.escrows(id_).state == REFUNDED


def test_reclaim_paid_before_deadline_reverts(escrow, open_escrow, native, parties):
    id_ = open_escrow(native, AMOUNT)
    escrow.mark_paid(id_, sender=parties.buyer)
    deadline = escrow.escrows(id_).deadline
    with ape.reverts("Escrow: deadline not passed"):
        escrow.reclaim(id_, sender=parties.seller, **next_block_at(deadline - 1))


@pytest.mark.parametrize("who", ["buyer", "arbitrator", "outsider"])
def test_reclaim_by_others_reverts(escrow, open_escrow, native, parties, who):
    id_ = open_escrow(native, AMOUNT)
    deadline = escrow.escrows(id_).deadline
    with ape.reverts("Escrow: caller is not the seller"):
        escrow.reclaim(id_, sender=getattr(parties, who), **next_block_at(deadline))


@pytest.mark.parametrize("state", [DISPUTED, RELEASED, REFUNDED, RESOLVED])
def test_reclaim_in_other_states_reverts(escrow, open_escrow, native, parties, state):
    """A disputed escrow has no timeout: the seller cannot take it back alone."""
    id_ = open_escrow(native, AMOUNT)
    to_state(escrow, id_, state, parties)
    deadline = escrow.escrows(id_).deadline
    with ape.reverts("Escrow: not reclaimable"):
        escrow.reclaim(id_, sender=parties.seller, **next_block_at(deadline + 1))
