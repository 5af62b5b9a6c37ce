"""Trade events pushed to clients: a Server-Sent Events stream per user (the
events of their trades, resumable with ``Last-Event-ID``) and webhook
subscriptions (signed with HMAC-SHA256, retried with backoff)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from api.deps import RowId, SessionDep, UserDep
from api.schemas import Strict
from node.config import Settings
from node.db.models_disputes_ext import WebhookSubscription
from node.events import sse, webhooks
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
    user: UserDep,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
    after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    max_duration_s: Annotated[float | None, Query(gt=0, le=86_400)] = None,
) -> StreamingResponse:
    """Server-Sent Events: the events of the caller's trades (``id`` = event
    id, ``event`` = its type, ``data`` = JSON). Resume with the
    ``Last-Event-ID`` header (or ``?after=``); the stream ends after
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
