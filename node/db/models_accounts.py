"""Accounts and trust: credentials, 2FA, wallet links, refresh tokens, audit log, idempotency keys.

Imported by node.db.models (at its end) so one Base.metadata holds every table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from node.db.models import Base, Timestamps, utcnow


class UserPassword(Timestamps, Base):
    """A user's password, as an argon2id hash (never the password)."""

    __tablename__ = "user_passwords"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))


class UserTotp(Timestamps, Base):
    """A user's TOTP (RFC 6238) secret, encrypted; ``enabled_at`` is set once
    the user proved a code. ``last_timestep`` is the 30-second step of the last
    accepted code: a code of that step or earlier is refused (no reuse)."""

    __tablename__ = "user_totp"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    enabled_at: Mapped[datetime | None]
    last_timestep: Mapped[int | None] = mapped_column(BigInteger)


class RecoveryCode(Base):
    """A one-time recovery code (its hash) that stands in for a TOTP code."""

    __tablename__ = "user_recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WalletLink(Base):
    """A wallet address a user proved by signature (EVM, Bitcoin, Solana).
    One address belongs to one user; a user links several."""

    __tablename__ = "user_wallets"
    __table_args__ = (UniqueConstraint("chain", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    chain: Mapped[str] = mapped_column(String(8))  # evm | btc | sol
    address: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]


class AuthNonce(Base):
    """A server-issued sign-in nonce: single use, short-lived."""

    __tablename__ = "auth_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    chain: Mapped[str] = mapped_column(String(8))
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class AuthSession(Base):
    """A signed-in session: the family of one sign-in's refresh tokens and the
    access tokens issued from them (their ``sid`` claim). Revoking the session
    (logout, refresh-token reuse, an admin) invalidates them all at once."""

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    method: Mapped[str] = mapped_column(String(16))  # password | siwe | btc | sol
    ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class RefreshToken(Base):
    """One refresh token (its hash). Using it rotates it: it is marked used and
    a new one issued in the same session; presenting a used one again revokes
    the session (a stolen token was replayed)."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("auth_sessions.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class AuditLog(Base):
    """Security-relevant actions: sign-ins, 2FA changes, payment details shown,
    rulings, releases. Written in the transaction of the action itself."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_action", "action", "id"),
        Index("ix_audit_log_actor", "actor_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(128))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))


class IdempotencyKey(Base):
    """An Idempotency-Key claimed by one caller (``scope``: user or client IP).
    The unique constraint lets exactly one request claim it; the others wait
    for ``status_code`` and answer with the stored response."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("scope", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(80))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[list[list[str]] | None] = mapped_column(JSON, default=None)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    completed: Mapped[bool] = mapped_column(Boolean, default=False)
