"""Short-lived JWT access tokens and rotating refresh tokens.

A sign-in starts an ``AuthSession``; its access tokens carry the session id
(``sid``) and each request checks the session is not revoked, so logout and
revocation work at once, not when the access token expires. A refresh token is
used once: using it returns a new pair and marks it used; presenting a used
one again means it was stolen and replayed, and the whole session is revoked."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import jwt
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from node.accounts.settings import AuthSettings
from node.db.models import User, utcnow
from node.db.models_accounts import AuthSession, RefreshToken
from node.errors import AuthenticationError

ALGORITHM = "HS256"
REFRESH_PREFIX = "rt_"
AUDIENCE = "escrowd-api"


# --- pure: access tokens ---------------------------------------------------


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    session_id: str
    expires_at: int


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


def issue_access_token(
    secret: bytes, *, user_id: int, session_id: str, role: str, issuer: str, ttl_s: int,
    now: datetime | None = None,
) -> str:
    moment = now if now is not None else datetime.now(UTC)
    iat = int(moment.timestamp())
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "sid": session_id,
        "role": role,
        "iss": issuer,
        "aud": AUDIENCE,
        "iat": iat,
        "nbf": iat,
        "exp": iat + ttl_s,
        "jti": uuid.uuid4().hex,
        "typ": "access",
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_access_token(
    secret: bytes, token: str, *, issuer: str, now: datetime | None = None
) -> AccessClaims:
    """The claims of a valid access token, or AuthenticationError
    (``token_expired`` or ``invalid_token``)."""
    options: Any = {"require": ["exp", "iat", "sub", "sid", "iss", "aud"],
                    "verify_exp": now is None}
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], issuer=issuer, audience=AUDIENCE,
            options=options,
        )
    except jwt.ExpiredSignatureError:
        raise AuthenticationError("the access token expired; refresh it",
                                  code="token_expired") from None
    except jwt.PyJWTError:
        raise AuthenticationError("unknown or revoked token", code="invalid_token") from None
    if now is not None and int(claims["exp"]) <= int(now.timestamp()):
        raise AuthenticationError("the access token expired; refresh it", code="token_expired")
    sub, sid = claims.get("sub"), claims.get("sid")
    if claims.get("typ") != "access" or not isinstance(sub, str) or not sub.isdigit() \
            or not isinstance(sid, str):
        raise AuthenticationError("unknown or revoked token", code="invalid_token")
    return AccessClaims(user_id=int(sub), session_id=sid, expires_at=int(claims["exp"]))


def hash_refresh(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- database: sessions and refresh tokens ---------------------------------


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int
    session_id: str


class RefreshOutcome(Enum):
    ROTATED = "rotated"
    REUSED = "reused"  # a used token presented again: the session was revoked


@dataclass(frozen=True)
class RefreshResult:
    outcome: RefreshOutcome
    user: User
    pair: TokenPair | None
    session_id: str


class Tokens:
    """Issues and checks tokens with the slice's secret and settings."""

    def __init__(self, secret: bytes, settings: AuthSettings) -> None:
        self._secret = secret
        self.settings = settings

    def _pair(self, session: Session, user: User, sid: str, now: datetime) -> TokenPair:
        s = self.settings
        access = issue_access_token(
            self._secret, user_id=user.id, session_id=sid, role=user.role, issuer=s.issuer,
            ttl_s=s.access_token_ttl_s, now=now,
        )
        refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
        session.add(RefreshToken(
            session_id=sid, token_hash=hash_refresh(refresh), issued_at=now,
            expires_at=now + timedelta(seconds=s.refresh_token_ttl_s),
        ))
        session.flush()
        return TokenPair(access_token=access, refresh_token=refresh,
                         expires_in=s.access_token_ttl_s,
                         refresh_expires_in=s.refresh_token_ttl_s, session_id=sid)

    def start_session(
        self, session: Session, *, user: User, method: str, ip: str | None,
        now: datetime | None = None,
    ) -> TokenPair:
        moment = now if now is not None else utcnow()
        sid = uuid.uuid4().hex
        session.add(AuthSession(id=sid, user_id=user.id, method=method, ip=ip, created_at=moment))
        session.flush()
        return self._pair(session, user, sid, moment)

    def refresh(
        self, session: Session, *, refresh_token: str, now: datetime | None = None
    ) -> RefreshResult:
        """Rotate ``refresh_token``. A used token presented again revokes its
        session and returns REUSED (the caller commits, then refuses)."""
        moment = now if now is not None else utcnow()
        row = session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == hash_refresh(refresh_token))
            .with_for_update()
        )
        if row is None:
            raise AuthenticationError("unknown refresh token", code="invalid_token")
        auth_session = session.get(AuthSession, row.session_id, with_for_update=True)
        if auth_session is None or auth_session.revoked_at is not None:
            raise AuthenticationError("this session was signed out or revoked",
                                      code="session_revoked")
        user = session.get(User, auth_session.user_id)
        if user is None:
            raise AuthenticationError("unknown refresh token", code="invalid_token")
        if row.used_at is not None:
            self.revoke_session(session, auth_session.id, reason="refresh_reuse", now=moment)
            return RefreshResult(RefreshOutcome.REUSED, user, None, auth_session.id)
        if row.expires_at <= moment:
            raise AuthenticationError("the refresh token expired; sign in again",
                                      code="token_expired")
        row.used_at = moment
        pair = self._pair(session, user, auth_session.id, moment)
        return RefreshResult(RefreshOutcome.ROTATED, user, pair, auth_session.id)

    @staticmethod
    def revoke_session(
        session: Session, session_id: str, *, reason: str, now: datetime | None = None
    ) -> None:
        session.execute(
            update(AuthSession)
            .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now or utcnow(), revoked_reason=reason[:32])
        )

    @staticmethod
    def revoke_user_sessions(
        session: Session, user_id: int, *, reason: str, keep: str | None = None
    ) -> int:
        """Revoke every live session of the user (but ``keep``, if given)."""
        q = update(AuthSession).where(
            AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        if keep is not None:
            q = q.where(AuthSession.id != keep)
        res = session.execute(q.values(revoked_at=utcnow(), revoked_reason=reason[:32]))
        return int(res.rowcount)  # type: ignore[attr-defined]

    def claims(self, token: str) -> AccessClaims:
        """Signature and expiry only (no database): for rate limits and scopes."""
        return decode_access_token(self._secret, token, issuer=self.settings.issuer)

    def authenticate(self, session: Session, token: str) -> tuple[User, AccessClaims]:
        """The user of a valid access token whose session is live."""
        claims = self.claims(token)
        auth_session = session.get(AuthSession, claims.session_id)
        if auth_session is None or auth_session.user_id != claims.user_id:
            raise AuthenticationError("unknown or revoked token", code="invalid_token")
        if auth_session.revoked_at is not None:
            raise AuthenticationError("this session was signed out or revoked",
                                      code="session_revoked")
        user = session.get(User, claims.user_id)
        if user is None:
            raise AuthenticationError("unknown or revoked token", code="invalid_token")
        return user, claims
