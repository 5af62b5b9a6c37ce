"""The FastAPI application: marketplace endpoints served from the database
mirror, arbitration, health. ``create_app`` takes what the node built
(sessions, chain registry) so the same app runs in one process with the node
or alone behind a load balancer."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from api import observability, problems, security
from api.hot_reads import HotReadsMiddleware
from api.routes import (
    auth,
    btc,
    custody,
    disputes,
    events,
    funding,
    health,
    market,
    ops,
    p2p,
    sol,
    trading,
)
from node.chain_trades import ChainRegistry
from node.changes import start_listener
from node.config import Settings
from node.read_cache import read_cache


def create_app(
    *,
    sessions: sessionmaker[Session],
    chains: ChainRegistry,
    settings: Settings | None = None,
) -> FastAPI:
    resolved = settings if settings is not None else Settings()
    app = FastAPI(
        title="escrowd",
        version="0.1.0",
        summary="P2P crypto marketplace API over on-chain escrows",
        description=(
            "Amounts are integers in base units (wei, token units), sent as strings. "
            "Errors are RFC 9457 problem+json with a machine-readable `code`. "
            "Authenticate with `Authorization: Bearer <token>`."
        ),
    )
    app.state.sessions = sessions
    app.state.chains = chains
    app.state.settings = resolved
    problems.install(app)
    # innermost of ours: cached answers still pass the rate limits and metrics
    read_cache.configure(ttl_s=resolved.api.read_cache_ttl_s,
                         max_entries=resolved.api.read_cache_entries)
    app.add_middleware(HotReadsMiddleware, cache=read_cache)
    url = sessions.kw["bind"].url
    if url.get_backend_name() == "postgresql":
        # other processes' commits reach this one's cache (and long-polls)
        start_listener(url.render_as_string(hide_password=False))
    security.install(app)
    observability.install(app)
    app.add_middleware(HandlerThreads, threads=resolved.api.threads)
    app.include_router(health.router)
    app.include_router(p2p.router)
    app.include_router(disputes.router)
    app.include_router(funding.router)
    app.include_router(btc.router)
    app.include_router(sol.router)
    app.include_router(auth.router)
    app.include_router(market.router)
    app.include_router(events.router)
    app.include_router(trading.router)
    app.include_router(custody.router)
    app.include_router(ops.router)
    return app


class HandlerThreads:
    """Sets how many threads run synchronous handlers (anyio's limiter
    belongs to the event loop, so it is set at the first request). Each holds
    a database connection while it works: as many as the pool has."""

    def __init__(self, app: Any, *, threads: int) -> None:
        self.app = app
        self.threads = threads
        self.set = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not self.set:
            anyio.to_thread.current_default_thread_limiter().total_tokens = self.threads
            self.set = True
        await self.app(scope, receive, send)
