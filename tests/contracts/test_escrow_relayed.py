"""Relayed EIP-712 instructions: `execute` (one party's signed Action) and
`settle` (both parties' signed SETTLE split). Proves the on-chain digests
equal eth-account's EIP-712 encoding, that each action works when signed by
the party it requires and submitted by anyone, and invariant I4: a signature
is refused on another escrow, on another deployment, with another chain id in
the domain, at a consumed nonce, after its expiry, when malleated (high s),
malformed or signed by anyone else; and `settle` refuses mismatched splits."""

from __future__ import annotations

import ape
import pytest

from tests.contracts.helpers import (
    CANCEL,
    DISPUTE,
    DISPUTED,
    FUNDED,
    MARK_PAID,
    PAID,
    RECLAIM,
    REFUNDED,
    RELEASE,
    RELEASED,
    RESOLVE,
    RESOLVED,
    SETTLE,
    action_message,
    digest,
    high_s,
    new_ref,
    next_block_at,
    now,
    sign,
    sign_action,
)

AMOUNT = 10_000_000


@pytest.mark.parametrize(
    ("action", "bps", "nonce", "expiry"),
    [(MARK_PAID, 0, 0, 1), (RESOLVE, 2500, 7, 2**64), (SETTLE, 10_000, 2**255, 2**256 - 1)],
)
def test_action_digest_matches_eip712(escrow, action, bps, nonce, expiry):
    id_ = b"\x5a" * 32
    msg = action_message(escrow, id_, action, bps, nonce, expiry)
    assert escrow.action_digest(id_, action, bps, nonce, expiry) == digest(msg)
    assert escrow.domain_separator() == msg.header


def test_domain_is_bound_to_contract_and_chain(escrow, other_escrow, chain):
    assert escrow.domain_separator() != other_escrow.domain_separator()
    fields, name, version, chain_id, contract, _, _ = escrow.eip712Domain()
    assert (name, version, chain_id, contract) == ("escrowd", "1", chain.chain_id, escrow.address)


# ------------------------------------------------------------------ execute: ok


def execute(escrow, id_, action, signer, relayer, bps=0, **timed):
    sig, expiry = sign_action(signer, escrow, id_, action, bps)
    return escrow.execute(id_, action, bps, expiry, sig, sender=relayer, **timed)


def test_execute_mark_paid(escrow, open_escrow, native, parties):
    id_ = open_escrow(native, AMOUNT)
    tx = execute(escrow, id_, MARK_PAID, parties.buyer, parties.relayer)
    e = escrow.escrows(id_)
    assert (e.state, e.nonce) == (PAID, 1)
    (log,) = tx.decode_logs(escrow.MarkedPaid)
    assert log.buyer == parties.buyer


def test_execute_release(escrow, open_escrow, asset, parties):
    id_ = open_escrow(asset, AMOUNT)
    buyer_before = asset.balance(parties.buyer)
    relayer_before = asset.balance(parties.relayer)
    tx = execute(escrow, id_, RELEASE, parties.seller, parties.relayer)
    assert escrow.escrows(id_).state == RELEASED
    assert asset.balance(parties.buyer) == buyer_before + AMOUNT
    assert asset.balance(parties.relayer) == relayer_before  # the relayer gets nothing
    (log,) = tx.decode_logs(escrow.Released)
    assert (log.buyer, log.amount) == (parties.buyer, AMOUNT)


def test_execute_cancel(escrow, open_escrow, asset, parties):
    id_ = open_escrow(asset, AMOUNT)
    seller_before = asset.balance(parties.seller)
    execute(escrow, id_, CANCEL, parties.buyer, parties.relayer)
    assert escrow.escrows(id_).state == REFUNDED
    assert asset.balance(parties.seller) == seller_before + AMOUNT


@pytest.mark.parametrize("who", ["buyer", "seller"])
def test_execute_dispute(escrow, open_escrow, native, parties, who):
    id_ = open_escrow(native, AMOUNT)
    tx = execute(escrow, id_, DISPUTE, getattr(parties, who), parties.relayer)
    assert escrow.escrows(id_).state == DISPUTED
    (log,) = tx.decode_logs(escrow.Disputed)
    assert log.by == getattr(parties, who)


