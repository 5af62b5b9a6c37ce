"""Errors of the custody slice (ledger, addresses, withdrawals), under ``node.errors``."""

from __future__ import annotations

from node.errors import EscrowdError, ValidationError


class LedgerError(EscrowdError):
    """A ledger entry was refused as a whole; nothing of it was posted."""

    code = "ledger_error"
    http_status = 409


class InsufficientFundsError(LedgerError):
    """The entry would take a user's ``available`` or ``held`` account below zero."""

    code = "insufficient_funds"


class UnbalancedEntryError(LedgerError):
    """The legs of an entry do not sum to zero for some asset (or a leg is malformed)."""

    code = "unbalanced_entry"
    http_status = 422


class RefConflictError(LedgerError):
    """An entry with this ref exists already, with different legs."""

    code = "ref_conflict"


class WithdrawalRefusedError(EscrowdError):
    """The withdrawal policy refused a request; ``code`` says which rule."""

    code = "withdrawal_refused"
    http_status = 403


class UnsupportedAssetError(ValidationError):
    code = "unsupported_asset"
