"""Webhooks on a real node, delivered to a real HTTP server started by the
test: each delivery is signed (HMAC-SHA256 over "<timestamp>.<body>" with the
subscription's secret); a failing endpoint is retried with exponential backoff
and succeeds on the third attempt; an endpoint that keeps failing ends
``failed`` after the maximum attempts; subscriptions are per user, and private
addresses are refused unless allowed."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import httpx
from prometheus_client import REGISTRY
from sqlalchemy import select

from node.db.models import utcnow
from node.db.models_disputes_ext import TradeEvent, WebhookDelivery, WebhookSubscription
from node.db.session import transaction
from node.events import signing
from node.events.secrets import WebhookSecrets
from node.events.webhooks import deliver_due, purge_old
from tests.api.conftest import Api
from tests.api.disputes_fixtures import *  # noqa: F403
from tests.api.disputes_fixtures import Receiver, matched_trade

W = "/api/p2p-crypto/webhooks"
SECRET = "a-shared-secret-of-32-characters!"


def _deliveries(api: Api) -> list[WebhookDelivery]:
    with transaction(api.node.sessions) as s:
        rows = list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))
        s.expunge_all()
    return rows


def test_signed_delivery_retried_until_the_third_attempt(api: Api, receiver: Receiver) -> None:
    cfg = api.node.settings.disputes.events
    # production refuses loopback webhooks (SSRF)...
    r = api.post(W, "buyer", json={"url": receiver.url, "secret": SECRET})
    assert r.status_code == 422 and r.json()["code"] == "webhook_url_private"
    # ...this test's receiver is local, so allow it here
    cfg.webhook_allow_private = True
    r = api.post(W, "buyer", json={"url": receiver.url, "secret": SECRET})
    assert r.status_code == 201, r.text
    hook = r.json()
    assert hook["secret"] == SECRET
    assert api.get(W, "seller").json() == []
    assert api.delete(f"{W}/{hook['id']}", "seller").status_code == 404
    r = api.post(W, "buyer", json={"url": "ftp://example.com/x"})
    assert r.status_code == 422

    # the secret is stored sealed, not as given
    box = WebhookSecrets.from_settings(api.node.settings)
    with transaction(api.node.sessions) as s:
        stored = s.get(WebhookSubscription, hook["id"])
        assert stored is not None and SECRET not in stored.secret
        assert box.reveal(stored.secret) == SECRET

    def attempts(outcome: str) -> float:
        return REGISTRY.get_sample_value(
            "escrowd_webhook_delivery_attempts_total", {"outcome": outcome}) or 0.0

    before = {k: attempts(k) for k in ("retry", "delivered")}
    receiver.fail_first = 2
    t = matched_trade(api)  # emits trade.opened for the buyer's webhook
    t0 = utcnow()
    with httpx.Client() as client:

        def run(now: datetime, allow_private: bool = True) -> int:
            return deliver_due(api.node.sessions, cfg, client=client, secrets_box=box, now=now,
                               allow_private=allow_private)

        assert run(t0) == 1
        (d,) = _deliveries(api)
        assert d.status == "pending" and d.attempts == 1 and d.last_status_code == 500
        assert d.next_attempt_at == t0 + timedelta(seconds=cfg.webhook_backoff_s)
        # not due yet: nothing is sent
        assert run(t0) == 0
        t1 = t0 + timedelta(seconds=cfg.webhook_backoff_s)
        assert run(t1) == 1
        (d,) = _deliveries(api)
        assert d.attempts == 2 and d.next_attempt_at == t1 + timedelta(
            seconds=2 * cfg.webhook_backoff_s)
        t2 = d.next_attempt_at
        assert run(t2) == 1
        (d,) = _deliveries(api)
        assert d.status == "delivered" and d.attempts == 3 and d.last_status_code == 204
        assert run(t2 + timedelta(days=1)) == 0

    assert len(receiver.requests) == 3
    assert attempts("retry") - before["retry"] == 2
    assert attempts("delivered") - before["delivered"] == 1
    now = int(time.time())
    for req in receiver.requests:
        h = req["headers"]
        ts = int(h[signing.TIMESTAMP_HEADER])
        assert signing.verify(SECRET, ts, req["body"], h[signing.SIGNATURE_HEADER], now=now)
        assert not signing.verify("wrong", ts, req["body"], h[signing.SIGNATURE_HEADER], now=now)
        assert h["Content-Type"] == "application/json"
    body = receiver.bodies[-1]
    assert body["type"] == "trade.opened" and body["trade_id"] == t
    assert str(body["id"]) == receiver.requests[-1]["headers"][signing.EVENT_HEADER]
    listed = api.get(W, "buyer").json()
    assert [w["id"] for w in listed] == [hook["id"]] and listed[0]["deliveries"] == {
        "delivered": 1}
    assert "secret" not in listed[0]
    assert api.delete(f"{W}/{hook['id']}", "buyer").status_code == 204
    assert api.get(W, "buyer").json() == []


def test_a_dead_endpoint_fails_after_the_last_attempt(api: Api, receiver: Receiver) -> None:
    cfg = api.node.settings.disputes.events
    cfg.webhook_allow_private = True
    cfg.webhook_max_attempts = 3
    assert api.post(W, "seller", json={"url": receiver.url}).status_code == 201
    receiver.fail_first = 10**6
    box = WebhookSecrets.from_settings(api.node.settings)
    matched_trade(api)
    moment = utcnow()
    with httpx.Client() as client:

        def run(now: datetime, allow_private: bool = True) -> int:
            return deliver_due(api.node.sessions, cfg, client=client, secrets_box=box, now=now,
                               allow_private=allow_private)

        # the delivery job checks the address again: a loopback URL is refused
        # (and counts as a failed attempt) unless private addresses are allowed
        assert run(moment, allow_private=False) == 1
        (d,) = _deliveries(api)
        assert d.attempts == 1 and (d.last_error or "").startswith("refused")
        assert receiver.requests == []
        for _ in range(5):
            moment += timedelta(seconds=cfg.webhook_backoff_cap_s)
            run(moment)
    (d,) = _deliveries(api)
    assert d.status == "failed" and d.attempts == 3 and d.last_error == "HTTP 500"
    assert len(receiver.requests) == 2

    # retention: nothing is young enough to go; later the finished delivery
    # and its event go, while an event with a pending delivery stays
    with transaction(api.node.sessions) as s:
        assert purge_old(s, older_than=utcnow() - timedelta(days=1)) == (0, 0)
    matched_trade(api)  # one more event, pending for the seller's webhook
    with transaction(api.node.sessions) as s:
        deliveries, events = purge_old(s, older_than=utcnow() + timedelta(days=1))
        assert deliveries == 1 and events >= 1
        left = s.scalars(select(TradeEvent.kind)).all()
    assert left == ["trade.opened"]
    assert [x.status for x in _deliveries(api)] == ["pending"]