def test_execute_resolve(escrow, open_escrow, asset, parties):
    id_ = open_escrow(asset, AMOUNT)
    execute(escrow, id_, DISPUTE, parties.seller, parties.relayer)
    buyer_before = asset.balance(parties.buyer)
    seller_before = asset.balance(parties.seller)
    tx = execute(escrow, id_, RESOLVE, parties.arbitrator, parties.relayer, bps=2500)
    e = escrow.escrows(id_)
    assert (e.state, e.nonce) == (RESOLVED, 2)
    assert asset.balance(parties.buyer) == buyer_before + AMOUNT // 4
    assert asset.balance(parties.seller) == seller_before + AMOUNT - AMOUNT // 4
    (log,) = tx.decode_logs(escrow.Resolved)
    assert (log.arbitrator, log.buyer_bps) == (parties.arbitrator, 2500)


def test_execute_reclaim(escrow, open_escrow, native, parties):
    id_ = open_escrow(native, AMOUNT)
    pd = escrow.escrows(id_).payment_deadline
    seller_before = native.balance(parties.seller)
    sig, _ = sign_action(parties.seller, escrow, id_, RECLAIM, expiry=pd + 100)
    escrow.execute(id_, RECLAIM, 0, pd + 100, sig, sender=parties.relayer, **next_block_at(pd))
    assert escrow.escrows(id_).state == REFUNDED
    assert native.balance(parties.seller) == seller_before + AMOUNT


def test_execute_at_expiry(escrow, open_escrow, native, parties):
    id_ = open_escrow(native, AMOUNT)
    expiry = now() + 50
    sig, _ = sign_action(parties.buyer, escrow, id_, MARK_PAID, expiry=expiry)
    escrow.execute(id_, MARK_PAID, 0, expiry, sig, sender=parties.relayer, **next_block_at(expiry))
    assert escrow.escrows(id_).state == PAID


# ------------------------------------------------------------ execute: refused


@pytest.mark.parametrize(
    ("action", "who", "reason"),
    [
        (MARK_PAID, "seller", "Escrow: caller is not the buyer"),
        (MARK_PAID, "arbitrator", "Escrow: caller is not the buyer"),
        (RELEASE, "buyer", "Escrow: caller is not the seller"),
        (RELEASE, "arbitrator", "Escrow: caller is not the seller"),
        (RELEASE, "relayer", "Escrow: caller is not the seller"),
        (CANCEL, "seller", "Escrow: caller is not the buyer"),
        (CANCEL, "outsider", "Escrow: caller is not the buyer"),
        (DISPUTE, "arbitrator", "Escrow: caller is not a party"),
        (DISPUTE, "outsider", "Escrow: caller is not a party"),
        (RECLAIM, "buyer", "Escrow: caller is not the seller"),
    ],
)
def test_execute_signed_by_wrong_party(escrow, open_escrow, native, parties, action, who, reason):
    id_ = open_escrow(native, AMOUNT)
    expiry = now() + 10**6
    sig, _ = sign_action(getattr(parties, who), escrow, id_, action, expiry=expiry)
    deadline = escrow.escrows(id_).deadline
    # RECLAIM: at a time the seller could reclaim, so only the signer is wrong.
    timed = next_block_at(deadline - 1) if action == RECLAIM else {}
    with ape.reverts(reason):
        escrow.execute(id_, action, 0, expiry, sig, sender=parties.relayer, **timed)
    e = escrow.escrows(id_)
    assert (e.state, e.nonce) == (FUNDED, 0)
    assert native.balance(escrow) == AMOUNT


@pytest.mark.parametrize("who", ["buyer", "seller", "outsider"])
def test_execute_resolve_signed_by_non_arbitrator(escrow, open_escrow, native, parties, who):
    id_ = open_escrow(native, AMOUNT)
    escrow.dispute(id_, sender=parties.buyer)
    sig, expiry = sign_action(getattr(parties, who), escrow, id_, RESOLVE, 10_000)
    with ape.reverts("Escrow: caller is not the arbitrator"):
        escrow.execute(id_, RESOLVE, 10_000, expiry, sig, sender=parties.relayer)


def test_execute_twice_reverts(escrow, open_escrow, native, parties):
    id_ = open_escrow(native, AMOUNT)
    sig, expiry = sign_action(parties.buyer, escrow, id_, DISPUTE)
    escrow.execute(id_, DISPUTE, 0, expiry, sig, sender=parties.relayer)
    with ape.reverts():
        escrow.execute(id_, DISPUTE, 0, expiry, sig, sender=parties.relayer)
    assert escrow.escrows(id_).nonce == 1


