"""Bitcoin escrow: descriptors, payout PSBTs, policy checks, finalization, signers.

Pure: no network I/O.  Network parameters are passed explicitly
(:mod:`wallets.bitcoin.network`).
"""

from wallets.bitcoin.amounts import (
    SpendPath,
    dust_threshold,
    payout_vsize,
    replacement_fee,
    split_amounts,
)
from wallets.bitcoin.consensus import ConsensusError, verify_transaction
from wallets.bitcoin.descriptor import Escrow, EscrowScript, descriptor_checksum
from wallets.bitcoin.errors import (
    AddressValidationError,
    BitcoinWalletError,
    DescriptorMismatchError,
    DustOutputError,
    FinalizeError,
    FundingError,
    InsufficientFundsError,
    KeyValidationError,
    PsbtPolicyError,
    Violation,
)
from wallets.bitcoin.finalize import (
    FinalizedTransaction,
    combine_psbts,
    finalize_payout,
    finalize_psbt,
)
from wallets.bitcoin.keys import PartyKey, parse_party_key, payout_script_pubkey
from wallets.bitcoin.network import (
    MAINNET,
    REGTEST,
    SIGNET,
    TESTNET,
    BitcoinNetwork,
    network_by_name,
)
from wallets.bitcoin.policy import CheckedPsbt, check_payout_psbt, psbt_for_signing
from wallets.bitcoin.psbt import (
    FundingOutput,
    PayoutKind,
    PayoutPsbt,
    Ruling,
    build_payout_psbt,
)
from wallets.bitcoin.signer import Signer, SoftwareSigner

__all__ = [
    "MAINNET",
    "REGTEST",
    "SIGNET",
    "TESTNET",
    "AddressValidationError",
    "BitcoinNetwork",
    "BitcoinWalletError",
    "CheckedPsbt",
    "ConsensusError",
    "DescriptorMismatchError",
    "DustOutputError",
    "Escrow",
    "EscrowScript",
    "FinalizeError",
    "FinalizedTransaction",
    "FundingError",
    "FundingOutput",
    "InsufficientFundsError",
    "KeyValidationError",
    "PartyKey",
    "PayoutKind",
    "PayoutPsbt",
    "PsbtPolicyError",
    "Ruling",
    "Signer",
    "SoftwareSigner",
    "SpendPath",
    "Violation",
    "build_payout_psbt",
    "check_payout_psbt",
    "combine_psbts",
    "descriptor_checksum",
    "dust_threshold",
    "finalize_payout",
    "finalize_psbt",
    "network_by_name",
    "parse_party_key",
    "payout_script_pubkey",
    "payout_vsize",
    "psbt_for_signing",
    "replacement_fee",
    "split_amounts",
    "verify_transaction",
]
