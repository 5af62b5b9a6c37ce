"""Solana escrow payouts on LiteSVM: refund and split, signed 2-of-3.

Proves: a refund signed by seller + arbitrator returns exactly the escrowed amount to
the seller's token account (and the escrow account's rent on close); a split ruling signed
by buyer + arbitrator pays floor(amount * bps / 10000) to the buyer and the remainder to
the seller, summing to the escrowed amount; a payout into a recipient account that already
exists works (idempotent create); a payout without close leaves the empty escrow account;
a split whose buyer share rounds to zero pays the seller only; invalid intents are refused
before any transaction is built.
"""

from __future__ import annotations

import pytest

from wallets.solana.errors import InvalidEscrowParamsError
from wallets.solana.payout import PayoutAction, PayoutIntent, build_payout_transaction
from wallets.solana.signer import SoftwareSigner, require_complete, sign_partially
from wallets.solana.testing import EscrowWorld, Ledger

AMOUNT = 123_456_789


@pytest.fixture
def w() -> EscrowWorld:
    world = EscrowWorld.new(Ledger.new())
    world.fund(AMOUNT)
    return world


def pay(w: EscrowWorld, intent: PayoutIntent, *keys) -> None:
    tx = build_payout_transaction(intent, recent_blockhash=w.ledger.blockhash())
    for key in keys:
        tx = sign_partially(tx, SoftwareSigner(key))
    w.ledger.send(require_complete(tx))


def test_refund_returns_everything_to_the_seller(w):
    seller_before = w.ledger.token_balance(w.seller_token_account)
    lamports_before = w.ledger.lamports(w.seller.pubkey())
    intent = PayoutIntent(
        escrow=w.escrow,
        action=PayoutAction.REFUND,
        amount=AMOUNT,
        signers=(w.seller.pubkey(), w.arbitrator.pubkey()),
        fee_payer=w.arbitrator.pubkey(),
    )
    assert intent.legs()[0].token_account == w.seller_token_account
    pay(w, intent, w.seller, w.arbitrator)
    assert w.ledger.token_balance(w.seller_token_account) == seller_before + AMOUNT
    assert w.ledger.account_data(w.ata(w.buyer)) is None  # buyer got nothing, not even an ATA
    assert w.ledger.account_data(w.escrow.escrow_token_account) is None
    assert w.ledger.lamports(w.seller.pubkey()) == lamports_before + w.ledger.rent().token_account


@pytest.mark.parametrize("bps", [3333, 5000, 9999])
def test_split_pays_floor_to_buyer_and_remainder_to_seller(w, bps):
    seller_before = w.ledger.token_balance(w.seller_token_account)
    intent = PayoutIntent(
        escrow=w.escrow,
        action=PayoutAction.SPLIT,
        amount=AMOUNT,
        buyer_bps=bps,
        signers=(w.buyer.pubkey(), w.arbitrator.pubkey()),
        fee_payer=w.buyer.pubkey(),
    )
    buyer_share = AMOUNT * bps // 10_000
    assert (intent.buyer_amount, intent.seller_amount) == (buyer_share, AMOUNT - buyer_share)
    pay(w, intent, w.buyer, w.arbitrator)
    assert w.ledger.token_balance(w.ata(w.buyer)) == buyer_share
    assert w.ledger.token_balance(w.seller_token_account) - seller_before == AMOUNT - buyer_share


def test_split_whose_buyer_share_rounds_to_zero_pays_seller_only():
    w = EscrowWorld.new(Ledger.new())
    w.fund(3)
    seller_before = w.ledger.token_balance(w.seller_token_account)
    intent = PayoutIntent(
        escrow=w.escrow,
        action=PayoutAction.SPLIT,
        amount=3,
        buyer_bps=1,
        signers=(w.seller.pubkey(), w.arbitrator.pubkey()),
        fee_payer=w.seller.pubkey(),
    )
    assert [leg.recipient for leg in intent.legs()] == [w.seller.pubkey()]
    pay(w, intent, w.seller, w.arbitrator)
    assert w.ledger.token_balance(w.seller_token_account) == seller_before + 3
    assert w.ledger.account_data(w.ata(w.buyer)) is None


def test_release_into_existing_buyer_account_without_close(w):
    # The buyer already holds this token: the idempotent create is a no-op.
    from spl.token.instructions import create_idempotent_associated_token_account

    w.ledger.send_ixs(
        [
            create_idempotent_associated_token_account(
                w.buyer.pubkey(), w.buyer.pubkey(), w.escrow.mint
            )
        ],
        w.buyer,
    )
    intent = PayoutIntent(
        escrow=w.escrow,
        action=PayoutAction.RELEASE,
        amount=AMOUNT,
        close_escrow=False,
        signers=(w.seller.pubkey(), w.buyer.pubkey()),
        fee_payer=w.seller.pubkey(),
    )
    pay(w, intent, w.seller, w.buyer)
    assert w.ledger.token_balance(w.ata(w.buyer)) == AMOUNT
    assert w.ledger.account_data(w.escrow.escrow_token_account) is not None
    assert w.ledger.token_balance(w.escrow.escrow_token_account) == 0


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"action": PayoutAction.SPLIT, "buyer_bps": 0}, "bad_split_bps"),
        ({"action": PayoutAction.SPLIT, "buyer_bps": 10_000}, "bad_split_bps"),
        ({"action": PayoutAction.SPLIT}, "bad_split_bps"),
        ({"action": PayoutAction.RELEASE, "buyer_bps": 5000}, "bad_split_bps"),
        ({"action": PayoutAction.RELEASE, "amount": 0}, "bad_amount"),
        ({"action": PayoutAction.RELEASE, "same_signer": True}, "bad_cosigners"),
        ({"action": PayoutAction.RELEASE, "outsider": True}, "bad_cosigners"),
        ({"action": PayoutAction.RELEASE, "unwrap_sol": True}, "bad_unwrap"),
    ],
)
def test_invalid_intents_are_refused(w, kwargs, code):
    outsider = w.ledger.wallet().pubkey()
    signers = (w.seller.pubkey(), w.arbitrator.pubkey())
    if kwargs.pop("same_signer", False):
        signers = (w.seller.pubkey(), w.seller.pubkey())
    if kwargs.pop("outsider", False):
        signers = (w.seller.pubkey(), outsider)
    kwargs.setdefault("amount", AMOUNT)
    with pytest.raises(InvalidEscrowParamsError) as info:
        PayoutIntent(escrow=w.escrow, signers=signers, fee_payer=w.seller.pubkey(), **kwargs)
    assert info.value.code == code
