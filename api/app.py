"""The FastAPI application: marketplace endpoints served from the database
mirror, arbitration, health. ``create_app`` takes what the node built
(sessions, chain registry) so the same app runs in one process with the node
or alone behind a load balancer."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from api import observability, problems, security
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
from node.config import Settings


def create_app(
    *,
    sessions: sessionmaker[Session],
    chains: ChainRegistry,
    settings: Settings | None = None,
) -> FastAPI:
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
    app.state.settings = settings if settings is not None else Settings()
    problems.install(app)
    security.install(app)
    observability.install(app)
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
