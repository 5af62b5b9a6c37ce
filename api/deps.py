"""Annotated dependencies: the database session of a request, the caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from node.accounts.tokens import AccessClaims, Tokens, looks_like_jwt
from node.chain_trades import ChainRegistry
from node.db.models import User
from node.errors import AuthenticationError, PermissionDeniedError
from node.trades import authenticate

bearer = HTTPBearer(
    auto_error=False,
    description="a JWT access token from /api/p2p-crypto/auth/*, or the API token "
    "`escrowd users add` printed",
)


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the handler returns."""
    factory = request.app.state.sessions
    with factory() as session, session.begin():
        yield session


# scope="function": the commit happens before the response is sent. With
# FastAPI's default (request scope) it ran after the response had gone out,
# so a commit that failed (database killed) had already been answered 201
# (found by tests/functional/test_crash_postgres.py).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_chains(request: Request) -> ChainRegistry:
    registry: ChainRegistry = request.app.state.chains
    return registry


ChainsDep = Annotated[ChainRegistry, Depends(get_chains)]


def get_tokens(request: Request) -> Tokens:
    tokens: Tokens = request.app.state.auth_tokens
    return tokens


TokensDep = Annotated[Tokens, Depends(get_tokens)]


def current_user(
    request: Request,
    session: SessionDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    """The caller: a JWT access token of a live session, or an API token."""
    token = creds.credentials if creds else None
    if not token:
        raise AuthenticationError("a bearer token is required")
    if looks_like_jwt(token):
        tokens: Tokens | None = getattr(request.app.state, "auth_tokens", None)
        if tokens is None:
            raise AuthenticationError("unknown or revoked token", code="invalid_token")
        user, claims = tokens.authenticate(session, token)
        request.state.access_claims = claims
        request.state.user_id = user.id
        request.state.auth_expires_at = claims.expires_at
        return user
    user = authenticate(session, token)
    request.state.user_id = user.id
    return user


UserDep = Annotated[User, Depends(current_user)]


def access_claims(request: Request, _user: UserDep) -> AccessClaims | None:
    """The caller's JWT claims (None when they used an API token)."""
    claims: AccessClaims | None = getattr(request.state, "access_claims", None)
    return claims


ClaimsDep = Annotated[AccessClaims | None, Depends(access_claims)]


def arbitrator_user(user: UserDep) -> User:
    if user.role not in ("arbitrator", "admin"):
        raise PermissionDeniedError("arbitrators only", code="arbitrators_only")
    return user


ArbitratorDep = Annotated[User, Depends(arbitrator_user)]


def admin_user(user: UserDep) -> User:
    if user.role != "admin":
        raise PermissionDeniedError("admins only", code="admins_only")
    return user


AdminDep = Annotated[User, Depends(admin_user)]


def client_ip(request: Request) -> str | None:
    """The client's IP as the security middleware resolved it (trusted
    proxies' X-Forwarded-For), else the peer address."""
    resolved: str | None = getattr(request.state, "client_ip", None)
    if resolved is not None:
        return resolved
    return request.client.host if request.client else None


IpDep = Annotated[str | None, Depends(client_ip)]


# Row ids in paths: PostgreSQL INTEGER, so anything else is a 422, not a 500.
RowId = Annotated[int, Path(ge=1, le=2**31 - 1, description="row id")]
