"""Opening an escrow: `open` for the native coin and every token kind
(standard, USDT-style no-return, false-returning, blocklisting, reentrant),
`open_with_permit` (EIP-2612, tolerant of a front-run permit) and
`open_relayed` (seller-signed EIP-712 Open, funds from the seller only).
Proves each positive path moves exactly `amount` into the contract and emits
Opened, and that every refusal (bad parties, amounts, times, value, tokens
that return false or charge a transfer fee, bad or replayed signatures)
reverts with its reason and moves nothing."""

from __future__ import annotations

import ape
import pytest
from ape.utils import ZERO_ADDRESS
from eth_abi import encode
from eth_utils import keccak

from tests.contracts.helpers import (
    FUNDED,
    digest,
    new_ref,
    now,
    open_message,
    sign,
    sign_permit,
)


def open_args(buyer, arbitrator, token, amount, window=3600, deadline=None):
    deadline = deadline if deadline is not None else now() + window + 7200
    return (buyer, arbitrator, token, amount, window, deadline)


def test_open_funds_the_escrow(escrow, any_asset, seller, buyer, arbitrator):
    amount = 123_456_789
    ref = new_ref()
    seller_before = any_asset.balance(seller)
    args = open_args(buyer, arbitrator, any_asset.address, amount)
    tx = escrow.open(ref, *args, sender=seller, value=amount if any_asset.native else 0)

    id_ = keccak(encode(["address", "bytes32"], [seller.address, ref]))
    assert escrow.escrow_id(seller, ref) == id_
    assert any_asset.balance(escrow) == amount
    assert any_asset.balance(seller) == seller_before - amount
    e = escrow.escrows(id_)
    assert (e.seller, e.buyer, e.arbitrator) == (seller.address, buyer.address, arbitrator.address)
    assert (e.token, e.amount, e.state, e.nonce) == (any_asset.address, amount, FUNDED, 0)
    assert e.funded_at == tx.timestamp
    assert e.payment_deadline == tx.timestamp + 3600
    assert e.deadline == args[-1]
    assert (e.fee_bps, e.fee_recipient) == (0, ZERO_ADDRESS)

    (log,) = tx.decode_logs(escrow.Opened)
    assert log.id == id_
    assert (log.seller, log.buyer, log.arbitrator) == (seller, buyer, arbitrator)
    assert (log.token, log.amount, log.fee_bps) == (any_asset.address, amount, 0)
    assert (log.payment_deadline, log.deadline, log.ref) == (e.payment_deadline, e.deadline, ref)


def test_open_returns_the_id(escrow, seller, buyer, arbitrator):
    ref = new_ref()
    args = open_args(buyer, arbitrator, ZERO_ADDRESS, 5)
    returned = escrow.open.call(ref, *args, sender=seller, value=5)
    assert returned == escrow.escrow_id(seller, ref)


def test_same_ref_for_another_seller_is_another_escrow(
    escrow, open_escrow, native, seller, buyer, arbitrator, outsider
):
    ref = new_ref()
    id1 = open_escrow(native, 10, ref=ref)
    # Someone else using the same ref cannot take or block the seller's id.
    id2 = open_escrow(native, 10, ref=ref, seller=outsider)
    assert id1 != id2
    assert escrow.escrows(id1).seller == seller.address
    assert escrow.escrows(id2).seller == outsider.address


def test_open_twice_reverts(escrow, asset, seller, buyer, arbitrator):
    ref = new_ref()
    args = open_args(buyer, arbitrator, asset.address, 10)
    value = 10 if asset.native else 0
    escrow.open(ref, *args, sender=seller, value=value)
    with ape.reverts("Escrow: id taken"):
        escrow.open(ref, *args, sender=seller, value=value)
    assert asset.balance(escrow) == 10


@pytest.mark.parametrize(
    ("who", "reason"),
    [
        ("zero_buyer", "Escrow: zero buyer"),
        ("zero_arbitrator", "Escrow: zero arbitrator"),
        ("buyer_is_seller", "Escrow: parties not distinct"),
        ("arbitrator_is_seller", "Escrow: parties not distinct"),
        ("arbitrator_is_buyer", "Escrow: parties not distinct"),
    ],
)
def test_open_refuses_bad_parties(escrow, seller, buyer, arbitrator, who, reason):
    b, a = {
        "zero_buyer": (ZERO_ADDRESS, arbitrator),
        "zero_arbitrator": (buyer, ZERO_ADDRESS),
        "buyer_is_seller": (seller, arbitrator),
        "arbitrator_is_seller": (buyer, seller),
        "arbitrator_is_buyer": (buyer, buyer),
    }[who]
    with ape.reverts(reason):
        escrow.open(new_ref(), *open_args(b, a, ZERO_ADDRESS, 10), sender=seller, value=10)


