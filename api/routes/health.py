"""Liveness and readiness.

``/healthz``: the process serves requests (no dependency checked: a load
balancer restarting API processes because the database is down would make
things worse). ``/readyz``: this process can do its work: the database
answers and is at the migration this code expects; otherwise 503
problem+json with ``code`` ``not_ready`` and the reason, so the load balancer
stops sending traffic here until it recovers.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.problems import problem

router = APIRouter(tags=["health"])
log = logging.getLogger("escrowd.health")


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _expected_head() -> str:
    from alembic.script import ScriptDirectory

    from node.db.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    return str(head)


@router.get("/readyz", response_model=None)
def readyz(request: Request) -> dict[str, Any] | JSONResponse:
    state = request.app.state
    if getattr(state, "draining", False):
        return problem(503, "not_ready", "shutting down", reason="draining")
    try:
        with state.sessions() as session:
            session.execute(text("SELECT 1"))
            current = session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception as exc:  # noqa: BLE001 - any database failure means not ready
        log.warning("not ready: database: %s", exc.__class__.__name__)
        return problem(503, "not_ready", "the database does not answer", reason="database")
    expected = getattr(state, "expected_migration", None)
    if expected is None:
        expected = state.expected_migration = _expected_head()
    if current != expected:
        return problem(503, "not_ready", f"database at migration {current}, code expects "
                       f"{expected}: run `escrowd db upgrade`", reason="migration")
    return {"status": "ready", "migration": current}
