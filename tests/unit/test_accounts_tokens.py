"""JWT access tokens: claims round-trip; expired, tampered, wrong-issuer,
wrong-key and non-access tokens are refused with machine-readable codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from node.accounts.tokens import decode_access_token, issue_access_token, looks_like_jwt
from node.errors import AuthenticationError

KEY = b"k" * 48
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _token(**kw: object) -> str:
    args: dict[str, object] = {"user_id": 7, "session_id": "s1", "role": "trader",
                               "issuer": "escrowd", "ttl_s": 900, "now": NOW}
    args.update(kw)
    return issue_access_token(KEY, **args)  # type: ignore[arg-type]


def test_round_trip() -> None:
    tok = _token()
    assert looks_like_jwt(tok)
    c = decode_access_token(KEY, tok, issuer="escrowd", now=NOW + timedelta(seconds=899))
    assert (c.user_id, c.session_id) == (7, "s1")


def test_expired() -> None:
    with pytest.raises(AuthenticationError) as e:
        decode_access_token(KEY, _token(), issuer="escrowd", now=NOW + timedelta(seconds=900))
    assert e.value.code == "token_expired"
    with pytest.raises(AuthenticationError) as e:
        decode_access_token(KEY, _token(now=datetime.now(UTC) - timedelta(hours=1)),
                            issuer="escrowd")
    assert e.value.code == "token_expired"


@pytest.mark.parametrize("case", ["key", "issuer", "tamper", "typ", "alg_none"])
def test_refused(case: str) -> None:
    tok, key, iss = _token(), KEY, "escrowd"
    if case == "key":
        key = b"z" * 48
    elif case == "issuer":
        iss = "other"
    elif case == "tamper":
        head, body, sig = tok.split(".")
        tok = f"{head}.{body[:-2]}AA.{sig}"
    elif case == "typ":
        claims = jwt.decode(tok, KEY, algorithms=["HS256"], audience="escrowd-api",
                            options={"verify_exp": False})
        tok = jwt.encode({**claims, "typ": "refresh"}, KEY, algorithm="HS256")
    elif case == "alg_none":
        claims = jwt.decode(tok, KEY, algorithms=["HS256"], audience="escrowd-api",
                            options={"verify_exp": False})
        tok = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    with pytest.raises(AuthenticationError) as e:
        decode_access_token(key, tok, issuer=iss, now=NOW)
    assert e.value.code == "invalid_token"