def test_signature_at_a_consumed_nonce_reverts(escrow, open_escrow, native, parties):
    """Two instructions signed at the same nonce: only the first one counts,
    even though the second would be valid in the new state."""
    id_ = open_escrow(native, AMOUNT)
    paid_sig, expiry = sign_action(parties.buyer, escrow, id_, MARK_PAID)
    dispute_sig, _ = sign_action(parties.buyer, escrow, id_, DISPUTE, expiry=expiry)
    escrow.execute(id_, MARK_PAID, 0, expiry, paid_sig, sender=parties.relayer)
    with ape.reverts("Escrow: caller is not a party"):
        escrow.execute(id_, DISPUTE, 0, expiry, dispute_sig, sender=parties.relayer)
    assert escrow.escrows(id_).state == PAID
    # Signed again at the current nonce, it goes through.
    execute(escrow, id_, DISPUTE, parties.buyer, parties.relayer)
    assert escrow.escrows(id_).state == DISPUTED


def test_signature_replayed_on_another_escrow_reverts(escrow, open_escrow, native, parties):
    id_a = open_escrow(native, AMOUNT)
    id_b = open_escrow(native, AMOUNT)  # same parties, same nonce 0
    sig, expiry = sign_action(parties.seller, escrow, id_a, RELEASE)
    with ape.reverts("Escrow: caller is not the seller"):
        escrow.execute(id_b, RELEASE, 0, expiry, sig, sender=parties.relayer)
    assert escrow.escrows(id_b).state == FUNDED
    escrow.execute(id_a, RELEASE, 0, expiry, sig, sender=parties.relayer)
    assert escrow.escrows(id_a).state == RELEASED


def test_signature_replayed_on_another_deployment_reverts(
    escrow, other_escrow, open_escrow, native, parties
):
    ref = new_ref()
    id_ = open_escrow(native, AMOUNT, ref=ref)
    deadline = escrow.escrows(id_).deadline
    other_escrow.open(
        ref, parties.buyer, parties.arbitrator, native.address, AMOUNT, 3600, deadline,
        sender=parties.seller, value=AMOUNT,
    )  # fmt: skip
    assert other_escrow.escrow_id(parties.seller, ref) == id_  # same id, same nonce
    sig, expiry = sign_action(parties.seller, escrow, id_, RELEASE)
    with ape.reverts("Escrow: caller is not the seller"):
        other_escrow.execute(id_, RELEASE, 0, expiry, sig, sender=parties.relayer)
    assert other_escrow.escrows(id_).state == FUNDED
    # ...and the other way round: signed for the other deployment.
    sig2, _ = sign_action(parties.seller, other_escrow, id_, RELEASE, expiry=expiry)
    with ape.reverts("Escrow: caller is not the seller"):
        escrow.execute(id_, RELEASE, 0, expiry, sig2, sender=parties.relayer)
    other_escrow.execute(id_, RELEASE, 0, expiry, sig2, sender=parties.relayer)
    assert other_escrow.escrows(id_).state == RELEASED


def test_signature_for_another_chain_id_reverts(escrow, open_escrow, native, parties, chain):
    id_ = open_escrow(native, AMOUNT)
    expiry = now() + 600
    for other_chain in (1, chain.chain_id + 1):
        sig, _ = sign_action(
            parties.seller, escrow, id_, RELEASE, expiry=expiry, chain_id=other_chain
        )
        with ape.reverts("Escrow: caller is not the seller"):
            escrow.execute(id_, RELEASE, 0, expiry, sig, sender=parties.relayer)
    assert escrow.escrows(id_).state == FUNDED
    sig, _ = sign_action(parties.seller, escrow, id_, RELEASE, expiry=expiry)
    escrow.execute(id_, RELEASE, 0, expiry, sig, sender=parties.relayer)
    assert escrow.escrows(id_).state == RELEASED


def test_signature_with_another_action_or_split_reverts(escrow, open_escrow, native, parties):
    id_ = open_escrow(native, AMOUNT)
    escrow.dispute(id_, sender=parties.buyer)
    sig, expiry = sign_action(parties.arbitrator, escrow, id_, RESOLVE, 2000)
    with ape.reverts("Escrow: caller is not the arbitrator"):
        escrow.execute(id_, RESOLVE, 8000, expiry, sig, sender=parties.relayer)
    with ape.reverts("Escrow: caller is not the arbitrator"):
        escrow.execute(id_, RESOLVE, 2000, expiry + 1, sig, sender=parties.relayer)
    escrow.execute(id_, RESOLVE, 2000, expiry, sig, sender=parties.relayer)
    assert escrow.escrows(id_).state == RESOLVED


def test_expired_signature_reverts(escrow, open_escrow, native, parties):
    id_ = open_escrow(native, AMOUNT)
    expiry = now() + 50
    sig, _ = sign_action(parties.buyer, escrow, id_, MARK_PAID, expiry=expiry)
    with ape.reverts("Escrow: signature expired"):
        escrow.execute(
            id_, MARK_PAID, 0, expiry, sig, sender=parties.relayer, **next_block_at(expiry + 1)
        )
    assert escrow.escrows(id_).nonce == 0


