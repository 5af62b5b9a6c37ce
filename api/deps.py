"""Annotated dependencies: the database session of a request, the caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from node.chain_trades import ChainRegistry
from node.db.models import User
from node.errors import PermissionDeniedError
from node.trades import authenticate

bearer = HTTPBearer(auto_error=False, description="the token `escrowd users add` printed")


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the handler returns."""
    factory = request.app.state.sessions
    with factory() as session, session.begin():
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_chains(request: Request) -> ChainRegistry:
    registry: ChainRegistry = request.app.state.chains
    return registry


ChainsDep = Annotated[ChainRegistry, Depends(get_chains)]


def current_user(
    session: SessionDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    return authenticate(session, creds.credentials if creds else None)


UserDep = Annotated[User, Depends(current_user)]


def arbitrator_user(user: UserDep) -> User:
    if user.role not in ("arbitrator", "admin"):
        raise PermissionDeniedError("arbitrators only", code="arbitrators_only")
    return user


ArbitratorDep = Annotated[User, Depends(arbitrator_user)]


# Row ids in paths: PostgreSQL INTEGER, so anything else is a 422, not a 500.
RowId = Annotated[int, Path(ge=1, le=2**31 - 1, description="row id")]
