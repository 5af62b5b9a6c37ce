"""Request and response bodies of sign-in, tokens, 2FA, wallets and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

USERNAME = r"^[A-Za-z0-9_.\-]{3,64}$"
Chain = Literal["evm", "btc", "sol"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AuditEntry(BaseModel):
    id: int
    created_at: datetime
    actor_id: int | None
    action: str
    subject: str
    details: dict[str, Any]
    ip: str | None


class AuditPage(BaseModel):
    data: list[AuditEntry]
    total: int
    limit: int
    offset: int


class Register(Strict):
    username: str = Field(pattern=USERNAME)
    password: str = Field(min_length=10, max_length=256)


class Login(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    # a 6-digit TOTP code or a recovery code, when 2FA is on
    totp_code: str | None = Field(None, min_length=6, max_length=32)


class RefreshBody(Strict):
    refresh_token: str = Field(min_length=1, max_length=200)


class LogoutBody(Strict):
    # true: sign out every session of the user, not only this one
    everywhere: bool = False


class PasswordSet(Strict):
    # required when the user already has a password
    current_password: str | None = Field(None, min_length=1, max_length=256)
    new_password: str = Field(min_length=10, max_length=256)


class UserPublic(BaseModel):
    id: int
    username: str
    role: str


class WalletPublic(BaseModel):
    id: int
    chain: Chain
    address: str
    created_at: datetime
    last_used_at: datetime | None


class Me(BaseModel):
    user: UserPublic
    totp_enabled: bool
    has_password: bool
    recovery_codes_left: int
    wallets: list[WalletPublic]


class TokenPairPublic(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the scheme, not a secret)
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    user: UserPublic


class TotpSetupPublic(BaseModel):
    secret: str
    otpauth_uri: str


class TotpCode(Strict):
    code: str = Field(min_length=6, max_length=32)


class RecoveryCodes(BaseModel):
    recovery_codes: list[str]


class NonceRequest(Strict):
    chain: Chain
    # Bitcoin and Solana: the address that will sign (names it in the message)
    address: str | None = Field(None, min_length=1, max_length=128)


class NoncePublic(BaseModel):
    nonce: str
    chain: Chain
    domain: str
    uri: str
    chain_id: int | None
    issued_at: datetime
    expires_at: datetime
    # Bitcoin and Solana: the exact text to sign (when the address was given)
    message: str | None


class WalletSignIn(Strict):
    chain: Chain
    # EVM: the EIP-4361 message; Bitcoin and Solana: the message of /auth/nonce
    message: str = Field(min_length=1, max_length=4000)
    # EVM: 0x hex; Bitcoin: base64 (BIP-322 simple or legacy signmessage);
    # Solana: base58 ed25519
    signature: str = Field(min_length=1, max_length=2000)
    # Bitcoin and Solana: the signing address (EVM: from the message)
    address: str | None = Field(None, min_length=1, max_length=128)


class RoleSet(Strict):
    role: Literal["trader", "arbitrator", "admin"]


class Revoked(BaseModel):
    revoked_sessions: int


class SessionPublic(BaseModel):
    id: str
    method: str
    ip: str | None
    created_at: datetime
    current: bool
