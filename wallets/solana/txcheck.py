"""The check a payout transaction must pass before the node adds its signature.

:func:`check_payout_transaction` decodes the message and refuses — raising
:class:`~wallets.solana.errors.PolicyViolationError` with one of the codes
below — anything that is not exactly the payout of a :class:`PayoutIntent`.

Allowed, besides the ruled ``transfer_checked`` legs and the optional
``close_account`` (to the seller; to the recipient when unwrapping SOL):

* ComputeBudget ``SetComputeUnitLimit`` / ``SetComputeUnitPrice`` within limits;
* Associated Token Account ``CreateIdempotent`` of a ruled recipient's account for
  the escrow's mint, paid by the intent's fee payer.

Codes (``PolicyViolationError.code``):

==================================  ==============================================
``policy_node_not_cosigner``        the node's key is not one of the intent's co-signers
``policy_wrong_fee_payer``          the fee payer is not the intent's
``policy_unexpected_signer``        a key outside fee payer + co-signers must sign
``policy_unexpected_program``       an instruction of any other program
``policy_wrong_token_program``      the other token program (SPL Token vs Token-2022)
``policy_unexpected_instruction``   another instruction of an allowed program
                                    (``Transfer``, ``Approve``, ``SetAuthority``,
                                    a non-idempotent ATA create, heap frame, ...)
``policy_unexpected_ata_create``    an ATA create for a non-recipient / other payer
``policy_compute_budget_exceeded``  compute unit limit or price above the limits
``policy_wrong_escrow_account``     the source / closed account is not the escrow's
``policy_wrong_multisig``           the authority is not the escrow's multisig
``policy_wrong_mint``               another mint
``policy_wrong_decimals``           other decimals in ``transfer_checked``
``policy_wrong_destination``        a transfer to anyone but a ruled recipient's account
``policy_wrong_amount``             a ruled recipient gets another amount
``policy_wrong_cosigners``          the multisig signer accounts are not the intent's two
``policy_wrong_close_destination``  the escrow account's lamports go elsewhere
``policy_missing_transfer``         a ruled leg (or the unwrapping close) is missing
``policy_duplicate_transfer``       a recipient is paid twice / two closes
``policy_instruction_mismatch``     belt and braces: the value-moving instructions
                                    differ from the intent's in any other way
==================================  ==============================================

The co-signer accounts of a token instruction may be listed in any order.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass
from typing import Any, NoReturn

from solders.compute_budget import ID as COMPUTE_BUDGET_PROGRAM_ID
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction
from spl.token.constants import ASSOCIATED_TOKEN_PROGRAM_ID

from wallets.solana.errors import PolicyViolationError
from wallets.solana.escrow import TOKEN_PROGRAMS
from wallets.solana.payout import PayoutIntent, ata_create_instruction, core_payout_instructions
from wallets.solana.signer import (
    Signer,
    required_signers,
    sign_partially,
    verify_present_signatures,
)

_TRANSFER_CHECKED = 12
_CLOSE_ACCOUNT = 9
_CB_SET_LIMIT = 2
_CB_SET_PRICE = 3
_ATA_CREATE_IDEMPOTENT = b"\x01"


@dataclass(frozen=True, slots=True)
class ComputeBudgetLimits:
    """Upper bounds for compute-budget instructions in a transaction the node signs
    (matters most when the node pays the fee)."""

    max_unit_limit: int = 400_000
    max_unit_price_micro_lamports: int = 5_000_000


@dataclass(frozen=True, slots=True)
class DecodedInstruction:
    index: int
    program_id: Pubkey
    accounts: tuple[Pubkey, ...]
    data: bytes


def decode_instructions(tx: Transaction) -> list[DecodedInstruction]:
    """The message's instructions with account indexes resolved to keys."""
    msg = tx.message
    keys = msg.account_keys
    out = []
    for i, ci in enumerate(msg.instructions):
        try:
            program = keys[ci.program_id_index]
            accounts = tuple(keys[a] for a in bytes(ci.accounts))
        except IndexError as exc:
            raise PolicyViolationError(
                "instruction refers to a missing account",
                code="policy_instruction_mismatch",
                instruction=i,
            ) from exc
        out.append(DecodedInstruction(i, program, accounts, bytes(ci.data)))
    return out


def _violation(code: str, message: str, ix: DecodedInstruction | None, **fields: Any) -> NoReturn:
    if ix is not None:
        fields["instruction"] = ix.index
    raise PolicyViolationError(message, code=code, **fields)


