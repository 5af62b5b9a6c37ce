"""Webhook secrets at rest: sealed with Fernet under a key derived (HKDF,
purpose ``webhook-secrets``) from the node's secret (``auth.jwt_secret``;
in dev mode the one kept in the data directory). The node needs the plain
secret to sign deliveries, so it is encrypted, not hashed."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken

from node.accounts.keys import derive_key, load_secret
from node.config import Settings
from node.errors import ConfigError

PREFIX = "f1:"


class WebhookSecrets:
    def __init__(self, node_secret: bytes) -> None:
        key = base64.urlsafe_b64encode(derive_key(node_secret, b"webhook-secrets"))
        self._fernet = Fernet(key)

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookSecrets:
        return cls(load_secret(settings))

    def seal(self, secret: str) -> str:
        return PREFIX + self._fernet.encrypt(secret.encode()).decode()

    def reveal(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored  # stored before secrets were sealed
        try:
            return self._fernet.decrypt(stored[len(PREFIX):].encode()).decode()
        except InvalidToken as exc:
            raise ConfigError(
                "a webhook secret cannot be decrypted: auth.jwt_secret changed since it was "
                "stored; the user must register the webhook again"
            ) from exc
