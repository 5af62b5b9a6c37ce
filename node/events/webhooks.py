"""Webhook subscriptions (per user: URL + secret) and their delivery job.

Deliveries are rows written with each event (``outbox.emit_trade_event``).
The job POSTs due ones, signed (``signing``), and records the outcome: a 2xx
answer delivers; anything else is retried with exponential backoff until
``webhook_max_attempts``, then the delivery is ``failed``. Rows are claimed
with ``FOR UPDATE SKIP LOCKED``, so several node processes share the work
without sending one delivery twice at once.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
import orjson
from prometheus_client import Counter
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from node.db.models import User, utcnow
from node.db.models_disputes_ext import TradeEvent, WebhookDelivery, WebhookSubscription
from node.db.session import transaction
from node.disputes.settings import EventSettings
from node.errors import NotFoundError, ValidationError
from node.events import signing
from node.events.outbox import event_body
from node.events.secrets import WebhookSecrets

log = logging.getLogger("escrowd.webhooks")

DELIVERY_ATTEMPTS = Counter(
    "escrowd_webhook_delivery_attempts_total",
    "Webhook delivery attempts by outcome: delivered, retry (will be tried again), failed "
    "(last attempt)",
    ["outcome"],
)


# --- subscriptions ---------------------------------------------------------


def check_url(url: str, *, allow_private: bool) -> str:
    """An http(s) URL with a host; loopback, private, link-local and other
    non-public addresses are refused unless ``allow_private`` (SSRF)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("the webhook URL must be http(s)://host/...", field="url")
    if parts.username or parts.password:
        raise ValidationError("the webhook URL must not carry credentials", field="url")
    if allow_private:
        return url
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise ValidationError("the webhook host does not resolve", field="url") from None
    for info in infos:
        addr = ipaddress.ip_address(str(info[4][0]))
        if not addr.is_global:
            raise ValidationError(
                "the webhook URL points at a non-public address", code="webhook_url_private",
                field="url",
            )
    return url


def create_subscription(
    session: Session, *, user: User, url: str, secret: str | None, allow_private: bool,
    max_per_user: int, secrets_box: WebhookSecrets,
) -> tuple[WebhookSubscription, str]:
    """A new webhook for ``user`` and its secret (generated when not given;
    shown once: it is stored sealed)."""
    check_url(url, allow_private=allow_private)
    count = session.scalar(
        select(func.count()).select_from(WebhookSubscription).where(
            WebhookSubscription.user_id == user.id
        )
    ) or 0
    if count >= max_per_user:
        raise ValidationError(
            f"at most {max_per_user} webhooks per user", code="too_many_webhooks"
        )
    plain = secret or secrets.token_urlsafe(32)
    sub = WebhookSubscription(
        user_id=user.id, url=url, secret=secrets_box.seal(plain), is_active=True
    )
    session.add(sub)
    session.flush()
    return sub, plain


def list_subscriptions(session: Session, *, user: User) -> list[WebhookSubscription]:
    return list(
        session.scalars(
            select(WebhookSubscription)
            .where(WebhookSubscription.user_id == user.id)
            .order_by(WebhookSubscription.id)
        )
    )


def get_subscription(session: Session, *, user: User, sub_id: int) -> WebhookSubscription:
    sub = session.get(WebhookSubscription, sub_id)
    if sub is None or sub.user_id != user.id:
        raise NotFoundError(f"no webhook {sub_id}", webhook_id=sub_id)
    return sub


def delete_subscription(session: Session, *, user: User, sub_id: int) -> None:
    sub = get_subscription(session, user=user, sub_id=sub_id)
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.subscription_id == sub.id))
    session.delete(sub)


def delivery_counts(session: Session, *, sub_id: int) -> dict[str, int]:
    rows = session.execute(
        select(WebhookDelivery.status, func.count())
        .where(WebhookDelivery.subscription_id == sub_id)
        .group_by(WebhookDelivery.status)
    ).all()
    return {str(status): int(n) for status, n in rows}


# --- delivery --------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None
    error: str | None


def post_signed(
    client: httpx.Client, *, url: str, secret: str, event_id: int, body: bytes,
    timeout_s: float,
) -> Outcome:
    """One signed POST; redirects are not followed."""
    ts = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "escrowd-webhooks/1",
        signing.TIMESTAMP_HEADER: str(ts),
        signing.SIGNATURE_HEADER: signing.signature(secret, ts, body),
        signing.EVENT_HEADER: str(event_id),
    }
    try:
        r = client.post(url, content=body, headers=headers, timeout=timeout_s,
                        follow_redirects=False)
    except httpx.HTTPError as exc:
        return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500])
    if 200 <= r.status_code < 300:
        return Outcome(True, r.status_code, None)
    return Outcome(False, r.status_code, f"HTTP {r.status_code}")