def test_malleated_signature_reverts(escrow, open_escrow, native, parties):
    id_ = open_escrow(native, AMOUNT)
    sig, expiry = sign_action(parties.buyer, escrow, id_, MARK_PAID)
    with ape.reverts("Escrow: high s"):
        escrow.execute(id_, MARK_PAID, 0, expiry, high_s(sig), sender=parties.relayer)


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda sig: sig[:64], "Escrow: bad signature length"),
        (lambda sig: sig[:64] + b"\x1d", "Escrow: bad v"),
        (lambda sig: sig[:64] + b"\x00", "Escrow: bad v"),
        (lambda sig: b"\x00" * 64 + b"\x1b", "Escrow: bad signature"),
    ],
)
def test_malformed_signature_reverts(escrow, open_escrow, native, parties, mangle, reason):
    id_ = open_escrow(native, AMOUNT)
    sig, expiry = sign_action(parties.buyer, escrow, id_, MARK_PAID)
    with ape.reverts(reason):
        escrow.execute(id_, MARK_PAID, 0, expiry, mangle(sig), sender=parties.relayer)


@pytest.mark.parametrize("action", [0, SETTLE, 8, 255])
def test_execute_refuses_unknown_action(escrow, open_escrow, native, parties, action):
    id_ = open_escrow(native, AMOUNT)
    sig, expiry = sign_action(parties.buyer, escrow, id_, action)
    with ape.reverts("Escrow: bad action"):
        escrow.execute(id_, action, 0, expiry, sig, sender=parties.relayer)


def test_execute_refuses_buyer_bps_on_other_actions(escrow, open_escrow, native, parties):
    id_ = open_escrow(native, AMOUNT)
    sig, expiry = sign_action(parties.seller, escrow, id_, RELEASE, 5000)
    with ape.reverts("Escrow: buyer_bps unused"):
        escrow.execute(id_, RELEASE, 5000, expiry, sig, sender=parties.relayer)


def test_execute_resolve_refuses_bps_above_10000(escrow, open_escrow, native, parties):
    id_ = open_escrow(native, AMOUNT)
    escrow.dispute(id_, sender=parties.seller)
    sig, expiry = sign_action(parties.arbitrator, escrow, id_, RESOLVE, 10_001)
    with ape.reverts("Escrow: buyer_bps above 10000"):
        escrow.execute(id_, RESOLVE, 10_001, expiry, sig, sender=parties.relayer)
    assert escrow.escrows(id_).nonce == 0


# ----------------------------------------------------------------------- settle


def settle_sigs(escrow, id_, parties, buyer_bps, seller_bps=None, expiry=None):
    seller_bps = buyer_bps if seller_bps is None else seller_bps
    b, expiry = sign_action(parties.buyer, escrow, id_, SETTLE, buyer_bps, expiry=expiry)
    s, _ = sign_action(parties.seller, escrow, id_, SETTLE, seller_bps, expiry=expiry)
    return b, s, expiry


def test_settle_with_both_signatures(escrow, open_escrow, asset, parties):
    id_ = open_escrow(asset, AMOUNT)
    escrow.dispute(id_, sender=parties.buyer)
    b, s, expiry = settle_sigs(escrow, id_, parties, 6000)
    buyer_before = asset.balance(parties.buyer)
    seller_before = asset.balance(parties.seller)
    tx = escrow.settle(id_, 6000, expiry, b, s, sender=parties.outsider)
    e = escrow.escrows(id_)
    assert (e.state, e.nonce) == (RESOLVED, 1)
    assert asset.balance(parties.buyer) == buyer_before + AMOUNT * 6 // 10
    assert asset.balance(parties.seller) == seller_before + AMOUNT * 4 // 10
    assert asset.balance(escrow) == 0
    (log,) = tx.decode_logs(escrow.Resolved)
    assert log.arbitrator == "0x" + "00" * 20  # a settlement, not a ruling
    assert (log.buyer_bps, log.buyer_amount, log.seller_amount) == (
        6000,
        AMOUNT * 6 // 10,
        AMOUNT * 4 // 10,
    )


def test_settle_with_mismatched_splits_reverts(escrow, open_escrow, native, parties):
    id_ = open_escrow(native, AMOUNT)
    escrow.dispute(id_, sender=parties.buyer)
    b, s, expiry = settle_sigs(escrow, id_, parties, 6000, seller_bps=4000)
    with ape.reverts("Escrow: bad seller signature"):
        escrow.settle(id_, 6000, expiry, b, s, sender=parties.relayer)
    with ape.reverts("Escrow: bad buyer signature"):
        escrow.settle(id_, 4000, expiry, b, s, sender=parties.relayer)
    e = escrow.escrows(id_)
    assert (e.state, e.nonce) == (DISPUTED, 0)
    assert native.balance(escrow) == AMOUNT


