"""Request-level observability installed on the app: metrics, request logs.

A pure ASGI middleware (no per-request task or body copy): it times each
request into ``escrowd_api_request_duration_seconds`` under its route
template (``/api/p2p-crypto/orders/{order_id}``, never the raw path, so the
label set stays bounded), and runs the request inside a log context carrying
the trade id found in the path, so every record logged while serving it
(API, node code it calls) names the trade. State-changing requests are
logged at INFO, reads at DEBUG.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from fastapi import FastAPI

from node.ops.logs import log_context
from node.ops.metrics import API_LATENCY

log = logging.getLogger("escrowd.api.access")

_TRADE_IN_PATH = re.compile(r"/(?:orders|trades|escrows)/(\d{1,18})(?:/|$)")
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def trade_id_of(path: str) -> str | None:
    """The trade (order) id a request path is about, if any."""
    m = _TRADE_IN_PATH.search(path)
    return m.group(1) if m else None


class ObservabilityMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        path: str = scope.get("path", "")
        trade_id = trade_id_of(path)
        with log_context(trade_id=trade_id):
            try:
                await self.app(scope, receive, send_status)
            finally:
                elapsed = time.perf_counter() - start
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                method = scope.get("method", "")
                API_LATENCY.labels(method, template, str(status)).observe(elapsed)
                level = logging.DEBUG if method in _READS and status < 500 else logging.INFO
                if log.isEnabledFor(level):
                    log.log(level, "%s %s %d %.1fms", method, template, status, elapsed * 1000,
                            extra={"http_status": status, "route": template,
                                   "duration_ms": round(elapsed * 1000, 2)})


def install(app: FastAPI) -> None:
    """Install the middleware on ``app`` (called by ``create_app``)."""
    app.add_middleware(ObservabilityMiddleware)