def test_open_refuses_zero_amount(escrow, seller, buyer, arbitrator):
    with ape.reverts("Escrow: zero amount"):
        escrow.open(new_ref(), *open_args(buyer, arbitrator, ZERO_ADDRESS, 0), sender=seller)


def test_open_refuses_zero_payment_window(escrow, seller, buyer, arbitrator):
    args = open_args(buyer, arbitrator, ZERO_ADDRESS, 10, window=0)
    with ape.reverts("Escrow: zero payment window"):
        escrow.open(new_ref(), *args, sender=seller, value=10)


def test_open_refuses_deadline_not_after_payment_deadline(escrow, seller, buyer, arbitrator):
    # The next block is not older than the head, so a deadline of
    # head + window is at best equal to the payment deadline.
    args = open_args(buyer, arbitrator, ZERO_ADDRESS, 10, window=100, deadline=now() + 100)
    with ape.reverts("Escrow: deadline before payment deadline"):
        escrow.open(new_ref(), *args, sender=seller, value=10)


@pytest.mark.parametrize("value", [0, 9, 11])
def test_open_native_refuses_wrong_value(escrow, seller, buyer, arbitrator, value):
    with ape.reverts("Escrow: wrong value"):
        escrow.open(
            new_ref(), *open_args(buyer, arbitrator, ZERO_ADDRESS, 10), sender=seller, value=value
        )


def test_open_token_refuses_value(escrow, token_asset, seller, buyer, arbitrator):
    args = open_args(buyer, arbitrator, token_asset.address, 10)
    with ape.reverts("Escrow: value with token"):
        escrow.open(new_ref(), *args, sender=seller, value=1)


def test_open_refuses_token_without_code(escrow, seller, buyer, arbitrator, outsider):
    args = open_args(buyer, arbitrator, outsider.address, 10)
    with ape.reverts("Escrow: token is not a contract"):
        escrow.open(new_ref(), *args, sender=seller)


def test_open_token_without_allowance_reverts(escrow, test_token, fresh, buyer, arbitrator):
    test_token.mint(fresh, 10, sender=fresh)
    args = open_args(buyer, arbitrator, test_token.address, 10)
    with ape.reverts("erc20: insufficient allowance"):
        escrow.open(new_ref(), *args, sender=fresh)
    assert test_token.balanceOf(escrow) == 0


def test_open_usdt_without_allowance_reverts(escrow, usdt, fresh, buyer, arbitrator):
    usdt.mint(fresh, 10, sender=fresh)
    with ape.reverts("erc20: insufficient allowance"):
        escrow.open(new_ref(), *open_args(buyer, arbitrator, usdt.address, 10), sender=fresh)
    assert usdt.balanceOf(escrow) == 0


def test_open_refuses_false_returning_token(escrow, false_token, fresh, buyer, arbitrator):
    false_token.mint(fresh, 10, sender=fresh)
    false_token.approve(escrow, 10, sender=fresh)
    false_token.set_failing(True, sender=fresh)
    args = open_args(buyer, arbitrator, false_token.address, 10)
    with ape.reverts("Escrow: transferFrom failed"):
        escrow.open(new_ref(), *args, sender=fresh)
    # Short allowance: the token returns false rather than reverting.
    false_token.set_failing(False, sender=fresh)
    false_token.approve(escrow, 9, sender=fresh)
    with ape.reverts("Escrow: transferFrom failed"):
        escrow.open(new_ref(), *args, sender=fresh)
    assert false_token.balanceOf(fresh) == 10
    assert false_token.balanceOf(escrow) == 0


def test_open_refuses_fee_on_transfer_token(escrow, fee_token, fresh, buyer, arbitrator):
    fee_token.mint(fresh, 10_000, sender=fresh)
    fee_token.approve(escrow, 10_000, sender=fresh)
    args = open_args(buyer, arbitrator, fee_token.address, 10_000)
    with ape.reverts("Escrow: fee-on-transfer"):
        escrow.open(new_ref(), *args, sender=fresh)
    assert fee_token.balanceOf(fresh) == 10_000
    assert fee_token.balanceOf(escrow) == 0


