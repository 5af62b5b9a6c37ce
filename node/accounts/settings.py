"""Settings of this slice: the ``[auth]`` block of escrowd.toml, ESCROWD_AUTH__* variables."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from node.settings_base import Section


class AuthSettings(Section):
    # HMAC key of the JWT access tokens (and, derived from it, of the TOTP
    # secrets' encryption). Required in production; dev mode generates one and
    # keeps it in ``<data_dir>/auth_secret`` (0600).
    jwt_secret: SecretStr | None = None
    issuer: str = Field("escrowd", min_length=1, max_length=64)
    access_token_ttl_s: int = Field(900, ge=30, le=86_400)
    refresh_token_ttl_s: int = Field(30 * 86_400, ge=60, le=365 * 86_400)
    # Wallet sign-in: the domain and URI the signed messages must name
    # (EIP-4361 ``domain`` / ``URI``), the EVM chain ids accepted (empty: the
    # configured evm.chain_id, or 31337 in dev mode), and how long a nonce lives.
    domain: str = Field("localhost", min_length=1, max_length=253)
    uri: str = Field("http://localhost", min_length=1, max_length=2000)
    siwe_chain_ids: list[int] = Field(default_factory=list)
    nonce_ttl_s: int = Field(600, ge=10, le=86_400)
    # TOTP (RFC 6238): issuer shown by authenticator apps, accepted drift in
    # 30-second steps, number of one-time recovery codes issued.
    totp_issuer: str = Field("escrowd", min_length=1, max_length=64)
    totp_valid_window: int = Field(1, ge=0, le=4)
    recovery_codes: int = Field(10, ge=1, le=50)
    # Rate limits (the ``limits`` library's notation). Storage: memory:// by
    # default (per process), redis://[:password@]host:port/db (or rediss://)
    # to share them between processes, keys under rate_limit_key_prefix. Redis
    # unreachable at request time: counted in process memory, warning logged.
    rate_limit_storage: str = Field("memory://", min_length=1, max_length=2000)
    rate_limit_key_prefix: str = Field("escrowd", pattern=r"^[A-Za-z0-9:_.-]{1,64}$")
    rate_limit_ip: str = "1200/minute"
    rate_limit_user: str = "600/minute"
    # sign-in, registration and token refresh: per client IP and per account
    rate_limit_signin: str = "10/minute"
    # Reverse proxies (IPs or CIDRs) whose X-Forwarded-For is believed for the
    # client IP (rate limits, audit log); empty: the peer address is the client.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Idempotency-Key: how long a key is remembered, how long a duplicate
    # waits for the first request's response.
    idempotency_ttl_s: int = Field(86_400, ge=60)
    idempotency_wait_s: float = Field(30.0, gt=0, le=300)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        from node.accounts.client_ip import parse_networks

        parse_networks(v)  # ValueError names the bad entry
        return v