def test_settle_refuses_swapped_or_foreign_signatures(escrow, open_escrow, native, parties):
    id_ = open_escrow(native, AMOUNT)
    escrow.dispute(id_, sender=parties.buyer)
    b, s, expiry = settle_sigs(escrow, id_, parties, 5000)
    arb, _ = sign_action(parties.arbitrator, escrow, id_, SETTLE, 5000, expiry=expiry)
    with ape.reverts("Escrow: bad buyer signature"):
        escrow.settle(id_, 5000, expiry, s, b, sender=parties.relayer)
    with ape.reverts("Escrow: bad seller signature"):  # the arbitrator cannot stand in
        escrow.settle(id_, 5000, expiry, b, arb, sender=parties.relayer)
    with ape.reverts("Escrow: bad buyer signature"):
        escrow.settle(id_, 5000, expiry, arb, s, sender=parties.relayer)
    with ape.reverts("Escrow: bad seller signature"):  # one party twice
        escrow.settle(id_, 5000, expiry, b, b, sender=parties.relayer)


def test_settle_refuses_signatures_for_another_action(escrow, open_escrow, native, parties):
    id_ = open_escrow(native, AMOUNT)
    escrow.dispute(id_, sender=parties.buyer)
    b, expiry = sign_action(parties.buyer, escrow, id_, RESOLVE, 5000)
    s, _ = sign_action(parties.seller, escrow, id_, RESOLVE, 5000, expiry=expiry)
    with ape.reverts("Escrow: bad buyer signature"):
        escrow.settle(id_, 5000, expiry, b, s, sender=parties.relayer)


def test_settle_when_not_disputed_reverts(escrow, open_escrow, native, parties):
    id_ = open_escrow(native, AMOUNT)
    b, s, expiry = settle_sigs(escrow, id_, parties, 5000)
    with ape.reverts("Escrow: not disputed"):
        escrow.settle(id_, 5000, expiry, b, s, sender=parties.relayer)


def test_settle_expired_reverts(escrow, open_escrow, native, parties):
    id_ = open_escrow(native, AMOUNT)
    escrow.dispute(id_, sender=parties.buyer)
    expiry = now() + 50
    b, s, _ = settle_sigs(escrow, id_, parties, 5000, expiry=expiry)
    with ape.reverts("Escrow: signature expired"):
        escrow.settle(id_, 5000, expiry, b, s, sender=parties.relayer, **next_block_at(expiry + 1))


def test_settle_refuses_bps_above_10000(escrow, open_escrow, native, parties):
    id_ = open_escrow(native, AMOUNT)
    escrow.dispute(id_, sender=parties.buyer)
    b, s, expiry = settle_sigs(escrow, id_, parties, 10_001)
    with ape.reverts("Escrow: buyer_bps above 10000"):
        escrow.settle(id_, 10_001, expiry, b, s, sender=parties.relayer)


def test_settle_replayed_on_another_escrow_reverts(escrow, open_escrow, native, parties):
    id_a = open_escrow(native, AMOUNT)
    id_b = open_escrow(native, AMOUNT)
    for id_ in (id_a, id_b):
        escrow.dispute(id_, sender=parties.buyer)
    b, s, expiry = settle_sigs(escrow, id_a, parties, 10_000)
    escrow.settle(id_a, 10_000, expiry, b, s, sender=parties.relayer)
    with ape.reverts("Escrow: bad buyer signature"):
        escrow.settle(id_b, 10_000, expiry, b, s, sender=parties.relayer)
    with ape.reverts("Escrow: not disputed"):
        escrow.settle(id_a, 10_000, expiry, b, s, sender=parties.relayer)
    assert escrow.escrows(id_b).state == DISPUTED


def test_settle_signature_is_not_an_action_signature(escrow, open_escrow, native, parties):
    """A party's SETTLE signature cannot be relayed through execute."""
    id_ = open_escrow(native, AMOUNT)
    escrow.dispute(id_, sender=parties.buyer)
    _, s, expiry = settle_sigs(escrow, id_, parties, 0)
    with ape.reverts("Escrow: caller is not the seller"):
        escrow.execute(id_, RELEASE, 0, expiry, s, sender=parties.relayer)
    sig = sign(parties.seller, action_message(escrow, id_, SETTLE, 0, 0, expiry))
    assert sig == s
