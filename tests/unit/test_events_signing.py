"""Webhook signatures (HMAC-SHA256 over "<timestamp>.<body>") verify only
with the right secret, body and a recent timestamp; the retry schedule
doubles up to its cap; SSE frames and Last-Event-ID parsing."""

from __future__ import annotations

import hashlib
import hmac

from node.events import signing
from node.events.sse import frame, parse_last_event_id


def test_signature_matches_an_independent_hmac() -> None:
    body = b'{"id":1}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signing.signature("s3cret", 1_700_000_000, body) == "v1=" + expected


def test_verify_refuses_wrong_secret_body_or_stale_timestamp() -> None:
    body = b'{"id":1}'
    ts = 1_700_000_000
    header = signing.signature("s3cret", ts, body)
    assert signing.verify("s3cret", ts, body, header, now=ts + 10)
    assert not signing.verify("other", ts, body, header, now=ts)
    assert not signing.verify("s3cret", ts, body + b" ", header, now=ts)
    assert not signing.verify("s3cret", ts + 1, body, header, now=ts)
    assert not signing.verify("s3cret", ts, body, header, now=ts + 301)


def test_backoff_doubles_and_is_capped() -> None:
    got = [signing.backoff_s(n, base_s=10, cap_s=100) for n in range(0, 7)]
    assert got == [0.0, 10.0, 20.0, 40.0, 80.0, 100.0, 100.0]
    assert signing.backoff_s(10_000, base_s=10, cap_s=3600) == 3600.0


def test_sse_frame_and_last_event_id() -> None:
    assert frame(5, "trade.paid", {"a": 1}) == b'id: 5\nevent: trade.paid\ndata: {"a":1}\n\n'
    assert parse_last_event_id(None) == 0
    assert parse_last_event_id(" 17 ") == 17
    for bad in ("-1", "abc", "1e3", "9" * 30, ""):
        assert parse_last_event_id(bad) == 0


def test_webhook_secrets_are_sealed_and_only_the_same_key_opens_them() -> None:
    import pytest

    from node.errors import ConfigError
    from node.events.secrets import WebhookSecrets

    box = WebhookSecrets(b"n" * 48)
    sealed = box.seal("hook-secret")
    assert "hook-secret" not in sealed and sealed != box.seal("hook-secret")  # random IV
    assert box.reveal(sealed) == "hook-secret"
    assert box.reveal("plain-legacy") == "plain-legacy"
    with pytest.raises(ConfigError):
        WebhookSecrets(b"m" * 48).reveal(sealed)


def test_stream_tickets_name_one_user_and_expire() -> None:
    import jwt
    import pytest

    from node.errors import AuthenticationError
    from node.events import tickets

    key = b"k" * 48
    t = tickets.issue(7, key=key, now=1_000, ttl_s=60)
    assert tickets.verify(t, key=key, now=1_059) == 7
    for bad, now in (
        (t, 1_060),  # expired
        (tickets.issue(7, key=b"x" * 48, now=1_000, ttl_s=60), 1_000),  # another key
        (jwt.encode({"sub": "7", "aud": "other", "exp": 2_000}, key, algorithm="HS256"), 1_000),
        (jwt.encode({"sub": "7", "aud": "escrowd-sse", "exp": 2_000}, key, algorithm="HS384"),
         1_000),
        ("not-a-jwt", 1_000),
    ):
        with pytest.raises(AuthenticationError):
            tickets.verify(bad, key=key, now=now)
