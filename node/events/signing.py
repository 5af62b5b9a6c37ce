"""Webhook signatures and retry schedule: pure functions.

A delivery carries ``X-Escrowd-Timestamp: <unix seconds>`` and
``X-Escrowd-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``.
A receiver recomputes the HMAC over the raw body, compares in constant time,
and refuses timestamps outside its tolerance (replays).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Escrowd-Signature"
TIMESTAMP_HEADER = "X-Escrowd-Timestamp"
EVENT_HEADER = "X-Escrowd-Event-Id"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Escrowd-Signature`` header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: str, timestamp: int, body: bytes, header: str, *, now: int,
           tolerance_s: int = 300) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    if abs(now - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), header)


def backoff_s(attempt: int, *, base_s: float, cap_s: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...):
    ``base * 2**(attempt-1)``, at most ``cap``."""
    if attempt < 1:
        return 0.0
    return float(min(cap_s, base_s * 2 ** min(attempt - 1, 40)))
