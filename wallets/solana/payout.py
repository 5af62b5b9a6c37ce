"""Payout intents and their transactions (release, refund, split), pure builders.

A :class:`PayoutIntent` is the small value the node decides on and journals
(escrow, action, amounts, the two multisig co-signers, fee payer). A transaction
is a disposable rendering of an intent at one blockhash: when the blockhash
expires, :func:`build_payout_transaction` is called again with a fresh one and
the parties re-sign. The node's signing journal (I5) is keyed on
:meth:`PayoutIntent.journal_key`, never on transaction bytes, so re-signing the
same intent at a new blockhash is not a second, conflicting signature.

Amounts are integers in the mint's base units. A split gives the buyer
``floor(amount * buyer_bps / 10000)`` and the seller the rest (the seller, who
funded, gets the rounding remainder); zero-amount legs are left out.

Instructions of a payout, in order:

1. optional compute-budget instructions (unit limit, unit price);
2. per leg: create the recipient's associated token account idempotently
   (paid by the fee payer), then ``transfer_checked`` from the escrow token
   account, authority = the multisig, with the two co-signers;
3. optional ``close_account`` of the escrow token account, rent to the seller.

Wrapped SOL with ``unwrap_sol=True`` (release or refund only): a single
``close_account`` of the escrow token account to the recipient's wallet; the
recipient receives the escrowed lamports as native SOL *plus* the account's
rent reserve (~0.00204 SOL that the seller deposited). Without ``unwrap_sol``
wrapped SOL is paid like any token (to the recipient's wSOL ATA).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import Instruction
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from spl.token.instructions import (
    close_account,
    create_idempotent_associated_token_account,
    transfer_checked,
)
from spl.token.models import CloseAccountParams, TransferCheckedParams

from wallets.solana.errors import InvalidEscrowParamsError
from wallets.solana.escrow import EscrowAccounts

BPS_DENOMINATOR = 10_000


class PayoutAction(enum.StrEnum):
    RELEASE = "release"
    """Everything to the buyer."""
    REFUND = "refund"
    """Everything back to the seller."""
    SPLIT = "split"
    """An arbitrator's ruling: ``buyer_bps`` to the buyer, the rest to the seller."""


@dataclass(frozen=True, slots=True)
class PayoutLeg:
    recipient: Pubkey
    """The recipient's wallet (buyer or seller)."""
    token_account: Pubkey
    """Where the tokens go: the recipient's associated token account for the mint."""
    amount: int


@dataclass(frozen=True, slots=True)
class ComputeBudget:
    """Optional compute-budget instructions added in front of a payout."""

    unit_limit: int | None = None
    unit_price_micro_lamports: int | None = None

    def instructions(self) -> list[Instruction]:
        ixs = []
        if self.unit_limit is not None:
            ixs.append(set_compute_unit_limit(self.unit_limit))
        if self.unit_price_micro_lamports is not None:
            ixs.append(set_compute_unit_price(self.unit_price_micro_lamports))
        return ixs


