"""The slice's secret: the HMAC key of JWT access tokens, from which the key
that encrypts TOTP secrets at rest is derived (HKDF).

Production: ``auth.jwt_secret`` must be configured (a missing or placeholder
value fails at start, naming the setting). Dev mode: a random secret is
generated once and kept in ``<data_dir>/auth_secret`` (mode 0600).

Sessions made by the node's session factory carry the TOTP cipher in
``session.info`` (``install_cipher``), so code holding only a session (a
withdrawal checking a TOTP code) can decrypt a user's TOTP secret."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.orm import Session, sessionmaker

from node.config import Settings
from node.errors import ConfigError

SECRET_FILE = "auth_secret"  # noqa: S105 (a file name)
PLACEHOLDERS = {"", "changeme", "change-me", "secret", "placeholder", "xxx"}
MIN_SECRET_LEN = 32
INFO_KEY = "escrowd.totp_cipher"


def load_secret(settings: Settings) -> bytes:
    """The configured secret, or in dev mode the one kept in the data dir."""
    configured = settings.auth.jwt_secret
    if configured is not None:
        value = configured.get_secret_value()
        if value.lower() in PLACEHOLDERS or len(value) < MIN_SECRET_LEN:
            raise ConfigError(
                "invalid configuration: auth.jwt_secret (ESCROWD_AUTH__JWT_SECRET) must be "
                f"a random string of at least {MIN_SECRET_LEN} characters"
            )
        return value.encode()
    if settings.mode != "dev":
        raise ConfigError(
            "invalid configuration: auth.jwt_secret (ESCROWD_AUTH__JWT_SECRET) is required "
            "in production mode"
        )
    return _dev_secret(settings.data_dir / SECRET_FILE)


def _dev_secret(path: Path) -> bytes:
    if path.exists():
        return path.read_text(encoding="utf-8").strip().encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value)
    return value.encode()


def derive_key(secret: bytes, purpose: bytes) -> bytes:
    """A 32-byte key for ``purpose`` derived from the slice's secret."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"escrowd-auth", info=purpose)
    return hkdf.derive(secret)


class TotpCipher:
    """Encrypts TOTP secrets at rest (Fernet: AES-128-CBC + HMAC-SHA256)."""

    def __init__(self, secret: bytes) -> None:
        key = base64.urlsafe_b64encode(derive_key(secret, b"totp-secrets"))
        self._fernet = Fernet(key)

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ConfigError(
                "a TOTP secret cannot be decrypted: auth.jwt_secret changed since it was stored"
            ) from exc


def install_cipher(factory: sessionmaker[Session], cipher: TotpCipher) -> None:
    """Let every session of ``factory`` carry ``cipher`` in ``session.info``."""
    info = dict(factory.kw.get("info") or {})
    info[INFO_KEY] = cipher
    factory.configure(info=info)


def cipher_of(session: Session) -> TotpCipher:
    cipher = session.info.get(INFO_KEY)
    if not isinstance(cipher, TotpCipher):
        raise ConfigError("this database session has no TOTP cipher (install_cipher not called)")
    return cipher
