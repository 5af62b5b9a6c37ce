"""Trade events pushed to clients: a Server-Sent Events stream per user (the
events of their trades, resumable with ``Last-Event-ID``) and webhook
subscriptions (signed with HMAC-SHA256, retried with backoff)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field

from api.deps import RowId, SessionDep, UserDep, bearer, current_user
from api.schemas import Strict
from node.accounts.keys import derive_key, load_secret
from node.config import Settings
from node.db.models import User
from node.db.models_disputes_ext import WebhookSubscription
from node.errors import AuthenticationError
from node.events import sse, tickets, webhooks
from node.events.secrets import WebhookSecrets

router = APIRouter(prefix="/api/p2p-crypto", tags=["events"])


class WebhookCreate(Strict):
    url: str = Field(min_length=8, max_length=2000)
    # Shared secret for the HMAC signature; generated when not given.
    secret: str | None = Field(None, min_length=16, max_length=128)


class WebhookPublic(BaseModel):
    id: int
    url: str
    is_active: bool
    created_at: datetime
    deliveries: dict[str, int]


class WebhookCreated(WebhookPublic):
    """The secret is shown once, here."""

    secret: str


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


class StreamTicket(BaseModel):
    """Open the stream with ``?ticket=`` (for EventSource, which sends no
    Authorization header); valid ``expires_in`` seconds."""

    ticket: str
    expires_in: int


TICKET_TTL_S = 60


def _ticket_key(request: Request) -> bytes:
    key: bytes | None = getattr(request.app.state, "sse_ticket_key", None)
    if key is None:
        key = derive_key(load_secret(_settings(request)), b"sse-tickets")
        request.app.state.sse_ticket_key = key
    return key


def stream_user(
    request: Request,
    session: SessionDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ticket: Annotated[str | None, Query(min_length=1, max_length=1000)] = None,
) -> User:
    """The stream's user: from a stream ticket, else as every endpoint does."""
    if ticket is None:
        return current_user(request=request, session=session, creds=creds)
    user_id = tickets.verify(ticket, key=_ticket_key(request), now=int(time.time()))
    user = session.get(User, user_id)
    if user is None:
        raise AuthenticationError("invalid or expired stream ticket", code="invalid_ticket")
    return user


def _public(session: SessionDep, sub: WebhookSubscription) -> WebhookPublic:
    return WebhookPublic(
        id=sub.id, url=sub.url, is_active=sub.is_active, created_at=sub.created_at,
        deliveries=webhooks.delivery_counts(session, sub_id=sub.id),
    )


@router.get(
    "/events/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
def stream(
    request: Request,
    session: SessionDep,
    user: Annotated[User, Depends(stream_user)],
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
    after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    max_duration_s: Annotated[float | None, Query(gt=0, le=86_400)] = None,
) -> StreamingResponse:
    """Server-Sent Events: the events of the caller's trades (``id`` = event
    id, ``event`` = its type, ``data`` = JSON). Resume with the
    ``Last-Event-ID`` header (or ``?after=``). Authenticate with the bearer
    token, or with ``?ticket=`` from /events/stream-ticket (browsers'
    EventSource sends no headers). The stream ends after
    ``max_duration_s`` (at most the node's setting) and the client reconnects."""
    cfg = _settings(request).disputes.events
    user_id = user.id
    # End the request's transaction now: the stream reads with short
    # sessions of its own and must not hold a connection for its lifetime.
    session.commit()
    after_id = after if after is not None else sse.parse_last_event_id(last_event_id)
    duration = min(max_duration_s or cfg.sse_max_duration_s, cfg.sse_max_duration_s)
    body = sse.stream(
        request.app.state.sessions,
        user_id=user_id,
        after_id=after_id,
        poll_s=cfg.sse_poll_ms / 1000,
        keepalive_s=cfg.sse_keepalive_s,
        max_duration_s=duration,
        disconnected=request.is_disconnected,
    )
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.post("/events/stream-ticket", response_model=StreamTicket)
def stream_ticket(request: Request, user: UserDep) -> StreamTicket:
    """A ticket that opens the caller's event stream for a minute."""
    key = _ticket_key(request)
    return StreamTicket(
        ticket=tickets.issue(user.id, key=key, now=int(time.time()), ttl_s=TICKET_TTL_S),
        expires_in=TICKET_TTL_S,
    )


@router.post("/webhooks", response_model=WebhookCreated, status_code=201)
def create_webhook(
    body: WebhookCreate, request: Request, session: SessionDep, user: UserDep
) -> WebhookCreated:
    """Events of the caller's trades are POSTed to ``url`` with
    ``X-Escrowd-Timestamp`` and ``X-Escrowd-Signature: v1=<hex HMAC-SHA256 of
    "<timestamp>.<body>">``; a non-2xx answer is retried with backoff."""
    settings = _settings(request)
    cfg = settings.disputes.events
    allow_private = (
        cfg.webhook_allow_private
        if cfg.webhook_allow_private is not None
        else settings.mode == "dev"
    )
    box: WebhookSecrets | None = getattr(request.app.state, "webhook_secrets", None)
    if box is None:
        box = request.app.state.webhook_secrets = WebhookSecrets.from_settings(settings)
    sub, secret = webhooks.create_subscription(
        session, user=user, url=body.url, secret=body.secret, allow_private=allow_private,
        max_per_user=cfg.webhook_max_per_user, secrets_box=box,
    )
    return WebhookCreated(**_public(session, sub).model_dump(), secret=secret)


@router.get("/webhooks", response_model=list[WebhookPublic])
def list_webhooks(session: SessionDep, user: UserDep) -> list[WebhookPublic]:
    return [_public(session, s) for s in webhooks.list_subscriptions(session, user=user)]


@router.delete("/webhooks/{webhook_id}", status_code=204)
def delete_webhook(webhook_id: RowId, session: SessionDep, user: UserDep) -> Response:
    webhooks.delete_subscription(session, user=user, sub_id=webhook_id)
    return Response(status_code=204)