def test_open_refuses_blocklisted_seller(escrow, blocklist_token, owner, seller, buyer, arbitrator):
    blocklist_token.set_blocked(seller, True, sender=owner)
    with ape.reverts("BlocklistToken: sender blocked"):
        escrow.open(
            new_ref(), *open_args(buyer, arbitrator, blocklist_token.address, 10), sender=seller
        )


# ------------------------------------------------------------ open_with_permit


def test_open_with_permit(escrow, test_token, fresh, buyer, arbitrator):
    test_token.mint(fresh, 500, sender=fresh)
    v, r, s = sign_permit(fresh, test_token, escrow.address, 500, now() + 600)
    ref = new_ref()
    args = open_args(buyer, arbitrator, test_token.address, 500)
    tx = escrow.open_with_permit(ref, *args, now() + 600, v, r, s, sender=fresh)
    assert test_token.balanceOf(escrow) == 500
    assert test_token.balanceOf(fresh) == 0
    assert escrow.escrows(escrow.escrow_id(fresh, ref)).state == FUNDED
    assert len(tx.decode_logs(escrow.Opened)) == 1


def test_open_with_permit_survives_a_front_run_permit(
    escrow, test_token, fresh, buyer, arbitrator, outsider
):
    test_token.mint(fresh, 500, sender=fresh)
    deadline = now() + 600
    v, r, s = sign_permit(fresh, test_token, escrow.address, 500, deadline)
    # Someone copies the permit from the mempool and submits it first.
    test_token.permit(fresh, escrow, 500, deadline, v, r, s, sender=outsider)
    args = open_args(buyer, arbitrator, test_token.address, 500)
    escrow.open_with_permit(new_ref(), *args, deadline, v, r, s, sender=fresh)
    assert test_token.balanceOf(escrow) == 500


def test_open_with_permit_refuses_bad_permit(
    escrow, test_token, fresh, buyer, arbitrator, outsider
):
    test_token.mint(fresh, 500, sender=fresh)
    # Signed by someone else than the seller.
    v, r, s = sign_permit(outsider, test_token, escrow.address, 500, now() + 600)
    args = open_args(buyer, arbitrator, test_token.address, 500)
    with ape.reverts():
        escrow.open_with_permit(new_ref(), *args, now() + 600, v, r, s, sender=fresh)
    assert test_token.balanceOf(escrow) == 0


def test_open_with_permit_refuses_native(escrow, fresh, buyer, arbitrator):
    args = open_args(buyer, arbitrator, ZERO_ADDRESS, 500)
    with ape.reverts("Escrow: permit needs a token"):
        escrow.open_with_permit(new_ref(), *args, 0, 0, b"\0" * 32, b"\0" * 32, sender=fresh)


# ----------------------------------------------------------------- open_relayed


def relayed_open(escrow, seller, buyer, arbitrator, token, amount, *, expiry=None, ref=None):
    """Fields and the seller's signature of an Open instruction."""
    fields = {
        "seller": seller.address,
        "ref": ref or new_ref(),
        "buyer": buyer.address,
        "arbitrator": arbitrator.address,
        "token": token.address,
        "amount": amount,
        "paymentWindow": 3600,
        "deadline": now() + 3600 + 7200,
        "expiry": expiry if expiry is not None else now() + 600,
    }
    return fields, sign(seller, open_message(escrow, **fields))


def call_open_relayed(escrow, fields, sig, permit, sender):
    f = fields
    return escrow.open_relayed(
        f["seller"], f["ref"], f["buyer"], f["arbitrator"], f["token"], f["amount"],
        f["paymentWindow"], f["deadline"], f["expiry"], sig, *permit, sender=sender,
    )  # fmt: skip


NO_PERMIT = (0, 0, b"\0" * 32, b"\0" * 32)


def test_open_digest_matches_eip712(escrow, test_token, fresh, buyer, arbitrator):
    fields, _ = relayed_open(escrow, fresh, buyer, arbitrator, test_token, 77)
    on_chain = escrow.open_digest(
        fields["seller"], fields["ref"], fields["buyer"], fields["arbitrator"], fields["token"],
        fields["amount"], fields["paymentWindow"], fields["deadline"], fields["expiry"],
    )  # fmt: skip
    assert on_chain == digest(open_message(escrow, **fields))


