"""The order book and a trader's order list, answered from memory.

A pure ASGI middleware inside the rate limits (so cached answers are counted
like any other) and outside FastAPI: a ``GET`` of one of ``CACHED_PATHS`` whose
exact query string was answered 200 before, with nothing under it committed
since (``node.read_cache``), gets that answer's bytes again without a
database round trip, a thread or a pydantic model. Everything else, and every
miss, goes to the FastAPI handler, whose 200 answers are kept: the cache never
builds a page itself, so a cached answer is byte for byte what the handler
said.

An answer past its lifetime whose rows did not change is served while one
background request (same path, query and headers, run through the handler)
rebuilds it. A miss that finds the same answer being built, begun with
nothing committed since, waits for that build and shares its answer (cold
start, a just-invalidated book under load) instead of running the same query
again; a build overtaken by a commit still answers the requests that arrived
before that commit, but is not kept.

``/orders/my`` is per caller: the caller is the user the handler last
authenticated that exact ``Authorization`` header as (a JWT of a live session
or an API token), remembered under the ``auth`` scope, which any change to
users or sign-in sessions bumps (a sign-out in any process of the fleet
forgets every remembered caller), and never past a JWT's expiry.

Responses say ``X-Escrowd-Cache: hit`` or ``miss``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast
from urllib.parse import parse_qs

from node.ops.metrics import READ_CACHE
from node.read_cache import (
    AUTH,
    BOOK,
    FRESH,
    MINE,
    MISS,
    STALE,
    ReadCache,
    book_scope,
    user_scope,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CACHED_PATHS = {
    "/api/p2p-crypto/orders": BOOK,
    "/api/p2p-crypto/orders/my": MINE,
}
HEADER = b"x-escrowd-cache"
# a caller waiting for another's identical request gives up after this and
# asks the handler itself
FOLLOW_TIMEOUT_S = 5.0
_HIT, _STALE, _MISS, _WAITED = (READ_CACHE.labels(r) for r in ("hit", "stale", "miss", "waited"))
REBUILD_SLOTS = 2
Answer = tuple[list[tuple[bytes, bytes]], bytes]
_APPS = itertools.count(1)
log = logging.getLogger("escrowd.api.hot_reads")
# who a bearer header is, remembered this long at most (a change to users or
# sign-in sessions anywhere in the fleet forgets it at once)
CALLER_TTL_S = 30.0


class HotReadsMiddleware:
    def __init__(self, app: ASGIApp, *, cache: ReadCache) -> None:
        self.app = app
        self.cache = cache
        self._ns = next(_APPS)  # this app's keys (tests run several apps in one process)
        self._routes: dict[str, Any] = {}  # path -> its route, for metrics labels
        # answers (and callers) being built: an identical request that
        # arrived after the build began waits for it instead of building again
        self._inflight: dict[tuple[object, ...], _Flight] = {}
        # rebuilds of expired answers running in the background: each is a
        # handler thread computing beside the event loop, which shares the
        # GIL with every such thread; beyond these the expired answer is
        # served a little longer
        self._slots = asyncio.Semaphore(REBUILD_SLOTS)
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = CACHED_PATHS.get(scope.get("path", "")) if scope["type"] == "http" else None
        if kind is None or scope["method"] != "GET" or not self.cache.enabled:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        query: bytes = scope.get("query_string", b"")
        if kind == BOOK:
            key: tuple[object, ...] = (self._ns, path, query)
            scopes: tuple[str, ...] = book_scopes(query)
        else:
            authorization = _authorization(scope)
            if authorization is None:
                await self.app(scope, receive, send)  # the handler's 401
                return
            uid = await self._caller(scope, receive, send, authorization)
            if uid is None:
                return  # the handler answered while authenticating the caller
            key = (self._ns, path, query, uid)
            scopes = (MINE, user_scope(uid))

        arrived = self.cache.versions(scopes)
        value, state = self.cache.lookup(key, scopes)
        flight = self._inflight.get(key)
        if state == MISS and flight is not None and flight.seen == arrived:
            # being built from the database as it is now (a cold key, or one
            # just invalidated, under load): share that build's answer, even
            # if a commit after this request arrived keeps it out of the cache
            _WAITED.inc()
            shared = await flight.answer(FOLLOW_TIMEOUT_S)
            if shared is not None:
                await self._send_hit(scope, send, path, shared)
                return
        if state == STALE:
            # expired, its rows unchanged: served while it is rebuilt
            self._rebuild_later(scope, key, scopes, self._keep_answer(key, scopes, path))
        if state != MISS:
            (_HIT if state == FRESH else _STALE).inc()
            await self._send_hit(scope, send, path, value)
            return
        _MISS.inc()
        await self._build(scope, receive, send, key, scopes, self._keep_answer(key, scopes, path))

    def _keep_answer(self, key: tuple[object, ...], scopes: tuple[str, ...],
                     path: str) -> Callable[[Scope, Answer, tuple[int, ...]], None]:
        def keep(scope: Scope, answer: Answer, seen: tuple[int, ...]) -> None:
            self.cache.put(key, scopes, seen, answer)
            self._routes.setdefault(path, scope.get("route"))
        return keep

    async def _caller(self, scope: Scope, receive: Receive, send: Send,
                      authorization: bytes) -> int | None:
        """The user the handler last accepted this header as. Unknown: this
        request goes to the handler, which authenticates the caller and
        answers (None is returned then)."""
        key = (self._ns, "caller", authorization)
        uid, state = self._remembered(key)
        flight = self._inflight.get(key)
        if state == MISS and flight is not None:
            await flight.answer(FOLLOW_TIMEOUT_S)
            uid, state = self._remembered(key)
        if state == STALE:
            self._rebuild_later(scope, key, (AUTH,), self._keep_caller(key, scope))
        if uid is not None:
            return uid
        await self._build(scope, receive, send, key, (AUTH,), self._keep_caller(key, scope))
        return None

    def _remembered(self, key: tuple[object, ...]) -> tuple[int | None, str]:
        found, state = self.cache.lookup(key, (AUTH,))
        if state == MISS:
            return None, MISS
        uid, expires_at = cast(tuple[int, int | None], found)
        if expires_at is not None and expires_at <= time.time():
            return None, MISS  # a JWT past its expiry: the handler says 401
        return uid, state

    def _keep_caller(self, key: tuple[object, ...], request: Scope) -> Callable[
            [Scope, Answer, tuple[int, ...]], None]:
        since = self.cache.changes

        def keep(scope: Scope, answer: Answer, seen: tuple[int, ...]) -> None:
            state = scope.get("state", {})
            uid = state.get("user_id")
            if isinstance(uid, int):
                self.cache.put(key, (AUTH,), seen, (uid, state.get("auth_expires_at")),
                               ttl_s=CALLER_TTL_S)
                # the answer itself is this caller's page, kept if nothing at
                # all was committed while it was built (its scopes were not
                # known before: the caller was not)
                page = (self._ns, request["path"], request.get("query_string", b""), uid)
                if self.cache.put_if_quiet(page, (MINE, user_scope(uid)), since, answer):
                    self._routes.setdefault(request["path"], scope.get("route"))
        return keep

    async def _build(self, scope: Scope, receive: Receive, send: Send,
                     key: tuple[object, ...], scopes: tuple[str, ...],
                     keep: Callable[[Scope, Answer, tuple[int, ...]], None]) -> None:
        """Answer this request by the handler, and keep a 200 answer."""
        flight = _Flight(self.cache.versions(scopes))
        self._inflight[key] = flight
        answer = None
        try:
            answer = await self._forward(scope, receive, send)
            if answer is not None:
                keep(scope, answer, flight.seen)
        finally:
            if self._inflight.get(key) is flight:
                del self._inflight[key]
            flight.done.set_result(answer)

    def _rebuild_later(self, scope: Scope, key: tuple[object, ...], scopes: tuple[str, ...],
                       keep: Callable[[Scope, Answer, tuple[int, ...]], None]) -> None:
        """Rebuild an expired entry in the background, as this request would
        be answered (same path, query and headers), unless it is already
        being rebuilt or every slot is busy (a later request tries again)."""
        if key in self._inflight or self._slots.locked():
            return
        inner: Scope = {**scope, "state": {k: v for k, v in scope.get("state", {}).items()
                                           if k == "client_ip"}}
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if sent:  # nothing more will come: as if the client had left
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}

        async def discard(_message: Message) -> None:
            return None

        async def rebuild() -> None:
            async with self._slots:
                try:
                    await self._build(inner, receive, discard, key, scopes, keep)
                except Exception:  # noqa: BLE001 - the next request builds it
                    log.exception("rebuilding a cached answer of %s failed", scope.get("path"))

        task = asyncio.get_running_loop().create_task(rebuild())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_hit(self, scope: Scope, send: Send, path: str, value: object) -> None:
        headers, body = cast(Answer, value)
        route = self._routes.get(path)
        if route is not None:
            scope["route"] = route
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*headers, (HEADER, b"hit")]})
        await send({"type": "http.response.body", "body": body})

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> Answer | None:
        """Run the handler, passing its answer on as it comes; returns it
        (headers, body) when it was a complete 200."""
        status = 0
        headers: list[tuple[bytes, bytes]] = []
        body = bytearray()
        complete = False

        async def capture(message: Message) -> None:
            nonlocal status, headers, complete
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                message = {**message, "headers": [*headers, (HEADER, b"miss")]}
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                complete = not message.get("more_body", False)
            await send(message)

        await self.app(scope, receive, capture)
        if status == 200 and complete:
            return headers, bytes(body)
        return None


class _Flight:
    """One build of an answer: the versions it started at, and its answer
    (None unless a complete 200)."""

    def __init__(self, seen: tuple[int, ...]) -> None:
        self.seen = seen
        self.done: asyncio.Future[Answer | None] = asyncio.get_running_loop().create_future()

    async def answer(self, timeout: float) -> Answer | None:
        try:
            return await asyncio.wait_for(asyncio.shield(self.done), timeout)
        except TimeoutError:
            return None


def book_scopes(query: bytes) -> tuple[str, ...]:
    """What a book read depends on: the ads of one currency in one fiat when
    the query names exactly one of each (as plain digits and a string the
    handler upper-cases alike), else every ad."""
    params = parse_qs(query.decode("latin-1"), keep_blank_values=True)
    currency, fiat = params.get("crypto_currency_id", []), params.get("fiat_currency", [])
    if len(currency) == 1 and len(fiat) == 1 and currency[0].isascii() and currency[0].isdigit():
        return (book_scope(int(currency[0]), fiat[0].upper()),)
    return (BOOK,)


def _authorization(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return bytes(value)
    return None
