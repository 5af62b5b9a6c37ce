"""Solana escrow on LiteSVM (the real runtime): the seller's funding transaction and a
2-of-3 release.

Proves: the funding transaction built by ``build_funding_transaction`` and signed by the
seller alone creates a 2-of-3 multisig (buyer, seller, arbitrator) and an escrow token
account it owns, at the addresses the node recomputes from (seller, trade ref, cluster),
holding exactly the amount; a release signed by two of the three parties pays the buyer
exactly that amount, creates the buyer's token account when missing and gives the escrow
account's rent back to the seller; a payout with one multisig signature is rejected by the
runtime (MissingRequiredSignature); funding cannot be replayed onto an existing escrow.
"""

from __future__ import annotations

import pytest
from solders.message import Message
from solders.transaction import Transaction
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import create_idempotent_associated_token_account, transfer_checked
from spl.token.models import TransferCheckedParams

from wallets.solana.errors import IncompleteTransactionError
from wallets.solana.escrow import (
    EscrowParties,
    build_funding_transaction,
    derive_escrow_accounts,
)
from wallets.solana.payout import PayoutAction, PayoutIntent, build_payout_transaction
from wallets.solana.signer import (
    SoftwareSigner,
    decode_transaction,
    require_complete,
    sign_partially,
)
from wallets.solana.testing import Ledger, LedgerTransactionError

DECIMALS = 6
AMOUNT = 250_000_000  # 250 tokens


@pytest.fixture
def world():
    ledger = Ledger.new()
    issuer = ledger.wallet()
    buyer, seller, arbitrator = ledger.wallet(), ledger.wallet(), ledger.wallet()
    mint = ledger.create_mint(issuer, DECIMALS)
    seller_ata = ledger.mint_to_owner(issuer, mint, DECIMALS, seller.pubkey(), 1_000_000_000)
    parties = EscrowParties(buyer.pubkey(), seller.pubkey(), arbitrator.pubkey())
    escrow = derive_escrow_accounts(
        network=ledger.network,
        trade_ref="trade-0001",
        parties=parties,
        mint=mint,
        decimals=DECIMALS,
    )
    return ledger, buyer, seller, arbitrator, escrow, seller_ata


def fund(ledger, seller, escrow, amount=AMOUNT):
    plan = build_funding_transaction(
        escrow, amount, recent_blockhash=ledger.blockhash(), rent=ledger.rent()
    )
    # The seller's wallet receives base64, signs, and the signed tx is broadcast.
    tx = sign_partially(decode_transaction(plan.transaction_base64), SoftwareSigner(seller))
    ledger.send(require_complete(tx))
    return plan


def test_funding_creates_multisig_and_escrow_with_exact_amount(world):
    ledger, buyer, seller, arbitrator, escrow, seller_ata = world
    plan = fund(ledger, seller, escrow)

    assert plan.required_signers == (seller.pubkey(),)
    request = plan.wallet_request()
    assert request["transaction"] == plan.transaction_base64
    assert request["multisig"] == str(escrow.multisig)
    assert request["escrow_token_account"] == str(escrow.escrow_token_account)
    assert request["amount"] == AMOUNT
    assert plan.source_token_account == seller_ata
    assert ledger.token_balance(escrow.escrow_token_account) == AMOUNT
    assert ledger.token_balance(seller_ata) == 1_000_000_000 - AMOUNT
    # Multisig account: owned by the token program, m=2, n=3, signers in order.
    data = ledger.account_data(escrow.multisig)
    assert ledger.account_owner(escrow.multisig) == TOKEN_PROGRAM_ID
    assert data is not None and (data[0], data[1], data[2]) == (2, 3, 1)
    signers = [bytes(data[3 + 32 * i : 35 + 32 * i]) for i in range(3)]
    assert signers == [bytes(buyer.pubkey()), bytes(seller.pubkey()), bytes(arbitrator.pubkey())]
    # Escrow token account: mint and owner (the multisig).
    acc = ledger.account_data(escrow.escrow_token_account)
    assert acc is not None
    assert acc[0:32] == bytes(escrow.mint) and acc[32:64] == bytes(escrow.multisig)
    # The node recomputes the same addresses from the same values.
    again = derive_escrow_accounts(
        network=ledger.network,
        trade_ref="trade-0001",
        parties=escrow.parties,
        mint=escrow.mint,
        decimals=DECIMALS,
    )
    assert (again.multisig, again.escrow_token_account) == (
        escrow.multisig,
        escrow.escrow_token_account,
    )