def _expect(code: str, what: str, ix: DecodedInstruction, expected: object, found: object) -> None:
    if expected != found:
        _violation(
            code,
            f"{what}: expected {expected}, found {found}",
            ix,
            expected=str(expected),
            found=str(found),
        )


def _check_compute_budget(ix: DecodedInstruction, limits: ComputeBudgetLimits) -> None:
    kind = ix.data[:1]
    if kind == bytes([_CB_SET_LIMIT]) and len(ix.data) == 5:
        (units,) = struct.unpack_from("<I", ix.data, 1)
        if units > limits.max_unit_limit:
            _violation(
                "policy_compute_budget_exceeded",
                "compute unit limit too high",
                ix,
                found=units,
                limit=limits.max_unit_limit,
            )
    elif kind == bytes([_CB_SET_PRICE]) and len(ix.data) == 9:
        (price,) = struct.unpack_from("<Q", ix.data, 1)
        if price > limits.max_unit_price_micro_lamports:
            _violation(
                "policy_compute_budget_exceeded",
                "compute unit price too high",
                ix,
                found=price,
                limit=limits.max_unit_price_micro_lamports,
            )
    else:
        _violation("policy_unexpected_instruction", "compute budget instruction not allowed", ix)


def _check_ata_create(ix: DecodedInstruction, intent: PayoutIntent) -> None:
    if ix.data != _ATA_CREATE_IDEMPOTENT:
        _violation(
            "policy_unexpected_instruction",
            "only idempotent associated token account creation is allowed",
            ix,
        )
    allowed = {
        tuple(m.pubkey for m in ata_create_instruction(intent, leg).accounts)
        for leg in intent.legs()
    }
    if ix.accounts not in allowed:
        _violation(
            "policy_unexpected_ata_create",
            "associated token account creation for someone not paid by the ruling",
            ix,
        )


def _check_signer_accounts(
    ix: DecodedInstruction, intent: PayoutIntent, signer_accounts: tuple[Pubkey, ...]
) -> None:
    if len(signer_accounts) != 2 or set(signer_accounts) != set(intent.signers):
        _violation(
            "policy_wrong_cosigners",
            "multisig co-signers differ from the intent's",
            ix,
            expected=[str(k) for k in intent.signers],
            found=[str(k) for k in signer_accounts],
        )


def _check_transfer(ix: DecodedInstruction, intent: PayoutIntent, paid: dict[Pubkey, int]) -> None:
    e = intent.escrow
    if len(ix.data) != 10 or len(ix.accounts) < 4:
        _violation("policy_instruction_mismatch", "malformed transfer_checked", ix)
    source, mint, dest, authority = ix.accounts[:4]
    _expect("policy_wrong_escrow_account", "transfer source", ix, e.escrow_token_account, source)
    _expect("policy_wrong_mint", "mint", ix, e.mint, mint)
    _expect("policy_wrong_multisig", "transfer authority", ix, e.multisig, authority)
    _check_signer_accounts(ix, intent, ix.accounts[4:])
    legs = {leg.token_account: leg for leg in intent.legs()}
    if dest not in legs:
        _violation(
            "policy_wrong_destination",
            "transfer to an account the ruling does not pay",
            ix,
            found=str(dest),
            expected=[str(k) for k in legs],
        )
    if dest in paid:
        _violation("policy_duplicate_transfer", "recipient paid twice", ix, found=str(dest))
    (amount,) = struct.unpack_from("<Q", ix.data, 1)
    _expect("policy_wrong_amount", "amount", ix, legs[dest].amount, amount)
    _expect("policy_wrong_decimals", "decimals", ix, e.decimals, ix.data[9])
    paid[dest] = amount


def _check_close(ix: DecodedInstruction, intent: PayoutIntent) -> None:
    e = intent.escrow
    if len(ix.data) != 1 or len(ix.accounts) < 3:
        _violation("policy_instruction_mismatch", "malformed close_account", ix)
    account, dest, authority = ix.accounts[:3]
    _expect("policy_wrong_escrow_account", "closed account", ix, e.escrow_token_account, account)
    _expect("policy_wrong_multisig", "close authority", ix, e.multisig, authority)
    _check_signer_accounts(ix, intent, ix.accounts[3:])
    expected = intent.close_destination() or e.parties.seller
    _expect("policy_wrong_close_destination", "close destination", ix, expected, dest)


def _normalized(
    program: Pubkey, accounts: tuple[Pubkey, ...], data: bytes
) -> tuple[Pubkey, tuple[Pubkey, ...], bytes]:
    """The multisig co-signer accounts may come in any order."""
    fixed = 4 if data[:1] == bytes([_TRANSFER_CHECKED]) else 3
    return program, accounts[:fixed] + tuple(sorted(accounts[fixed:], key=bytes)), data