def test_open_relayed_with_permit(escrow, test_token, fresh, buyer, arbitrator, relayer):
    test_token.mint(fresh, 700, sender=fresh)
    test_token.mint(relayer, 700, sender=relayer)
    test_token.approve(escrow, 700, sender=relayer)
    fields, sig = relayed_open(escrow, fresh, buyer, arbitrator, test_token, 700)
    permit = (now() + 600, *sign_permit(fresh, test_token, escrow.address, 700, now() + 600))
    tx = call_open_relayed(escrow, fields, sig, permit, relayer)
    id_ = escrow.escrow_id(fresh, fields["ref"])
    assert escrow.escrows(id_).seller == fresh.address
    assert test_token.balanceOf(fresh) == 0
    assert test_token.balanceOf(relayer) == 700  # the submitter pays nothing
    assert test_token.balanceOf(escrow) == 700
    (log,) = tx.decode_logs(escrow.Opened)
    assert log.seller == fresh


def test_open_relayed_with_prior_approval(escrow, usdt, fresh, buyer, arbitrator, relayer):
    usdt.mint(fresh, 700, sender=fresh)
    usdt.approve(escrow, 700, sender=fresh)
    fields, sig = relayed_open(escrow, fresh, buyer, arbitrator, usdt, 700)
    call_open_relayed(escrow, fields, sig, NO_PERMIT, relayer)
    assert usdt.balanceOf(escrow) == 700


def test_open_relayed_never_takes_the_submitters_funds(
    escrow, test_token, fresh, buyer, arbitrator, relayer
):
    test_token.mint(relayer, 700, sender=relayer)
    test_token.approve(escrow, 700, sender=relayer)
    fields, sig = relayed_open(escrow, fresh, buyer, arbitrator, test_token, 700)
    with ape.reverts():  # the seller has neither tokens nor a permit
        call_open_relayed(escrow, fields, sig, NO_PERMIT, relayer)
    assert test_token.balanceOf(relayer) == 700


def test_open_relayed_refuses_another_signer(
    escrow, test_token, fresh, buyer, arbitrator, relayer, outsider
):
    test_token.mint(fresh, 700, sender=fresh)
    test_token.approve(escrow, 700, sender=fresh)
    fields, _ = relayed_open(escrow, fresh, buyer, arbitrator, test_token, 700)
    forged = sign(outsider, open_message(escrow, **fields))
    with ape.reverts("Escrow: bad signer"):
        call_open_relayed(escrow, fields, forged, NO_PERMIT, relayer)
    # A valid signature with one field changed (the amount) is no signature.
    fields2, sig = relayed_open(escrow, fresh, buyer, arbitrator, test_token, 700)
    fields2["amount"] = 600
    with ape.reverts("Escrow: bad signer"):
        call_open_relayed(escrow, fields2, sig, NO_PERMIT, relayer)
    assert test_token.balanceOf(escrow) == 0


def test_open_relayed_refuses_expired(escrow, test_token, fresh, buyer, arbitrator, relayer):
    test_token.mint(fresh, 700, sender=fresh)
    test_token.approve(escrow, 700, sender=fresh)
    fields, sig = relayed_open(escrow, fresh, buyer, arbitrator, test_token, 700, expiry=now() - 1)
    with ape.reverts("Escrow: signature expired"):
        call_open_relayed(escrow, fields, sig, NO_PERMIT, relayer)


def test_open_relayed_cannot_be_replayed(escrow, test_token, fresh, buyer, arbitrator, relayer):
    test_token.mint(fresh, 1400, sender=fresh)
    test_token.approve(escrow, 1400, sender=fresh)
    fields, sig = relayed_open(escrow, fresh, buyer, arbitrator, test_token, 700)
    call_open_relayed(escrow, fields, sig, NO_PERMIT, relayer)
    with ape.reverts("Escrow: id taken"):
        call_open_relayed(escrow, fields, sig, NO_PERMIT, relayer)
    assert test_token.balanceOf(escrow) == 700
    assert test_token.balanceOf(fresh) == 700


def test_open_relayed_refuses_native(escrow, fresh, buyer, arbitrator, relayer):
    class Native:
        address = ZERO_ADDRESS

    fields, sig = relayed_open(escrow, fresh, buyer, arbitrator, Native, 700)
    with ape.reverts("Escrow: relayed open needs a token"):
        call_open_relayed(escrow, fields, sig, NO_PERMIT, relayer)