def test_funding_an_existing_escrow_again_fails_atomically(world):
    ledger, buyer, seller, arbitrator, escrow, seller_ata = world
    fund(ledger, seller, escrow)
    ledger.svm.expire_blockhash()
    with pytest.raises(LedgerTransactionError):
        fund(ledger, seller, escrow)
    assert ledger.token_balance(escrow.escrow_token_account) == AMOUNT
    assert ledger.token_balance(seller_ata) == 1_000_000_000 - AMOUNT


def test_release_with_two_signatures_pays_buyer_exactly(world):
    ledger, buyer, seller, arbitrator, escrow, seller_ata = world
    fund(ledger, seller, escrow)
    buyer_ata = escrow.associated_token_account(buyer.pubkey())
    assert ledger.account_data(buyer_ata) is None  # created by the release
    seller_lamports = ledger.lamports(seller.pubkey())

    intent = PayoutIntent(
        escrow=escrow,
        action=PayoutAction.RELEASE,
        amount=AMOUNT,
        signers=(seller.pubkey(), arbitrator.pubkey()),
        fee_payer=arbitrator.pubkey(),
    )
    tx = build_payout_transaction(intent, recent_blockhash=ledger.blockhash())
    tx = sign_partially(tx, SoftwareSigner(seller))
    tx = sign_partially(tx, SoftwareSigner(arbitrator))
    ledger.send(require_complete(tx))

    assert ledger.token_balance(buyer_ata) == AMOUNT
    assert ledger.account_data(escrow.escrow_token_account) is None  # closed
    assert ledger.lamports(seller.pubkey()) == seller_lamports + ledger.rent().token_account


def test_transfer_out_of_escrow_with_one_signature_is_rejected(world):
    ledger, buyer, seller, arbitrator, escrow, seller_ata = world
    fund(ledger, seller, escrow)
    # A buyer-built transfer where the multisig authority is backed by the buyer alone.
    dest = escrow.associated_token_account(buyer.pubkey())
    ix = transfer_checked(
        TransferCheckedParams(
            program_id=TOKEN_PROGRAM_ID,
            source=escrow.escrow_token_account,
            mint=escrow.mint,
            dest=dest,
            owner=escrow.multisig,
            amount=AMOUNT,
            decimals=DECIMALS,
            signers=[buyer.pubkey()],
        )
    )
    create = create_idempotent_associated_token_account(buyer.pubkey(), buyer.pubkey(), escrow.mint)
    msg = Message.new_with_blockhash([create, ix], buyer.pubkey(), ledger.blockhash())
    tx = Transaction([buyer], msg, ledger.blockhash())
    with pytest.raises(LedgerTransactionError) as info:
        ledger.send(tx)
    assert "MissingRequiredSignature" in str(info.value.err)
    assert ledger.token_balance(escrow.escrow_token_account) == AMOUNT


def test_payout_signed_by_one_cosigner_is_incomplete_and_not_accepted(world):
    ledger, buyer, seller, arbitrator, escrow, seller_ata = world
    fund(ledger, seller, escrow)
    intent = PayoutIntent(
        escrow=escrow,
        action=PayoutAction.RELEASE,
        amount=AMOUNT,
        signers=(seller.pubkey(), arbitrator.pubkey()),
        fee_payer=arbitrator.pubkey(),
    )
    tx = sign_partially(
        build_payout_transaction(intent, recent_blockhash=ledger.blockhash()),
        SoftwareSigner(arbitrator),
    )
    with pytest.raises(IncompleteTransactionError) as info:
        require_complete(tx)
    assert info.value.fields["missing"] == [str(seller.pubkey())]
    with pytest.raises(LedgerTransactionError):
        ledger.send(tx)  # the runtime refuses it too (signature verification)
    assert ledger.token_balance(escrow.escrow_token_account) == AMOUNT
