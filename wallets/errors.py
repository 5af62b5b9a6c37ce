"""Root of the errors the ``wallets`` layer raises on purpose.

``wallets`` must not import ``node`` (dependencies point api -> node -> wallets),
so this layer has its own small root.  Every error carries a machine-readable
``code`` and structured ``fields`` (never key material), the same shape as
``node.errors.EscrowdError``, so the node can hook this subtree under its root
and map it to HTTP in one place.
"""

from __future__ import annotations

from typing import Any


class WalletError(Exception):
    """Root of every error raised on purpose by ``wallets``."""

    code: str = "wallet_error"

    def __init__(self, message: str, *, code: str | None = None, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.fields: dict[str, Any] = fields

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "detail": self.message, **self.fields}


class KeyValidationError(WalletError):
    """A public key, extended key or address handed in by a user is unusable.

    ``fields["field"]`` names the input field, so the API can point at it.  The
    offending value is never echoed (it might be a private key pasted by mistake).
    """

    code = "invalid_key"


class SigningError(WalletError):
    """A signer refused to sign, or had nothing to sign."""

    code = "signing_refused"