@dataclass(frozen=True)
class _Claimed:
    delivery_id: int
    url: str
    secret: str
    event_id: int
    body: bytes


def deliver_due(
    sessions: sessionmaker[Session],
    cfg: EventSettings,
    *,
    client: httpx.Client,
    secrets_box: WebhookSecrets,
    now: datetime | None = None,
    allow_private: bool = False,
) -> int:
    """Attempt every delivery due at ``now`` (one batch); returns how many
    were attempted.

    Three steps, so no transaction is open while a receiver answers: claim
    the due rows (``FOR UPDATE SKIP LOCKED``, then pushed back by a lease so
    no other process takes them meanwhile), POST them, record the outcomes.
    A crash after the claim only delays the delivery until the lease ends;
    receivers deduplicate by the event id header (at-least-once)."""
    moment = now or utcnow()
    lease = timedelta(seconds=cfg.webhook_timeout_s * cfg.webhook_batch + 30)
    with transaction(sessions) as session:
        rows = session.execute(
            select(WebhookDelivery, WebhookSubscription, TradeEvent)
            .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
            .join(TradeEvent, TradeEvent.id == WebhookDelivery.event_id)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= moment)
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(cfg.webhook_batch)
            .with_for_update(of=WebhookDelivery, skip_locked=True)
        ).all()
        claimed = []
        for delivery, sub, event in rows:
            delivery.next_attempt_at = moment + lease
            claimed.append(_Claimed(delivery.id, sub.url, secrets_box.reveal(sub.secret),
                                    event.seq or event.id, orjson.dumps(event_body(event))))
    outcomes = []
    for c in claimed:
        try:  # the address is checked again at each delivery (DNS may have changed)
            check_url(c.url, allow_private=allow_private)
        except ValidationError as exc:
            outcomes.append((c.delivery_id, Outcome(False, None, f"refused: {exc.message}")))
            continue
        outcomes.append((c.delivery_id, post_signed(
            client, url=c.url, secret=c.secret, event_id=c.event_id, body=c.body,
            timeout_s=cfg.webhook_timeout_s,
        )))
    if not outcomes:
        return 0
    with transaction(sessions) as session:
        rows_by_id = {
            d.id: d
            for d in session.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.id.in_([i for i, _ in outcomes]))
                .with_for_update()
            )
        }
        for delivery_id, out in outcomes:
            row = rows_by_id.get(delivery_id)
            if row is not None and row.status == "pending":
                record_attempt(row, out, now=moment, cfg=cfg)
    return len(claimed)


def record_attempt(
    delivery: WebhookDelivery, out: Outcome, *, now: datetime, cfg: EventSettings
) -> None:
    delivery.attempts += 1
    delivery.last_status_code = out.status_code
    delivery.last_error = out.error
    if out.ok:
        delivery.status = "delivered"
        delivery.delivered_at = now
        DELIVERY_ATTEMPTS.labels("delivered").inc()
    elif delivery.attempts >= cfg.webhook_max_attempts:
        delivery.status = "failed"
        DELIVERY_ATTEMPTS.labels("failed").inc()
        log.warning("webhook delivery %s failed after %s attempts: %s",
                    delivery.id, delivery.attempts, out.error)
    else:
        DELIVERY_ATTEMPTS.labels("retry").inc()
        wait = signing.backoff_s(
            delivery.attempts, base_s=cfg.webhook_backoff_s, cap_s=cfg.webhook_backoff_cap_s
        )
        delivery.next_attempt_at = now + timedelta(seconds=wait)


# --- retention -------------------------------------------------------------------


def purge_old(session: Session, *, older_than: datetime) -> tuple[int, int]:
    """Delete finished deliveries and events older than ``older_than`` (an
    event is kept while a delivery of it is still pending). Returns
    (deliveries, events) deleted."""
    gone = session.scalars(
        delete(WebhookDelivery)
        .where(
            WebhookDelivery.status.in_(("delivered", "failed")),
            WebhookDelivery.updated_at < older_than,
        )
        .returning(WebhookDelivery.id)
    ).all()
    pending = select(WebhookDelivery.event_id).where(WebhookDelivery.event_id == TradeEvent.id)
    events = session.scalars(
        delete(TradeEvent)
        .where(TradeEvent.created_at < older_than, ~pending.exists())
        .returning(TradeEvent.id)
    ).all()
    return len(gone), len(events)
