"""Errors raised by ``wallets.solana``.

``wallets`` must not import ``node`` (dependencies point api -> node -> wallets):
the root here, :class:`SolanaWalletError`, hangs under the wallets layer's root
``wallets.errors.WalletError`` (a machine-readable ``code``, a message and
structured ``fields``, the shape of the node's ``EscrowdError``), so the node maps
the whole layer in one place. :class:`SigningError` is also a
``wallets.errors.SigningError``.

Codes are stable strings: the node and the API may match on them.
"""

from __future__ import annotations

from wallets.errors import SigningError as WalletSigningError
from wallets.errors import WalletError


class SolanaWalletError(WalletError):
    """Root of every error ``wallets.solana`` raises on purpose."""

    code: str = "solana_wallet_error"

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class InvalidEscrowParamsError(SolanaWalletError):
    """Escrow or payout parameters are inconsistent (same key twice, bad bps, ...)."""

    code = "invalid_escrow_params"


class UnsupportedMintError(SolanaWalletError):
    """The mint cannot be escrowed (transfer fee, transfer hook, permanent delegate, ...).

    ``code`` names the reason, e.g. ``mint_transfer_fee``.
    """

    code = "unsupported_mint"


class TransactionDecodeError(SolanaWalletError):
    """Bytes handed in are not a legacy Solana transaction we can read."""

    code = "malformed_transaction"


class SigningError(SolanaWalletError, WalletSigningError):
    """A key could not sign (not a required signer, bad signature, ...)."""

    code = "signing_error"


class IncompleteTransactionError(SigningError):
    """A transaction is still missing required signatures."""

    code = "missing_signatures"


class PolicyViolationError(SolanaWalletError):
    """The node refuses to sign: the transaction is not exactly the ruled payout.

    ``code`` is one of the ``policy_*`` codes listed in :mod:`wallets.solana.txcheck`;
    ``fields`` carry the instruction index and the expected / found values.
    """

    code = "policy_violation"


class ActionNotAllowedError(PolicyViolationError):
    """The escrow's state does not allow the node to co-sign this action now."""

    code = "policy_action_not_allowed"
