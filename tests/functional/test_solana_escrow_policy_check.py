"""The node's check of a payout transaction handed to it, against real transactions.

Each test builds the transaction a dishonest party could hand to the node (already signed
by that party), mutated in one way from the ruled payout, and proves that
``check_payout_transaction`` / ``cosign_payout`` refuse it with the specific
``policy_*`` code, without signing. The unmutated transaction passes, is co-signed and is
accepted by LiteSVM; and for a wrong destination the test shows the runtime *would* have
paid the attacker had the node signed — the check, not the chain, is what stops it.
Co-signer accounts listed in another order are accepted (same meaning), and so is a
transaction with or without the close of the escrow account to the seller; a signature
already on the transaction that does not match its message is refused (``bad_signature``).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable

import pytest
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction
from spl.token.constants import TOKEN_2022_PROGRAM_ID
from spl.token.instructions import approve_checked, create_idempotent_associated_token_account
from spl.token.models import ApproveCheckedParams

from wallets.solana.errors import PolicyViolationError, SigningError
from wallets.solana.payout import PayoutAction, PayoutIntent, payout_instructions
from wallets.solana.signer import SoftwareSigner, require_complete, sign_partially
from wallets.solana.testing import EscrowWorld, Ledger
from wallets.solana.txcheck import ComputeBudgetLimits, check_payout_transaction, cosign_payout

AMOUNT = 500_000_000

Mutation = Callable[[list[Instruction]], list[Instruction]]


@pytest.fixture
def w() -> EscrowWorld:
    world = EscrowWorld.new(Ledger.new())
    world.fund(AMOUNT)
    return world


def release(w: EscrowWorld) -> PayoutIntent:
    """The arbitrator (the node's agent key) ruled release; the buyer builds and signs."""
    return PayoutIntent(
        escrow=w.escrow,
        action=PayoutAction.RELEASE,
        amount=AMOUNT,
        signers=(w.buyer.pubkey(), w.arbitrator.pubkey()),
        fee_payer=w.buyer.pubkey(),
    )


def split(w: EscrowWorld) -> PayoutIntent:
    return PayoutIntent(
        escrow=w.escrow,
        action=PayoutAction.SPLIT,
        amount=AMOUNT,
        buyer_bps=4000,
        signers=(w.buyer.pubkey(), w.arbitrator.pubkey()),
        fee_payer=w.buyer.pubkey(),
    )


def handed_to_node(
    w: EscrowWorld,
    intent: PayoutIntent,
    mutate: Mutation,
    *,
    fee_payer: Keypair | None = None,
    extra: tuple[Keypair, ...] = (),
) -> Transaction:
    """The transaction as the buyer hands it over: mutated, signed by buyer (+ extra)."""
    payer = fee_payer or w.buyer
    ixs = mutate(payout_instructions(intent))
    tx = Transaction.new_unsigned(
        Message.new_with_blockhash(ixs, payer.pubkey(), w.ledger.blockhash())
    )
    for key in {
        w.buyer.pubkey(): w.buyer,
        payer.pubkey(): payer,
        **{k.pubkey(): k for k in extra},
    }.values():
        tx = sign_partially(tx, SoftwareSigner(key))
    return tx


def refused(w: EscrowWorld, intent: PayoutIntent, tx: Transaction, code: str) -> None:
    node = SoftwareSigner(w.arbitrator)
    with pytest.raises(PolicyViolationError) as info:
        cosign_payout(tx, intent, node)
    assert info.value.code == code, info.value
    assert info.value.to_dict()["code"] == code


def with_account(ix: Instruction, index: int, key: Pubkey) -> Instruction:
    metas = list(ix.accounts)
    old = metas[index]
    metas[index] = AccountMeta(key, old.is_signer, old.is_writable)
    return Instruction(ix.program_id, ix.data, metas)


def with_data(ix: Instruction, data: bytes) -> Instruction:
    return Instruction(ix.program_id, data, list(ix.accounts))


def at(index: int, change: Callable[[Instruction], Instruction]) -> Mutation:
    def mutate(ixs: list[Instruction]) -> list[Instruction]:
        ixs = list(ixs)
        ixs[index] = change(ixs[index])
        return ixs

    return mutate


def unchanged(ixs: list[Instruction]) -> list[Instruction]:
    return ixs


# release instructions: [0] create buyer ATA, [1] transfer_checked, [2] close_account
TRANSFER, CLOSE = 1, 2


def test_the_ruled_transaction_passes_and_lands(w):
    intent = release(w)
    tx = handed_to_node(w, intent, unchanged)
    done = cosign_payout(tx, intent, SoftwareSigner(w.arbitrator))
    w.ledger.send(require_complete(done))
    assert w.ledger.token_balance(w.ata(w.buyer)) == AMOUNT


def test_compute_budget_within_limits_passes(w):
    intent = release(w)
    tx = handed_to_node(
        w, intent, lambda ixs: [set_compute_unit_limit(100_000), set_compute_unit_price(1000), *ixs]
    )
    check_payout_transaction(tx, intent, w.arbitrator.pubkey())
    w.ledger.send(require_complete(sign_partially(tx, SoftwareSigner(w.arbitrator))))
    assert w.ledger.token_balance(w.ata(w.buyer)) == AMOUNT


def test_cosigner_accounts_in_another_order_pass(w):
    intent = release(w)

    def swap(ix):
        metas = list(ix.accounts)
        metas[-2], metas[-1] = metas[-1], metas[-2]
        return Instruction(ix.program_id, ix.data, metas)

    tx = handed_to_node(w, intent, lambda ixs: [ixs[0], swap(ixs[TRANSFER]), swap(ixs[CLOSE])])
    assert tx.message != handed_to_node(w, intent, unchanged).message
    w.ledger.send(require_complete(cosign_payout(tx, intent, SoftwareSigner(w.arbitrator))))
    assert w.ledger.token_balance(w.ata(w.buyer)) == AMOUNT


@pytest.mark.parametrize("close_escrow", [True, False])
def test_the_close_to_the_seller_is_optional(w, close_escrow):
    intent = dataclasses.replace(release(w), close_escrow=close_escrow)
    with_close = handed_to_node(w, dataclasses.replace(intent, close_escrow=True), unchanged)
    without = handed_to_node(w, dataclasses.replace(intent, close_escrow=False), unchanged)
    check_payout_transaction(with_close, intent, w.arbitrator.pubkey())
    check_payout_transaction(without, intent, w.arbitrator.pubkey())
    w.ledger.send(require_complete(sign_partially(without, SoftwareSigner(w.arbitrator))))
    assert w.ledger.token_balance(w.ata(w.buyer)) == AMOUNT


def test_close_before_the_transfer_is_refused(w):
    intent = release(w)
    refused(
        w,
        intent,
        handed_to_node(w, intent, lambda ixs: [ixs[0], ixs[CLOSE], ixs[TRANSFER]]),
        "policy_duplicate_transfer",
    )


def test_partially_signed_by_a_forger_is_refused(w):
    intent = release(w)
    tx = handed_to_node(w, intent, unchanged)
    other = handed_to_node(w, intent, lambda ixs: [set_compute_unit_limit(1000), *ixs])
    forged = Transaction.populate(tx.message, other.signatures)  # buyer's signature of another msg
    with pytest.raises(SigningError) as info:
        cosign_payout(forged, intent, SoftwareSigner(w.arbitrator))
    assert info.value.code == "bad_signature"


def test_wrong_destination_is_refused_though_the_chain_would_accept_it(w):
    intent = release(w)
    thief = w.ledger.wallet()
    thief_ata = w.ata(thief)

    def mutate(ixs):
        create = create_idempotent_associated_token_account(
            w.buyer.pubkey(), thief.pubkey(), w.escrow.mint
        )
        return [create, with_account(ixs[TRANSFER], 2, thief_ata), ixs[CLOSE]]

    tx = handed_to_node(w, intent, mutate)
    refused(w, intent, tx, "policy_unexpected_ata_create")
    tx = handed_to_node(
        w, intent, lambda ixs: [ixs[0], with_account(ixs[TRANSFER], 2, w.ata(w.seller)), ixs[CLOSE]]
    )
    refused(w, intent, tx, "policy_wrong_destination")
    # Without the check, the runtime pays the seller's account (the thief's, in general).
    w.ledger.send(require_complete(sign_partially(tx, SoftwareSigner(w.arbitrator))))
    assert w.ledger.token_balance(w.ata(w.buyer)) == 0


def test_wrong_amount_in_a_split_is_refused(w):
    intent = split(w)  # [0] ATA buyer, [1] transfer buyer, [2] ATA seller, [3] seller, [4] close
    buyer_leg, seller_leg = intent.legs()

    def mutate(ixs):
        ixs = list(ixs)
        ixs[1] = with_data(ixs[1], bytes([12]) + struct.pack("<Q", buyer_leg.amount + 1) + b"\x06")
        ixs[3] = with_data(ixs[3], bytes([12]) + struct.pack("<Q", seller_leg.amount - 1) + b"\x06")
        return ixs

    refused(w, intent, handed_to_node(w, intent, mutate), "policy_wrong_amount")


def test_missing_leg_of_a_split_is_refused(w):
    intent = split(w)
    refused(
        w,
        intent,
        handed_to_node(w, intent, lambda ixs: [*ixs[:2], ixs[4]]),
        "policy_missing_transfer",
    )


def test_duplicate_transfer_is_refused(w):
    intent = PayoutIntent(
        escrow=w.escrow,
        action=PayoutAction.RELEASE,
        amount=AMOUNT,
        close_escrow=False,
        signers=(w.buyer.pubkey(), w.arbitrator.pubkey()),
        fee_payer=w.buyer.pubkey(),
    )
    refused(
        w,
        intent,
        handed_to_node(w, intent, lambda ixs: [*ixs, ixs[TRANSFER]]),
        "policy_duplicate_transfer",
    )


def test_extra_token_instruction_approve_is_refused(w):
    intent = release(w)
    thief = w.ledger.wallet().pubkey()
    approve = approve_checked(
        ApproveCheckedParams(
            program_id=w.escrow.token_program,
            source=w.escrow.escrow_token_account,
            mint=w.escrow.mint,
            delegate=thief,
            owner=w.escrow.multisig,
            amount=AMOUNT,
            decimals=w.escrow.decimals,
            signers=list(intent.signers),
        )
    )
    refused(
        w,
        intent,
        handed_to_node(w, intent, lambda ixs: [approve, *ixs]),
        "policy_unexpected_instruction",
    )


def test_extra_system_transfer_from_the_node_is_refused(w):
    intent = release(w)
    drain = transfer(
        TransferParams(
            from_pubkey=w.arbitrator.pubkey(), to_pubkey=w.buyer.pubkey(), lamports=10**9
        )
    )
    refused(
        w, intent, handed_to_node(w, intent, lambda ixs: [*ixs, drain]), "policy_unexpected_program"
    )


def test_unknown_program_is_refused(w):
    intent = release(w)
    memo = Instruction(
        Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"), b"hello", []
    )
    refused(
        w, intent, handed_to_node(w, intent, lambda ixs: [memo, *ixs]), "policy_unexpected_program"
    )


def test_other_token_program_is_refused(w):
    intent = release(w)
    refused(
        w,
        intent,
        handed_to_node(
            w,
            intent,
            at(TRANSFER, lambda ix: Instruction(TOKEN_2022_PROGRAM_ID, ix.data, list(ix.accounts))),
        ),
        "policy_wrong_token_program",
    )


def test_other_escrow_account_is_refused(w):
    # Another trade between the same parties, also co-signed by the node's agent key.
    other = EscrowWorld.new(w.ledger, trade_ref="trade-0002")
    intent = release(w)
    refused(
        w,
        intent,
        handed_to_node(
            w,
            intent,
            at(TRANSFER, lambda ix: with_account(ix, 0, other.escrow.escrow_token_account)),
        ),
        "policy_wrong_escrow_account",
    )


def test_other_multisig_is_refused(w):
    intent = release(w)
    other = EscrowWorld.new(w.ledger, trade_ref="trade-0003")
    refused(
        w,
        intent,
        handed_to_node(
            w, intent, at(TRANSFER, lambda ix: with_account(ix, 3, other.escrow.multisig))
        ),
        "policy_wrong_multisig",
    )


def test_other_mint_is_refused(w):
    intent = release(w)
    other_mint = w.ledger.create_mint(w.ledger.wallet(), 6)
    refused(
        w,
        intent,
        handed_to_node(w, intent, at(TRANSFER, lambda ix: with_account(ix, 1, other_mint))),
        "policy_wrong_mint",
    )


def test_other_decimals_are_refused(w):
    intent = release(w)
    data = bytes([12]) + struct.pack("<Q", AMOUNT) + b"\x09"
    refused(
        w,
        intent,
        handed_to_node(w, intent, at(TRANSFER, lambda ix: with_data(ix, data))),
        "policy_wrong_decimals",
    )


def test_close_to_someone_but_the_seller_is_refused(w):
    intent = release(w)
    refused(
        w,
        intent,
        handed_to_node(w, intent, at(CLOSE, lambda ix: with_account(ix, 1, w.buyer.pubkey()))),
        "policy_wrong_close_destination",
    )


def test_wrong_cosigners_in_the_transfer_are_refused(w):
    intent = release(w)

    def only_node(ix):
        metas = [m for m in ix.accounts if m.pubkey != w.buyer.pubkey()]
        return Instruction(ix.program_id, ix.data, metas)

    refused(w, intent, handed_to_node(w, intent, at(TRANSFER, only_node)), "policy_wrong_cosigners")


def test_compute_price_above_limit_is_refused(w):
    intent = release(w)
    too_much = ComputeBudgetLimits().max_unit_price_micro_lamports + 1
    refused(
        w,
        intent,
        handed_to_node(w, intent, lambda ixs: [set_compute_unit_price(too_much), *ixs]),
        "policy_compute_budget_exceeded",
    )


def test_node_as_fee_payer_is_refused_when_the_intent_says_buyer(w):
    intent = release(w)
    tx = Transaction.new_unsigned(
        Message.new_with_blockhash(
            payout_instructions(intent), w.arbitrator.pubkey(), w.ledger.blockhash()
        )
    )
    refused(w, intent, sign_partially(tx, SoftwareSigner(w.buyer)), "policy_wrong_fee_payer")


def test_an_extra_required_signer_is_refused(w):
    intent = release(w)
    stranger = w.ledger.wallet()
    ping = transfer(
        TransferParams(from_pubkey=stranger.pubkey(), to_pubkey=w.buyer.pubkey(), lamports=1)
    )
    refused(
        w,
        intent,
        handed_to_node(w, intent, lambda ixs: [*ixs, ping], extra=(stranger,)),
        "policy_unexpected_signer",
    )


def test_node_not_a_cosigner_of_the_intent_is_refused(w):
    intent = PayoutIntent(
        escrow=w.escrow,
        action=PayoutAction.RELEASE,
        amount=AMOUNT,
        signers=(w.buyer.pubkey(), w.seller.pubkey()),
        fee_payer=w.buyer.pubkey(),
    )
    tx = handed_to_node(w, intent, unchanged)
    refused(w, intent, tx, "policy_node_not_cosigner")


def test_a_refund_handed_over_for_a_release_ruling_is_refused(w):
    intent = release(w)
    refund = PayoutIntent(
        escrow=w.escrow,
        action=PayoutAction.REFUND,
        amount=AMOUNT,
        signers=(w.buyer.pubkey(), w.arbitrator.pubkey()),
        fee_payer=w.buyer.pubkey(),
    )
    refused(w, intent, handed_to_node(w, refund, unchanged), "policy_unexpected_ata_create")
    no_ata = PayoutIntent(
        escrow=w.escrow,
        action=PayoutAction.REFUND,
        amount=AMOUNT,
        create_recipient_accounts=False,
        signers=(w.buyer.pubkey(), w.arbitrator.pubkey()),
        fee_payer=w.buyer.pubkey(),
    )
    refused(w, intent, handed_to_node(w, no_ata, unchanged), "policy_wrong_destination")
