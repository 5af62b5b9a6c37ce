"""Request-level protections installed on the app: the auth secret and token
service, rate limits, Idempotency-Key."""

from __future__ import annotations

from fastapi import FastAPI

from node.accounts.keys import TotpCipher, install_cipher, load_secret
from node.accounts.tokens import Tokens
from node.config import Settings


def install(app: FastAPI) -> None:
    """Install the middleware on ``app`` (called by ``create_app``).

    Fails (ConfigError naming ``auth.jwt_secret``) when production mode has no
    secret configured."""
    settings: Settings = app.state.settings
    secret = load_secret(settings)
    app.state.auth_tokens = Tokens(secret, settings.auth)
    install_cipher(app.state.sessions, TotpCipher(secret))
