"""Request-level protections installed on the app: the auth secret and token
service, rate limits, Idempotency-Key.

One pure ASGI middleware, in this order for each request:

1. **Rate limits** (the ``limits`` library; memory by default, Redis when
   ``auth.rate_limit_storage`` says so): per client IP, per signed-in user,
   and a strict one on sign-in endpoints per IP and per account named in the
   body. Over the limit: 429 problem+json with ``Retry-After``. Redis
   unreachable at request time: fail open to per-process memory counting,
   with a logged warning (see ``RateLimits``).
2. **Idempotency-Key** on POST: the first request with a key claims it (a
   unique row per caller and key, committed before the handler runs); a
   concurrent or later duplicate waits for the first one's response and
   returns it byte for byte (``Idempotent-Replayed: true``); the same key with
   another method, path or body is refused (422 ``idempotency_key_reused``).
   A 5xx answer releases the key so the request can be retried.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import anyio
from fastapi import FastAPI
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import SlidingWindowCounterRateLimiter
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from api.problems import problem
from node.accounts.audit import record_audit
from node.accounts.client_ip import client_ip, parse_networks
from node.accounts.keys import TotpCipher, install_cipher, load_secret
from node.accounts.settings import AuthSettings
from node.accounts.tokens import Tokens, looks_like_jwt
from node.config import Settings
from node.db.models import User, utcnow
from node.db.models_accounts import IdempotencyKey
from node.db.session import transaction
from node.errors import AuthenticationError, ConfigError
from node.trades import hash_token

log = logging.getLogger("escrowd.api.security")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SIGN_IN_PATHS = frozenset({
    "/api/p2p-crypto/auth/login",
    "/api/p2p-crypto/auth/register",
    "/api/p2p-crypto/auth/wallet",
    "/api/p2p-crypto/auth/refresh",
})
# Party actions that move escrowed funds, audited when the signed instruction
# was accepted (202): route template -> audit action. Rulings are audited by
# the disputes slice, payment details shown by the market slice.
AUDITED_MOVES = {
    "/api/p2p-crypto/orders/{order_id}/release-escrow": "escrow.release",
    "/api/p2p-crypto/orders/{order_id}/cancel-escrow": "escrow.cancel",
    "/api/p2p-crypto/orders/{order_id}/reclaim": "escrow.reclaim",
    "/api/btc/orders/{order_id}/payout": "escrow.payout_signed",
    "/api/sol/orders/{order_id}/payout": "escrow.payout_signed",
}
MAX_KEY_LEN = 255
MAX_BODY = 16 * 1024 * 1024
POLL_S = 0.05
TOKEN_CACHE_TTL_S = 30.0
TOKEN_CACHE_MAX = 10_000


def install(app: FastAPI) -> None:
    """Install the middleware on ``app`` (called by ``create_app``).

    Fails (ConfigError naming ``auth.jwt_secret``) when production mode has no
    secret configured."""
    settings: Settings = app.state.settings
    secret = load_secret(settings)
    tokens = Tokens(secret, settings.auth)
    app.state.auth_tokens = tokens
    install_cipher(app.state.sessions, TotpCipher(secret))
    limiter = RateLimits(settings.auth)
    app.state.rate_limits = limiter
    app.add_middleware(
        ProtectionMiddleware,
        sessions=app.state.sessions, tokens=tokens, limiter=limiter, auth=settings.auth,
    )
    _document(app)


# --- rate limits ---------------------------------------------------------------


REDIS_SCHEMES = frozenset({"redis", "rediss"})
REDIS_TIMEOUT_S = 0.5
FALLBACK_WARN_EVERY_S = 60.0


def _rate_limit_storage(auth: AuthSettings) -> Storage:
    """The ``limits`` storage ``auth.rate_limit_storage`` names: ``memory://``
    (per process) or ``redis://[:password@]host:port/db`` / ``rediss://``
    (shared by every process using it, keys under ``auth.rate_limit_key_prefix``).
    A malformed URL is a ConfigError naming the setting."""
    url = auth.rate_limit_storage
    where = "auth.rate_limit_storage (ESCROWD_AUTH__RATE_LIMIT_STORAGE)"
    parsed = urlsplit(url)
    if parsed.scheme == "memory":
        return MemoryStorage()
    if parsed.scheme not in REDIS_SCHEMES:
        raise ConfigError(f"{where}: unsupported storage {url.split(':', 1)[0]!r} "
                          "(use memory:// or redis://host:port/db)",
                          setting="auth.rate_limit_storage")
    try:
        port = parsed.port
    except ValueError:
        port = -1
    db = parsed.path.lstrip("/")
    if not parsed.hostname or port == -1 or (db and not db.isdigit()) or parsed.query:
        raise ConfigError(f"{where}: malformed Redis URL (expected "
                          "redis://[:password@]host:port/db)", setting="auth.rate_limit_storage")
    try:
        return RedisStorage(url, key_prefix=auth.rate_limit_key_prefix, wrap_exceptions=True,
                            socket_connect_timeout=REDIS_TIMEOUT_S,
                            socket_timeout=REDIS_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - redis-py raises ValueError on bad URLs
        raise ConfigError(f"{where}: {exc}", setting="auth.rate_limit_storage") from None


class RateLimits:
    """The limits of ``auth.rate_limit_*`` on the storage
    ``auth.rate_limit_storage`` names.

    With Redis, a request that cannot reach it is not failed (no 500, no 503:
    an outage of the limit store must not take the API down): the limit is
    counted in this process's memory instead (the same limits, per process,
    as with ``memory://``), with a warning logged at most once a minute."""

    def __init__(self, auth: AuthSettings) -> None:
        try:
            self.ip = parse(auth.rate_limit_ip)
            self.user = parse(auth.rate_limit_user)
            self.signin = parse(auth.rate_limit_signin)
        except Exception as exc:  # noqa: BLE001 - limits raises ValueError
            raise ConfigError(f"invalid configuration: auth.rate_limit_*: {exc}") from None
        storage = _rate_limit_storage(auth)
        self.shared = not isinstance(storage, MemoryStorage)
        # a sliding window counter: two counters per key, whatever the limit
        # (a moving window keeps one entry per request in the window, and in
        # memory inserts each at the front of a list: O(limit) per request)
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._fallback = SlidingWindowCounterRateLimiter(MemoryStorage()) if self.shared else None
        self._warned_at = -FALLBACK_WARN_EVERY_S

    def hit(self, item: RateLimitItem, *identifiers: str) -> float | None:
        """Count one request; None when allowed, else seconds until allowed."""
        limiter = self._limiter
        try:
            if limiter.hit(item, *identifiers):
                return None
            stats = limiter.get_window_stats(item, *identifiers)
        except StorageError as exc:
            if self._fallback is None:
                raise
            self._warn(exc)
            limiter = self._fallback
            if limiter.hit(item, *identifiers):
                return None
            stats = limiter.get_window_stats(item, *identifiers)
        return max(1.0, stats.reset_time - time.time())

    async def ahit(self, item: RateLimitItem, *identifiers: str) -> float | None:
        """``hit`` off the event loop when the storage is over the network."""
        if not self.shared:
            return self.hit(item, *identifiers)
        return await anyio.to_thread.run_sync(self.hit, item, *identifiers)

    def _warn(self, exc: StorageError) -> None:
        now = time.monotonic()
        if now - self._warned_at >= FALLBACK_WARN_EVERY_S:
            self._warned_at = now
            log.warning("rate limit storage unreachable (%s); counting limits in this "
                        "process's memory until it is back", exc.storage_error)


