"""Errors of the Bitcoin escrow builders (a subtree of ``wallets.errors``)."""

from __future__ import annotations

from enum import StrEnum

from wallets.errors import KeyValidationError, WalletError

__all__ = [
    "AddressValidationError",
    "BitcoinWalletError",
    "DescriptorMismatchError",
    "DustOutputError",
    "FinalizeError",
    "FundingError",
    "InsufficientFundsError",
    "KeyValidationError",
    "PsbtPolicyError",
    "Violation",
]


class BitcoinWalletError(WalletError):
    code = "bitcoin_wallet_error"


class AddressValidationError(KeyValidationError):
    """A payout address does not parse or is for another network."""

    code = "invalid_address"


class DescriptorMismatchError(BitcoinWalletError):
    """A descriptor is malformed, has a bad checksum, or is not an escrow descriptor."""

    code = "invalid_descriptor"


class FundingError(BitcoinWalletError):
    """The funding outputs handed to a builder do not pay the escrow."""

    code = "invalid_funding"


class DustOutputError(BitcoinWalletError):
    """After the fee, a payout would be below the dust threshold."""

    code = "dust_output"


class InsufficientFundsError(BitcoinWalletError):
    """The fee is larger than the escrowed amount."""

    code = "insufficient_funds"


class FinalizeError(BitcoinWalletError):
    """A PSBT could not be combined, finalized or extracted (e.g. missing signatures)."""

    code = "finalize_failed"


class Violation(StrEnum):
    """Machine-readable reasons for which the policy checker refuses a PSBT."""

    MALFORMED = "psbt_malformed"
    TX_VERSION = "psbt_tx_version"
    LOCKTIME = "psbt_locktime"
    SEQUENCE = "psbt_sequence"
    FOREIGN_INPUT = "psbt_foreign_input"
    DUPLICATE_INPUT = "psbt_duplicate_input"
    MISSING_FUNDING_INPUT = "psbt_missing_funding_input"
    MISSING_WITNESS_UTXO = "psbt_missing_witness_utxo"
    WITNESS_UTXO_MISMATCH = "psbt_witness_utxo_mismatch"
    NON_WITNESS_UTXO_MISMATCH = "psbt_non_witness_utxo_mismatch"
    WITNESS_SCRIPT_MISMATCH = "psbt_witness_script_mismatch"
    REDEEM_SCRIPT_PRESENT = "psbt_redeem_script_present"
    ALREADY_FINALIZED = "psbt_already_finalized"
    SIGHASH_NOT_ALL = "psbt_sighash_not_all"
    UNEXPECTED_SIGNER = "psbt_unexpected_signer"
    UNEXPECTED_DERIVATION = "psbt_unexpected_derivation"
    INVALID_SIGNATURE = "psbt_invalid_signature"
    UNEXPECTED_OUTPUT = "psbt_unexpected_output"
    MISSING_OUTPUT = "psbt_missing_output"
    OUTPUT_AMOUNT_MISMATCH = "psbt_output_amount_mismatch"
    NEGATIVE_FEE = "psbt_negative_fee"
    FEE_ABOVE_CAP = "psbt_fee_above_cap"
    DUST_OUTPUT = "psbt_dust_output"


class PsbtPolicyError(BitcoinWalletError):
    """The node refuses a PSBT: it does not do exactly what was ruled.

    ``violation`` (also ``code``) says why; ``fields`` may hold ``input_index`` or
    ``output_index``.
    """

    code = "psbt_policy_violation"

    def __init__(self, violation: Violation, message: str, **fields: object) -> None:
        super().__init__(message, code=violation.value, **fields)
        self.violation = violation
