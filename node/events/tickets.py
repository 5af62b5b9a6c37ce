"""Short-lived tickets that open an SSE stream from a browser, whose
EventSource cannot send an Authorization header: a JWT (pyjwt, HS256) for
one user, audience ``escrowd-sse``, valid ``ttl_s`` seconds, signed with a
key derived (HKDF, purpose ``sse-tickets``) from the node's secret. A ticket
only opens the holder's own read-only stream; it is not an access token."""

from __future__ import annotations

import jwt

from node.errors import AuthenticationError

AUDIENCE = "escrowd-sse"


def issue(user_id: int, *, key: bytes, now: int, ttl_s: int) -> str:
    return jwt.encode(
        {"sub": str(user_id), "aud": AUDIENCE, "iat": now, "exp": now + ttl_s},
        key,
        algorithm="HS256",
    )


def verify(ticket: str, *, key: bytes, now: int) -> int:
    """The user id a valid ticket was issued to."""
    try:
        claims = jwt.decode(
            ticket, key, algorithms=["HS256"], audience=AUDIENCE,
            # expiry is checked below against ``now`` (explicit, testable)
            options={"require": ["sub", "exp", "aud"], "verify_iat": False,
                     "verify_exp": False},
        )
        if int(claims["exp"]) <= now:
            raise jwt.ExpiredSignatureError("expired")
        return int(claims["sub"])
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise AuthenticationError(
            "invalid or expired stream ticket", code="invalid_ticket"
        ) from exc