# --- idempotency store -----------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    status: int
    headers: list[list[str]]
    body: bytes


class Outcome:
    CLAIMED = "claimed"
    PENDING = "pending"
    MISMATCH = "mismatch"


class IdempotencyStore:
    def __init__(self, sessions: sessionmaker[Session], ttl_s: int) -> None:
        self.sessions = sessions
        self.ttl = timedelta(seconds=ttl_s)

    def claim(self, scope: str, key: str, request_hash: str) -> str | Stored:
        try:
            with transaction(self.sessions) as s:
                s.add(IdempotencyKey(scope=scope, key=key, request_hash=request_hash))
            return Outcome.CLAIMED
        except IntegrityError:
            pass
        with transaction(self.sessions) as s:
            row = s.scalar(select(IdempotencyKey).where(
                IdempotencyKey.scope == scope, IdempotencyKey.key == key))
            if row is None:  # released meanwhile: try again
                return Outcome.PENDING
            if row.created_at < utcnow() - self.ttl:
                s.delete(row)
                return Outcome.PENDING
            if row.request_hash != request_hash:
                return Outcome.MISMATCH
            if not row.completed or row.status_code is None:
                return Outcome.PENDING
            return Stored(row.status_code, list(row.response_headers or []),
                          row.response_body or b"")

    def complete(self, scope: str, key: str, stored: Stored) -> None:
        with transaction(self.sessions) as s:
            row = s.scalar(select(IdempotencyKey).where(
                IdempotencyKey.scope == scope, IdempotencyKey.key == key))
            if row is not None:
                row.status_code = stored.status
                row.response_headers = stored.headers
                row.response_body = stored.body
                row.completed = True

    def release(self, scope: str, key: str) -> None:
        with transaction(self.sessions) as s:
            s.execute(delete(IdempotencyKey).where(
                IdempotencyKey.scope == scope, IdempotencyKey.key == key,
                IdempotencyKey.completed.is_(False)))


