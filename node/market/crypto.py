"""Payment details encrypted at rest: AES-256-GCM (``cryptography``) with the
key from ``market.payment_key``; in dev mode a key generated once under
``data_dir`` (0600). Each ciphertext is bound to its owner (associated data),
so a ciphertext copied onto another user's row does not decrypt.

Format: ``v1.<key id>.<base64url(nonce || ciphertext+tag)>``; the key id
(first bytes of the key's SHA-256) picks the key among current and old ones,
so keys can be rotated (``payment_old_keys``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from node.errors import ConfigError, EscrowdError

if TYPE_CHECKING:
    from node.config import Settings

KEY_FILE = "payment-details.key"
SETTING = "market.payment_key (ESCROWD_MARKET__PAYMENT_KEY)"


class PaymentKeyMissingError(ConfigError):
    """Production without ``market.payment_key``: payment details cannot be stored."""

    code = "payment_key_missing"
    http_status = 503


class DecryptionError(EscrowdError):
    code = "payment_details_unreadable"
    http_status = 500


def new_key() -> str:
    """A fresh key in the form ``market.payment_key`` takes."""
    return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()


def _decode_key(text: str, name: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode())
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConfigError(f"{name}: must be base64url of 32 random bytes", setting=name)
    return raw


def _key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


@dataclass(frozen=True)
class DetailsCipher:
    current: bytes
    old: tuple[bytes, ...] = ()

    def encrypt(self, plaintext: str, *, owner_id: int) -> str:
        nonce = os.urandom(12)
        ct = AESGCM(self.current).encrypt(nonce, plaintext.encode(), _aad(owner_id))
        blob = base64.urlsafe_b64encode(nonce + ct).decode()
        return f"v1.{_key_id(self.current)}.{blob}"

    def decrypt(self, token: str, *, owner_id: int) -> str:
        try:
            version, kid, blob = token.split(".", 2)
            raw = base64.urlsafe_b64decode(blob.encode())
        except (ValueError, binascii.Error):
            raise DecryptionError("stored payment details are malformed") from None
        if version != "v1":
            raise DecryptionError(f"unknown payment details format {version!r}")
        for key in (self.current, *self.old):
            if _key_id(key) == kid:
                try:
                    return AESGCM(key).decrypt(raw[:12], raw[12:], _aad(owner_id)).decode()
                except InvalidTag:
                    raise DecryptionError("stored payment details fail authentication") from None
        raise DecryptionError(
            "payment details were encrypted with a key that is not configured "
            "(add it to market.payment_old_keys)"
        )


def _aad(owner_id: int) -> bytes:
    return f"escrowd:payment-details:user:{owner_id}".encode()


def load_cipher(settings: Settings) -> DetailsCipher:
    """The cipher from the settings: the configured key; in dev mode a key
    kept in ``data_dir`` (created 0600 on first use); in production without
    a key, PaymentKeyMissingError naming the setting."""
    cfg = settings.market
    old = tuple(
        _decode_key(k.get_secret_value(), f"market.payment_old_keys[{i}]")
        for i, k in enumerate(cfg.payment_old_keys)
    )
    if cfg.payment_key is not None:
        return DetailsCipher(_decode_key(cfg.payment_key.get_secret_value(), SETTING), old)
    if settings.mode != "dev":
        raise PaymentKeyMissingError(
            f"{SETTING} is required in production to store payment details "
            "(generate one with: python -c 'import node.market.crypto as c; print(c.new_key())')",
            setting="market.payment_key",
        )
    return DetailsCipher(_dev_key(settings.data_dir / KEY_FILE), old)


def _dev_key(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(new_key())
        try:
            os.link(tmp, path)  # atomic, and never replaces a key another process made
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return _decode_key(path.read_text(encoding="ascii"), str(path))
