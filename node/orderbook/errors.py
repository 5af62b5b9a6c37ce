"""Errors of the order book and ledger core, under ``node.errors``.

Every error carries a machine-readable ``code``; the engine turns validation
failures of a command into an ``OrderRejected`` event with the same code.
"""

from __future__ import annotations

from node.errors import EscrowdError, ValidationError


class OrderValidationError(ValidationError):
    """An order or a trading pair's parameters break a rule (tick, step, bounds...)."""

    code = "invalid_order"


class LedgerError(EscrowdError):
    """A ledger entry would be unbalanced or drive a user account negative."""

    code = "ledger_error"
    http_status = 409


class InsufficientFundsError(LedgerError):
    code = "insufficient_funds"


class UnbalancedEntryError(LedgerError):
    code = "unbalanced_entry"


class ReplayMismatchError(EscrowdError):
    """Replaying the command log did not give the recorded events: the log and the
    engine disagree, recovery stops rather than invent or drop a fill."""

    code = "replay_mismatch"
