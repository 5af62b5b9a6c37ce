"""Blockhash expiry of escrow transactions on LiteSVM, and rebuilding from the intent.

Proves: a fully signed payout whose blockhash has expired (LiteSVM ``expire_blockhash``)
is refused by the runtime and moves nothing; rebuilding the same intent at the fresh
blockhash gives a different message but the same journal key, and once re-signed it
succeeds and pays exactly once; a funding transaction that expired before the seller's
wallet sent it is rebuilt the same way, at the same addresses.
"""

from __future__ import annotations

import pytest

from wallets.solana.escrow import build_funding_transaction
from wallets.solana.payout import PayoutAction, PayoutIntent, build_payout_transaction
from wallets.solana.signer import SoftwareSigner, require_complete, sign_partially
from wallets.solana.testing import EscrowWorld, Ledger, LedgerTransactionError

AMOUNT = 77_000_000


def signed(tx, *keys):
    for key in keys:
        tx = sign_partially(tx, SoftwareSigner(key))
    return require_complete(tx)


def test_expired_payout_fails_and_the_rebuilt_one_succeeds():
    w = EscrowWorld.new(Ledger.new())
    w.fund(AMOUNT)
    intent = PayoutIntent(
        escrow=w.escrow,
        action=PayoutAction.REFUND,
        amount=AMOUNT,
        signers=(w.seller.pubkey(), w.arbitrator.pubkey()),
        fee_payer=w.seller.pubkey(),
    )
    seller_before = w.ledger.token_balance(w.seller_token_account)
    old = signed(
        build_payout_transaction(intent, recent_blockhash=w.ledger.blockhash()),
        w.seller,
        w.arbitrator,
    )
    w.ledger.svm.expire_blockhash()
    with pytest.raises(LedgerTransactionError) as info:
        w.ledger.send(old)
    assert "BlockhashNotFound" in str(info.value.err)
    assert w.ledger.token_balance(w.escrow.escrow_token_account) == AMOUNT

    rebuilt = build_payout_transaction(intent, recent_blockhash=w.ledger.blockhash())
    assert rebuilt.message.recent_blockhash != old.message.recent_blockhash
    assert rebuilt.message.instructions == old.message.instructions
    w.ledger.send(signed(rebuilt, w.seller, w.arbitrator))
    assert w.ledger.token_balance(w.seller_token_account) == seller_before + AMOUNT
    # The expired one stays dead: nothing is paid twice.
    with pytest.raises(LedgerTransactionError):
        w.ledger.send(old)
    assert w.ledger.token_balance(w.seller_token_account) == seller_before + AMOUNT


def test_journal_key_is_the_same_for_every_rendering_and_differs_per_action():
    w = EscrowWorld.new(Ledger.new())
    common = {
        "escrow": w.escrow,
        "amount": AMOUNT,
        "fee_payer": w.seller.pubkey(),
        "signers": (w.seller.pubkey(), w.arbitrator.pubkey()),
    }
    refund = PayoutIntent(action=PayoutAction.REFUND, **common)
    release = PayoutIntent(action=PayoutAction.RELEASE, **common)
    assert refund.journal_key() == PayoutIntent(action=PayoutAction.REFUND, **common).journal_key()
    assert refund.journal_key() != release.journal_key()
    assert str(w.escrow.escrow_token_account) in refund.journal_key()
    assert str(w.ledger.network.genesis_hash) in refund.journal_key()


def test_expired_funding_is_rebuilt_at_the_same_addresses():
    w = EscrowWorld.new(Ledger.new())
    rent = w.ledger.rent()
    first = build_funding_transaction(
        w.escrow, AMOUNT, recent_blockhash=w.ledger.blockhash(), rent=rent
    )
    old = signed(first.transaction, w.seller)
    w.ledger.svm.expire_blockhash()
    with pytest.raises(LedgerTransactionError):
        w.ledger.send(old)
    assert w.ledger.account_data(w.escrow.multisig) is None
    second = build_funding_transaction(
        w.escrow, AMOUNT, recent_blockhash=w.ledger.blockhash(), rent=rent
    )
    assert (second.multisig, second.escrow_token_account) == (
        first.multisig,
        first.escrow_token_account,
    )
    w.ledger.send(signed(second.transaction, w.seller))
    assert w.ledger.token_balance(w.escrow.escrow_token_account) == AMOUNT