def check_payout_transaction(
    tx: Transaction,
    intent: PayoutIntent,
    node_key: Pubkey,
    *,
    limits: ComputeBudgetLimits = ComputeBudgetLimits(),  # noqa: B008 (frozen value)
) -> None:
    """Refuse (raise :class:`PolicyViolationError`) unless ``tx`` is exactly ``intent``'s
    payout, co-signed by ``node_key``. Returns ``None`` when the node may sign."""
    if node_key not in intent.signers:
        _violation(
            "policy_node_not_cosigner",
            "the node's key is not a co-signer of the intent",
            None,
            node_key=str(node_key),
        )
    signers = required_signers(tx)
    if not signers or signers[0] != intent.fee_payer:
        _violation(
            "policy_wrong_fee_payer",
            "fee payer differs from the intent's",
            None,
            expected=str(intent.fee_payer),
            found=str(signers[0]) if signers else None,
        )
    allowed_signers = {intent.fee_payer, *intent.signers}
    extra = [str(k) for k in signers if k not in allowed_signers]
    if extra:
        _violation(
            "policy_unexpected_signer", "transaction requires other signers", None, found=extra
        )

    e = intent.escrow
    paid: dict[Pubkey, int] = {}
    closed = False
    value_moving: list[DecodedInstruction] = []
    for ix in decode_instructions(tx):
        if ix.program_id == COMPUTE_BUDGET_PROGRAM_ID:
            _check_compute_budget(ix, limits)
            continue
        if ix.program_id == ASSOCIATED_TOKEN_PROGRAM_ID:
            _check_ata_create(ix, intent)
            continue
        if ix.program_id not in TOKEN_PROGRAMS:
            _violation(
                "policy_unexpected_program",
                "instruction of a program not allowed",
                ix,
                program=str(ix.program_id),
            )
        _expect("policy_wrong_token_program", "token program", ix, e.token_program, ix.program_id)
        kind = ix.data[:1]
        if closed:
            _violation(
                "policy_duplicate_transfer"
                if kind in (bytes([_CLOSE_ACCOUNT]), bytes([_TRANSFER_CHECKED]))
                else "policy_unexpected_instruction",
                "instruction after the escrow account is closed",
                ix,
            )
        if kind == bytes([_TRANSFER_CHECKED]):
            _check_transfer(ix, intent, paid)
        elif kind == bytes([_CLOSE_ACCOUNT]):
            _check_close(ix, intent)
            closed = True
        else:
            _violation(
                "policy_unexpected_instruction",
                "token instruction not allowed",
                ix,
                token_instruction=ix.data[0] if ix.data else None,
            )
        value_moving.append(ix)

    missing = [str(leg.token_account) for leg in intent.legs() if leg.token_account not in paid]
    if missing:
        _violation("policy_missing_transfer", "a ruled transfer is missing", None, missing=missing)
    if intent.unwrap_sol and not closed:
        _violation("policy_missing_transfer", "the unwrapping close is missing", None)

    # Belt and braces: the value-moving instructions are exactly the intent's; the close
    # to the seller is optional either way.
    rendered = intent if intent.unwrap_sol else dataclasses.replace(intent, close_escrow=closed)
    expected = [
        _normalized(ix.program_id, tuple(m.pubkey for m in ix.accounts), bytes(ix.data))
        for ix in core_payout_instructions(rendered)
    ]
    found = [_normalized(ix.program_id, ix.accounts, ix.data) for ix in value_moving]
    if found != expected:
        _violation(
            "policy_instruction_mismatch",
            "value-moving instructions differ from the intent's",
            None,
        )


def cosign_payout(
    tx: Transaction,
    intent: PayoutIntent,
    signer: Signer,
    *,
    limits: ComputeBudgetLimits = ComputeBudgetLimits(),  # noqa: B008 (frozen value)
) -> Transaction:
    """:func:`check_payout_transaction`, check that the signatures already present are
    valid, then add ``signer``'s signature (other signatures kept). The caller checks
    :func:`wallets.solana.policy.require_action_allowed` and journals
    ``intent.journal_key()`` first (I5)."""
    check_payout_transaction(tx, intent, signer.pubkey(), limits=limits)
    verify_present_signatures(tx)
    return sign_partially(tx, signer)


def has_signature(tx: Transaction, key: Pubkey) -> bool:
    """Whether ``key``'s signature slot is filled (not verified; see ``require_complete``)."""
    signers = required_signers(tx)
    return key in signers and tx.signatures[signers.index(key)] != Signature.default()
