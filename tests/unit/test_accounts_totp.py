"""TOTP (RFC 6238) matching: the right step within the window, nothing
outside it, and the RFC's own test vector; recovery codes normalise."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pyotp

from node.accounts.totp import (
    hash_recovery_code,
    looks_like_totp,
    matching_timestep,
    new_recovery_code,
    new_secret,
    provisioning_uri,
)

NOW = datetime(2026, 11, 30, 12, 0, 5, tzinfo=UTC)


def test_rfc6238_vector() -> None:
    # RFC 6238 appendix B, SHA-1, T=59s -> 94287082 (8 digits); 6 digits: 287082
    secret = base64.b32encode(b"12345678901234567890").decode()
    at = datetime.fromtimestamp(59, UTC)
    assert matching_timestep(secret, "287082", now=at, window=0) == 1


def test_current_code_matches_current_step() -> None:
    secret = new_secret()
    code = pyotp.TOTP(secret).at(NOW)
    assert matching_timestep(secret, code, now=NOW, window=1) == int(NOW.timestamp()) // 30


def test_window_accepts_one_step_of_drift_and_no_more() -> None:
    secret = new_secret()
    totp = pyotp.TOTP(secret)
    step = int(NOW.timestamp()) // 30
    prev = totp.at(NOW - timedelta(seconds=30))
    old = totp.at(NOW - timedelta(seconds=90))
    assert matching_timestep(secret, prev, now=NOW, window=1) == step - 1
    assert matching_timestep(secret, prev, now=NOW, window=0) is None
    assert matching_timestep(secret, old, now=NOW, window=1) is None
    assert matching_timestep(secret, old, now=NOW, window=3) == step - 3


def test_malformed_codes_never_match() -> None:
    secret = new_secret()
    for bad in ("", "12345", "1234567", "abcdef", "12 456"):
        assert matching_timestep(secret, bad, now=NOW, window=4) is None
    assert not looks_like_totp("abcde-fghij")


def test_recovery_codes_normalise() -> None:
    code = new_recovery_code()
    assert len(code) == 11 and code[5] == "-"
    assert hash_recovery_code(code) == hash_recovery_code(code.upper().replace("-", " "))
    assert hash_recovery_code(code) != hash_recovery_code(new_recovery_code())


def test_provisioning_uri_names_issuer_and_account() -> None:
    secret = new_secret()
    uri = provisioning_uri(secret, account="alice", issuer="escrowd")
    assert uri.startswith("otpauth://totp/escrowd:alice?") and "issuer=escrowd" in uri
    assert f"secret={secret}" in uri