# --- the middleware --------------------------------------------------------------


class ProtectionMiddleware:
    def __init__(self, app: ASGIApp, *, sessions: sessionmaker[Session], tokens: Tokens,
                 limiter: RateLimits, auth: AuthSettings) -> None:
        self.app = app
        self.sessions = sessions
        self.tokens = tokens
        self.limiter = limiter
        self.store = IdempotencyStore(sessions, auth.idempotency_ttl_s)
        self.wait_s = auth.idempotency_wait_s
        self.trusted = parse_networks(auth.trusted_proxies)
        self._token_cache: dict[str, tuple[int | None, float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self._protect(scope, receive, send)
        except BodyTooLarge:
            await _send_problem(scope, receive, send, 413, "body_too_large",
                                f"request bodies are limited to {MAX_BODY} bytes here")

    async def _protect(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        peer = scope["client"][0] if scope.get("client") else "unknown"
        ip = client_ip(peer, headers.get("x-forwarded-for"), self.trusted)
        scope.setdefault("state", {})["client_ip"] = ip
        user_id = await self._principal(headers.get("authorization"))
        method = scope["method"]
        path: str = scope.get("path", "")

        retry = await self.limiter.ahit(self.limiter.ip, "ip", ip)
        if retry is None and user_id is not None:
            retry = await self.limiter.ahit(self.limiter.user, "user", str(user_id))
        body: bytes | None = None
        if retry is None and method == "POST" and path in SIGN_IN_PATHS:
            retry = await self.limiter.ahit(self.limiter.signin, "signin-ip", ip)
            if retry is None:
                body = await _read_body(receive)
                account = _account_of(body)
                if account:
                    retry = await self.limiter.ahit(self.limiter.signin, "signin-account",
                                             f"{path}:{account}")
        if retry is not None:
            await _send_problem(scope, receive, send, 429, "rate_limited",
                                "too many requests; retry later",
                                headers={"retry-after": str(int(retry + 0.999))},
                                retry_after=int(retry + 0.999))
            return

        raw_send = send
        if method == "POST":
            send = self._auditing(scope, send, user_id=user_id, ip=ip)
        key = headers.get("idempotency-key")
        if method != "POST" or key is None:
            if body is not None:
                receive = _replay(body, receive)
            await self.app(scope, receive, send)
            return
        if not 1 <= len(key) <= MAX_KEY_LEN or not key.isprintable() or not key.isascii():
            await _send_problem(scope, receive, send, 422, "invalid_idempotency_key",
                                f"Idempotency-Key must be 1 to {MAX_KEY_LEN} printable "
                                "ASCII characters", field="Idempotency-Key")
            return
        if body is None:
            body = await _read_body(receive)
        await self._idempotent(scope, receive, send, raw_send, body=body, key=key,
                               owner=f"user:{user_id}" if user_id is not None else f"ip:{ip}")

    async def _idempotent(self, scope: Scope, receive: Receive, send: Send, raw_send: Send, *,
                          body: bytes,
                          key: str, owner: str) -> None:
        digest = hashlib.sha256()
        for part in (scope["method"], scope.get("path", ""),
                     scope.get("query_string", b"").decode("latin-1")):
            digest.update(part.encode() + b"\0")
        digest.update(body)
        request_hash = digest.hexdigest()
        deadline = time.monotonic() + self.wait_s
        while True:
            outcome = await anyio.to_thread.run_sync(self.store.claim, owner, key, request_hash)
            if isinstance(outcome, Stored):
                await _send_stored(raw_send, outcome)  # a replay: nothing happened again
                return
            if outcome == Outcome.MISMATCH:
                await _send_problem(scope, receive, send, 422, "idempotency_key_reused",
                                    "this Idempotency-Key was used for another request",
                                    field="Idempotency-Key")
                return
            if outcome == Outcome.CLAIMED:
                break
            if time.monotonic() > deadline:
                await _send_problem(scope, receive, send, 409, "idempotency_in_progress",
                                    "a request with this Idempotency-Key is still running",
                                    field="Idempotency-Key")
                return
            await asyncio.sleep(POLL_S)

        captured: dict[str, Any] = {"status": 500, "headers": [], "body": bytearray()}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = [
                    [k.decode("latin-1"), v.decode("latin-1")]
                    for k, v in message.get("headers", [])
                ]
            elif message["type"] == "http.response.body":
                captured["body"].extend(message.get("body", b""))

        try:
            await self.app(scope, _replay(body, receive), capture)
        except BaseException:
            await anyio.to_thread.run_sync(self.store.release, owner, key)
            raise
        stored = Stored(captured["status"], captured["headers"], bytes(captured["body"]))
        try:
            if stored.status >= 500:
                await anyio.to_thread.run_sync(self.store.release, owner, key)
            else:
                await anyio.to_thread.run_sync(self.store.complete, owner, key, stored)
        except Exception:  # noqa: BLE001 - the answer still goes out; the key is freed
            log.exception("could not store the response of Idempotency-Key %r", key)
            await anyio.to_thread.run_sync(self.store.release, owner, key)
        await _send_stored(send, stored, replayed=False)

    def _auditing(self, scope: Scope, send: Send, *, user_id: int | None, ip: str) -> Send:
        """``send`` that writes an audit row when a fund-moving action was
        accepted (its own transaction, after the action committed)."""

        async def audited(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 202:
                route = scope.get("route")
                action = AUDITED_MOVES.get(getattr(route, "path", ""))
                if action is not None:
                    params = scope.get("path_params", {})
                    await anyio.to_thread.run_sync(self._audit, action, user_id, ip, params)
            await send(message)

        return audited

    def _audit(self, action: str, user_id: int | None, ip: str, params: dict[str, Any]) -> None:
        try:
            with transaction(self.sessions) as s:
                record_audit(s, actor_id=user_id, action=action,
                             subject=f"trade:{params.get('order_id')}", ip=ip)
        except Exception:  # noqa: BLE001 - the action happened; say the audit failed
            log.exception("could not audit %s of trade %s", action, params.get("order_id"))

    async def _principal(self, authorization: str | None) -> int | None:
        """The user a bearer token names (for per-user limits and key scopes),
        None when absent or invalid (the route then answers 401)."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        token = authorization[7:].strip()
        if not token:
            return None
        if looks_like_jwt(token):
            try:
                return self.tokens.claims(token).user_id
            except AuthenticationError:
                return None
        h = hash_token(token)
        cached = self._token_cache.get(h)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        user_id = await anyio.to_thread.run_sync(self._lookup_api_token, h)
        if len(self._token_cache) >= TOKEN_CACHE_MAX:
            self._token_cache.clear()
        self._token_cache[h] = (user_id, now + TOKEN_CACHE_TTL_S)
        return user_id

    def _lookup_api_token(self, token_hash: str) -> int | None:
        with self.sessions() as s:
            uid: int | None = s.scalar(select(User.id).where(User.api_token_hash == token_hash))
            return uid


# --- helpers ---------------------------------------------------------------------


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


class BodyTooLarge(Exception):
    pass


async def _read_body(receive: Receive) -> bytes:
    """The whole request body (needed to hash it for Idempotency-Key and to
    find the account of a sign-in); more than MAX_BODY is refused (413)."""
    chunks = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.extend(message.get("body", b""))
        if len(chunks) > MAX_BODY:
            raise BodyTooLarge
        if not message.get("more_body", False):
            break
    return bytes(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _account_of(body: bytes) -> str | None:
    """The account a sign-in request is about (username or wallet address)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    for field in ("username", "address"):
        value = data.get(field)
        if isinstance(value, str) and value:
            return value.lower()[:128]
    message = data.get("message")
    if isinstance(message, str):
        lines = message.split("\n")
        if len(lines) > 1 and lines[1]:
            return lines[1].strip().lower()[:128]
    token = data.get("refresh_token")
    if isinstance(token, str) and token:
        return hashlib.sha256(token.encode()).hexdigest()[:32]
    return None


async def _send_problem(scope: Scope, receive: Receive, send: Send, status: int, code: str,
                        detail: str, *, headers: dict[str, str] | None = None,
                        **fields: Any) -> None:
    response = problem(status, code, detail, **fields)
    for k, v in (headers or {}).items():
        response.headers[k] = v
    await response(scope, receive, send)


async def _send_stored(send: Send, stored: Stored, *, replayed: bool = True) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in stored.headers]
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": stored.status, "headers": headers})
    await send({"type": "http.response.body", "body": stored.body, "more_body": False})


# --- OpenAPI ---------------------------------------------------------------------


def _document(app: FastAPI) -> None:
    """Every POST documents the Idempotency-Key header; every operation the
    429 of the rate limits (and POSTs the 409/422 of a reused key)."""
    inner = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = inner()
        for _path, ops in schema.get("paths", {}).items():
            for method, op in ops.items():
                if not isinstance(op, dict):
                    continue
                responses = op.setdefault("responses", {})
                responses.setdefault("429", {"description": "rate limited (Retry-After)"})
                if method == "post":
                    op.setdefault("parameters", []).append({
                        "name": "Idempotency-Key", "in": "header", "required": False,
                        "schema": {"type": "string", "minLength": 1,
                                   "maxLength": MAX_KEY_LEN},
                        "description": "replays return the first response; another body "
                                       "with the same key is refused",
                    })
                    responses.setdefault("409", {"description": "request in progress"})
        _add_links(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


_PARAM = re.compile(r"^\{(\w+)\}$")


def _add_links(schema: dict[str, Any]) -> None:
    """OpenAPI links from each POST that creates an object (a 2xx body with an
    ``id``) to the operations on ``<that path>/{param}`` and below, so clients
    and stateful fuzzers (schemathesis) can follow create -> read/update/delete."""
    paths: dict[str, Any] = schema.get("paths", {})
    components = schema.get("components", {}).get("schemas", {})
    for path, ops in paths.items():
        post = ops.get("post")
        if not isinstance(post, dict):
            continue
        for status, response in post.get("responses", {}).items():
            if not status.startswith("2") or not _has_id(response, components):
                continue
            links: dict[str, Any] = {}
            for other, other_ops in paths.items():
                rest = other[len(path):].split("/") if other.startswith(path + "/") else []
                m = _PARAM.match(rest[1]) if len(rest) > 1 else None
                if m is None:
                    continue
                params = {p: f"$request.path.{p}" for p in re.findall(r"\{(\w+)\}", path)}
                params[m.group(1)] = "$response.body#/id"
                for method, op in other_ops.items():
                    if isinstance(op, dict) and "operationId" in op:
                        links[op["operationId"]] = {
                            "operationId": op["operationId"],
                            "parameters": params,
                            "description": f"{method.upper()} {other} on the created object",
                        }
            if links:
                response["links"] = links


def _has_id(response: dict[str, Any], components: dict[str, Any]) -> bool:
    body = response.get("content", {}).get("application/json", {}).get("schema", {})
    ref = body.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        body = components.get(ref.rsplit("/", 1)[-1], {})
    return "id" in body.get("properties", {})
