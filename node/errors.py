"""One root exception for escrowd, a subtree per layer.

Every error carries a machine-readable ``code`` and structured fields; the API
maps them to RFC 9457 problem+json in one place (``api.problems``).
"""

from __future__ import annotations

from typing import Any


class EscrowdError(Exception):
    """Root of every error escrowd raises on purpose."""

    code: str = "escrowd_error"
    http_status: int = 500

    def __init__(self, message: str, *, code: str | None = None, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.fields = fields

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "detail": self.message, **self.fields}


class ConfigError(EscrowdError):
    """A configuration value is missing or wrong; names the setting."""

    code = "config_error"


class ChainError(EscrowdError):
    """A chain could not be read or did not answer as expected."""

    code = "chain_error"
    http_status = 502


class ReorgTooDeepError(ChainError):
    """A reorg went deeper than the configured finality: the watcher stops."""

    code = "reorg_too_deep"


class BroadcastError(ChainError):
    """A transaction was refused by the chain."""

    code = "broadcast_error"


class SigningError(EscrowdError):
    """The node refused to sign, or a signature is invalid."""

    code = "signing_refused"
    http_status = 409


class EscrowStateError(EscrowdError):
    """An action is not allowed in the escrow's or trade's current state."""

    code = "invalid_state"
    http_status = 409


class NotFoundError(EscrowdError):
    code = "not_found"
    http_status = 404


class PermissionDeniedError(EscrowdError):
    code = "forbidden"
    http_status = 403


class AuthenticationError(EscrowdError):
    code = "unauthenticated"
    http_status = 401


class ValidationError(EscrowdError):
    code = "invalid_input"
    http_status = 422