@dataclass(frozen=True, slots=True)
class PayoutIntent:
    """What is to be paid out of one escrow; the same intent can be rendered at any
    blockhash. Validated on construction."""

    escrow: EscrowAccounts
    action: PayoutAction
    amount: int
    """The escrow token account's whole balance, paid out in total."""
    signers: tuple[Pubkey, Pubkey]
    """The two multisig co-signers (two of buyer, seller, arbitrator)."""
    fee_payer: Pubkey
    buyer_bps: int | None = None
    """Buyer's share in basis points, for :attr:`PayoutAction.SPLIT` only."""
    close_escrow: bool = True
    """Close the (emptied) escrow token account, rent back to the seller."""
    create_recipient_accounts: bool = True
    """Create each recipient's associated token account idempotently first."""
    unwrap_sol: bool = False
    """Wrapped SOL only, release/refund: pay by closing the account to the recipient."""

    def __post_init__(self) -> None:
        parties = set(self.escrow.parties.signers())
        if len(set(self.signers)) != 2 or not set(self.signers) <= parties:
            raise InvalidEscrowParamsError(
                "a payout needs two different co-signers from the escrow's parties",
                code="bad_cosigners",
            )
        if self.amount <= 0:
            raise InvalidEscrowParamsError("amount must be positive", code="bad_amount")
        if self.action is PayoutAction.SPLIT:
            if self.buyer_bps is None or not 0 < self.buyer_bps < BPS_DENOMINATOR:
                raise InvalidEscrowParamsError(
                    "a split needs 0 < buyer_bps < 10000 (use release or refund otherwise)",
                    code="bad_split_bps",
                )
        elif self.buyer_bps is not None:
            raise InvalidEscrowParamsError("buyer_bps is only for a split", code="bad_split_bps")
        if self.unwrap_sol:
            if not self.escrow.is_native:
                raise InvalidEscrowParamsError(
                    "unwrap_sol is for wrapped SOL escrows only", code="bad_unwrap"
                )
            if self.action is PayoutAction.SPLIT or not self.close_escrow:
                raise InvalidEscrowParamsError(
                    "unwrap_sol pays release/refund by closing the escrow account",
                    code="bad_unwrap",
                )

    @property
    def buyer_amount(self) -> int:
        if self.action is PayoutAction.RELEASE:
            return self.amount
        if self.action is PayoutAction.REFUND:
            return 0
        assert self.buyer_bps is not None
        return self.amount * self.buyer_bps // BPS_DENOMINATOR

    @property
    def seller_amount(self) -> int:
        return self.amount - self.buyer_amount

    def legs(self) -> tuple[PayoutLeg, ...]:
        """Token transfers of this payout (empty when paid by unwrapping)."""
        if self.unwrap_sol:
            return ()
        parties = self.escrow.parties
        out = []
        for wallet, amount in (
            (parties.buyer, self.buyer_amount),
            (parties.seller, self.seller_amount),
        ):
            if amount > 0:
                out.append(PayoutLeg(wallet, self.escrow.associated_token_account(wallet), amount))
        return tuple(out)

    def close_destination(self) -> Pubkey | None:
        """Where the escrow token account's lamports go when it is closed."""
        if not self.close_escrow:
            return None
        if self.unwrap_sol and self.action is PayoutAction.RELEASE:
            return self.escrow.parties.buyer
        return self.escrow.parties.seller

    def journal_key(self) -> str:
        """Stable key of "this action on this escrow on this cluster" for the node's
        signing journal (I4/I5): equal for every rendering of the intent."""
        e = self.escrow
        return f"solana:{e.network.genesis_hash}:{e.escrow_token_account}:{self.action.value}"


def _transfer_ix(intent: PayoutIntent, leg: PayoutLeg) -> Instruction:
    e = intent.escrow
    return transfer_checked(
        TransferCheckedParams(
            program_id=e.token_program,
            source=e.escrow_token_account,
            mint=e.mint,
            dest=leg.token_account,
            owner=e.multisig,
            amount=leg.amount,
            decimals=e.decimals,
            signers=list(intent.signers),
        )
    )


def _close_ix(intent: PayoutIntent, destination: Pubkey) -> Instruction:
    e = intent.escrow
    return close_account(
        CloseAccountParams(
            program_id=e.token_program,
            account=e.escrow_token_account,
            dest=destination,
            owner=e.multisig,
            signers=list(intent.signers),
        )
    )


def core_payout_instructions(intent: PayoutIntent) -> list[Instruction]:
    """The instructions that move value: the transfers and the close (no ATA creation,
    no compute budget). The policy check compares against exactly these."""
    ixs = [_transfer_ix(intent, leg) for leg in intent.legs()]
    destination = intent.close_destination()
    if destination is not None:
        ixs.append(_close_ix(intent, destination))
    return ixs


def ata_create_instruction(intent: PayoutIntent, leg: PayoutLeg) -> Instruction:
    return create_idempotent_associated_token_account(
        intent.fee_payer, leg.recipient, intent.escrow.mint, intent.escrow.token_program
    )


def payout_instructions(
    intent: PayoutIntent, *, compute_budget: ComputeBudget | None = None
) -> list[Instruction]:
    """All instructions of the payout transaction, in order."""
    ixs = compute_budget.instructions() if compute_budget else []
    for leg in intent.legs():
        if intent.create_recipient_accounts:
            ixs.append(ata_create_instruction(intent, leg))
        ixs.append(_transfer_ix(intent, leg))
    destination = intent.close_destination()
    if destination is not None:
        ixs.append(_close_ix(intent, destination))
    return ixs


def build_payout_transaction(
    intent: PayoutIntent,
    *,
    recent_blockhash: Hash,
    compute_budget: ComputeBudget | None = None,
) -> Transaction:
    """Render ``intent`` as an unsigned legacy transaction at ``recent_blockhash``.

    Required signers: the fee payer and the two co-signers. Deterministic: the
    same intent and blockhash give the same bytes; after the blockhash expires,
    call again with a fresh one and collect the signatures again.
    """
    message = Message.new_with_blockhash(
        payout_instructions(intent, compute_budget=compute_budget),
        intent.fee_payer,
        recent_blockhash,
    )
    return Transaction.new_unsigned(message)
