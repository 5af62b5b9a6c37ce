"""Solana escrow of native SOL as wrapped SOL, on LiteSVM.

Proves: the funding transaction for the native mint (system transfer + sync_native into
an escrow token account of the native mint) escrows exactly the amount as wrapped SOL and
costs the seller exactly amount + rent of both accounts (LiteSVM charges 5000 lamports per
signature); a release with ``unwrap_sol`` closes the escrow account to the buyer, who
receives the amount as native SOL plus the account's rent reserve; a refund with
``unwrap_sol`` gives the seller back amount + rent; a split of wrapped SOL pays the buyer's
share and the rest to the buyer's and seller's wSOL accounts, and the escrow account's rent
to the seller on close.
"""

from __future__ import annotations

import pytest
from spl.token.constants import WRAPPED_SOL_MINT

from wallets.solana.payout import PayoutAction, PayoutIntent, build_payout_transaction
from wallets.solana.signer import SoftwareSigner, require_complete, sign_partially
from wallets.solana.testing import EscrowWorld, Ledger

AMOUNT = 1_500_000_000  # 1.5 SOL
FEE_PER_SIGNATURE = 5000


@pytest.fixture
def w() -> EscrowWorld:
    return EscrowWorld.new(Ledger.new(), native=True)


def pay(w: EscrowWorld, intent: PayoutIntent, *keys) -> None:
    tx = build_payout_transaction(intent, recent_blockhash=w.ledger.blockhash())
    for key in keys:
        tx = sign_partially(tx, SoftwareSigner(key))
    w.ledger.send(require_complete(tx))


def test_funding_wraps_exactly_the_amount(w):
    before = w.ledger.lamports(w.seller.pubkey())
    w.fund(AMOUNT)
    rent = w.ledger.rent()
    assert w.escrow.is_native and w.escrow.mint == WRAPPED_SOL_MINT
    assert w.ledger.token_balance(w.escrow.escrow_token_account) == AMOUNT
    assert w.ledger.lamports(w.escrow.escrow_token_account) == AMOUNT + rent.token_account
    spent = before - w.ledger.lamports(w.seller.pubkey())
    assert spent == AMOUNT + rent.multisig + rent.token_account + FEE_PER_SIGNATURE


def test_release_unwrapped_pays_buyer_native_sol(w):
    w.fund(AMOUNT)
    before = w.ledger.lamports(w.buyer.pubkey())
    intent = PayoutIntent(
        escrow=w.escrow,
        action=PayoutAction.RELEASE,
        amount=AMOUNT,
        unwrap_sol=True,
        signers=(w.seller.pubkey(), w.arbitrator.pubkey()),
        fee_payer=w.arbitrator.pubkey(),
    )
    pay(w, intent, w.seller, w.arbitrator)
    received = w.ledger.lamports(w.buyer.pubkey()) - before
    assert received == AMOUNT + w.ledger.rent().token_account
    assert w.ledger.account_data(w.escrow.escrow_token_account) is None


def test_refund_unwrapped_returns_amount_and_rent_to_seller(w):
    w.fund(AMOUNT)
    before = w.ledger.lamports(w.seller.pubkey())
    intent = PayoutIntent(
        escrow=w.escrow,
        action=PayoutAction.REFUND,
        amount=AMOUNT,
        unwrap_sol=True,
        signers=(w.seller.pubkey(), w.arbitrator.pubkey()),
        fee_payer=w.arbitrator.pubkey(),
    )
    pay(w, intent, w.seller, w.arbitrator)
    assert w.ledger.lamports(w.seller.pubkey()) - before == AMOUNT + w.ledger.rent().token_account


def test_split_of_wrapped_sol(w):
    w.fund(AMOUNT)
    seller_before = w.ledger.lamports(w.seller.pubkey())
    intent = PayoutIntent(
        escrow=w.escrow,
        action=PayoutAction.SPLIT,
        amount=AMOUNT,
        buyer_bps=2500,
        signers=(w.buyer.pubkey(), w.arbitrator.pubkey()),
        fee_payer=w.buyer.pubkey(),
    )
    # Seller's leg goes to the seller's wSOL account (created here), then the escrow closes.
    pay(w, intent, w.buyer, w.arbitrator)
    assert w.ledger.token_balance(w.ata(w.buyer)) == AMOUNT // 4
    assert w.ledger.token_balance(w.ata(w.seller)) == AMOUNT - AMOUNT // 4
    assert w.ledger.lamports(w.seller.pubkey()) - seller_before == w.ledger.rent().token_account
